"""The quantization report, the tour step and `tinyopt quantize` main(argv)."""
import numpy as np
import pytest

from tinyopt import nn
from tinyopt import quant as Q
from tinyopt.datasets import DatasetError, fashion_mnist


def toy_problem(seed=0, n=400):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, 8, 8)).astype(np.float32)
    y = (x[:, 0, :4].mean(axis=(1, 2)) > 0).astype(np.int64) + 2 * (x[:, 0, 4:].mean(axis=(1, 2)) > 0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=seed), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(64, 16, rng=seed), nn.ReLU(), nn.Linear(16, 4, rng=seed))
    return model, x, y


def test_report_rows_sizes_and_model_untouched():
    model, x, y = toy_problem()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    rep = Q.report(model, (x[:200], y[:200]), calibration=x[200:], train_data=(x[200:], y[200:]), qat_epochs=1,
                   qat_max_steps=3, latency_batch=32, repeats=1)
    names = [r["variant"] for r in rep.rows]
    assert names == ["fp32", "dynamic", "static int8", "int4", "mixed 8/4", "QAT int8"]
    fp32 = rep.row("fp32")
    assert fp32["agree"] == 1.0 and fp32["bytes"] == 4 * sum(p.size for p in model.parameters())
    assert 3.0 < fp32["bytes"] / rep.row("static int8")["bytes"] <= 4.0
    assert rep.row("int4")["bytes"] < rep.row("mixed 8/4")["bytes"] <= rep.row("static int8")["bytes"]
    assert rep.row("static int8")["agree"] > 0.9
    assert rep.row("static int8")["latency_ms"] > 0 and rep.row("int4")["latency_ms"] is None
    assert rep.row("static int8")["cpu_ms"] >= 0 and rep.row("int4")["cpu_ms"] is None
    text = str(rep)
    assert "static int8" in text and "smaller" in text
    header = text.splitlines()[0].split()
    assert header.index("wall") < header.index("speed-up") < header.index("cpu")    # wall time is the primary column
    int8_line = next(line for line in text.splitlines() if line.startswith("static int8"))
    speed = fp32["latency_ms"] / rep.row("static int8")["latency_ms"]
    assert f"{speed:.2f}x" in int8_line                                               # speed-up from wall times
    for k, v in model.state_dict().items():                  # report works on copies
        np.testing.assert_array_equal(v, before[k])


def test_tour_step_rows():
    from tinyopt.quant.tour import tour_step

    model, x, y = toy_problem(1)
    ctx = {"model": model, "data": ((x[:300], y[:300]), (x[300:350], y[300:350]), (x[350:], y[350:])), "fast": True}
    rows = list(tour_step(ctx))
    labels = [label for label, _ in rows]
    assert "int8 weights (static PTQ)" in labels and "batch latency fp32 / int8 (wall)" in labels
    assert all(isinstance(value, str) and value for _, value in rows)


def _fashion_mnist_present() -> bool:
    try:
        return all(fashion_mnist.find_file(name).is_file() for name in fashion_mnist.FILES)
    except DatasetError:
        return False


@pytest.mark.skipif(not _fashion_mnist_present(), reason="Fashion-MNIST files are not installed")
def test_cli_quantizes_a_training_run(tmp_path, capsys):
    from tinyopt.quant.cli import main
    from tinyopt.train import TrainConfig, run

    config = TrainConfig(model="mlp", optimizer="adam", epochs=1, train_size=300, test_size=100, seed=0)
    run(config, tmp_path / "run", verbose=0, plots=False)
    assert main([str(tmp_path / "run"), "--test-size", "100", "--calibration", "100", "--latency-batch", "32"]) == 0
    out = capsys.readouterr().out
    assert "static int8" in out and "dynamic" in out
    assert main([str(tmp_path / "missing")]) == 2
    assert "is not a training run" in capsys.readouterr().err
