"""`tinyopt prune RUN_DIR`: the table and files for each method, and one-line errors (exit 2) for
user mistakes, with the run folder left unchanged."""
import json

import pytest

from conftest import have_fashion_mnist, needs_fashion_mnist
from tinyopt import cli


def test_bad_values_are_one_line_exit_2(tmp_path, capsys):
    for argv, expected in [(["prune"], "required: run"),
                           (["prune", str(tmp_path), "--sparsity", "90"], "use 0.9"),
                           (["prune", str(tmp_path), "--sparsity", "0"], "strictly between 0 and 1"),
                           (["prune", str(tmp_path), "--method", "l2"], "invalid choice"),
                           (["prune", str(tmp_path), "--finetune-epochs", "-1"], ">= 0"),
                           (["prune", str(tmp_path), "--method", "agp", "--finetune-epochs", "0"], "--finetune-epochs 1"),
                           (["prune", str(tmp_path / "none")], "is not a training run")]:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, (argv, err)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    if not have_fashion_mnist():
        pytest.skip("Fashion-MNIST files are not installed")
    from tinyopt.train import TrainConfig, run

    out = tmp_path_factory.mktemp("run")
    run(TrainConfig(model="mlp", epochs=1, train_size=2000, test_size=500, seed=0), out, verbose=0, plots=False)
    return out


@needs_fashion_mnist
@pytest.mark.parametrize("method", ["global", "structured", "agp"])
def test_prune_methods_write_table_and_report(run_dir, method, capsys):
    ckpt = (run_dir / "checkpoint.npz").read_bytes()
    argv = ["prune", str(run_dir), "--method", method, "--sparsity", "0.85" if method != "structured" else "0.5",
            "--train-size", "1000", "--latency-batch", "128"] + (["--no-plots"] if method != "global" else [])
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "dense" in out and "int8 + Huffman" in out
    report = json.loads((run_dir / f"prune-{method}" / "report.json").read_text())
    rows = {r["variant"].strip(): r for r in report["rows"]}
    dense = rows["dense"]
    last = report["rows"][-1]
    assert last["bytes"] < dense["bytes"] / 5
    if method == "structured":
        assert rows["shrunk (channels removed)"]["parameters"] < 0.6 * dense["parameters"]
    else:
        assert rows["CSR Linear layers (to_sparse)"]["nonzeros"] < 0.2 * dense["parameters"]
    if method == "global":
        for name in ("sensitivity.png", "sparsity_per_layer.png", "weights_before_after.png"):
            assert (run_dir / "prune-global" / name).stat().st_size > 1000
    assert (run_dir / "checkpoint.npz").read_bytes() == ckpt


def test_tour_step_rows(tmp_path):
    import numpy as np

    from tinyopt import nn
    from tinyopt.prune.tour import tour_step

    g = np.random.default_rng(0)
    centers = g.normal(scale=2.0, size=(4, 20))

    def split(m):
        y = g.integers(0, 4, size=m)
        return (centers[y] + g.normal(size=(m, 20))).astype(np.float32), y.astype(np.int64)

    model = nn.Sequential(nn.Linear(20, 32, rng=0), nn.ReLU(), nn.Linear(32, 16, rng=1), nn.ReLU(), nn.Linear(16, 4, rng=2))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    ctx = {"model": model, "data": (split(400), split(50), split(300)), "fast": True, "out": tmp_path}
    rows = dict(tour_step(ctx))
    assert set(rows) == {"pruned 50 % channels + shrink", "batch latency dense / shrunk", "prune 90 % + int8 + Huffman"}
    assert "x fewer" in rows["pruned 50 % channels + shrink"] and (tmp_path / "pruned_int8.npz").is_file()
    assert all(np.array_equal(model.state_dict()[k], v) for k, v in before.items())
    assert [v["variant"] for v in ctx["variants"]] == ["pruned 50 % channels + shrink", "prune 90 % + int8 + Huffman"]
