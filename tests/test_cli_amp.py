"""`tinyopt train --amp`: fp16 (autocast + GradScaler, its state in the checkpoint) and bf16 runs train
like float32, resume bit-identically, and a bad mode is refused."""
import numpy as np
import pytest

from tinyopt import cli
from tinyopt.checkpoint import load
from tinyopt.train import ConfigError, TrainConfig, run

from test_cli import synthetic


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_amp_run_trains_like_float32_and_resumes_identically(tmp_path, amp):
    data = synthetic(2)
    base = dict(model="mlp", optimizer="adam", epochs=3, batch_size=32, seed=1)
    ref = run(TrainConfig(**base), tmp_path / "fp32", data=data, verbose=0, plots=False)
    full = run(TrainConfig(**base, amp=amp), tmp_path / "full", data=data, verbose=0, plots=False)
    assert abs(full.test_accuracy - ref.test_accuracy) < 0.05
    ckpt = load(tmp_path / "full" / "checkpoint.npz")
    assert ckpt["config"]["amp"] == amp
    assert all(v.dtype == np.float32 for v in ckpt["model"].values())
    assert ("scaler" in ckpt) == (amp == "fp16")
    if amp == "fp16":
        scale = ckpt["scaler"]["scale"]
        assert scale <= 2.0 ** 16 and np.log2(scale) == int(np.log2(scale))     # backed off by halving, if at all
        assert set(ckpt["scaler"]) == {"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"}
    run(TrainConfig(**base, amp=amp), tmp_path / "cut", data=data, verbose=0, plots=False, stop_after_epoch=1)
    resumed = run(None, tmp_path / "cut", resume=True, data=data, verbose=0, plots=False)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(resumed.history) == strip(full.history)


def test_amp_mode_is_validated(tmp_path):
    with pytest.raises(ConfigError, match="--amp 'fp8' is not one of: none, fp16, bf16"):
        run(TrainConfig(amp="fp8"), tmp_path, data=synthetic(), verbose=0)
    assert not any(tmp_path.iterdir())
    try:
        code = cli.main(["train", "--amp", "fp8", "--out", str(tmp_path / "x")])
    except SystemExit as e:          # argparse's exit for a bad choice
        code = e.code
    assert code == 2 and not (tmp_path / "x").exists()


def test_tour_plugin_rows():
    from tinyopt.amp import tour
    from tinyopt.train import build_model

    (x, y), val, test = synthetic(3)
    x, xt = x.reshape(-1, 20), test[0]
    model = build_model("mlp", np.random.default_rng(0), in_features=20, num_classes=4)
    ctx = {"model": model, "data": ((x, y), val, test), "fast": True, "variants": []}
    rows = dict(tour.tour_step(ctx))
    assert [v["variant"] for v in ctx["variants"]] == ["model fp16 autocast", "model bf16 autocast"]
    accs = [float(v) for v in rows["accuracy fp32 / fp16 / bf16 autocast"].split(" / ")]
    assert abs(accs[1] - accs[0]) < 0.05 and abs(accs[2] - accs[0]) < 0.05
    assert rows["backward memory under fp16 autocast"].endswith("x of fp32 (batch 64)")
    assert model.training
