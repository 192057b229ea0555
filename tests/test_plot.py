"""tinyopt.plot: every function returns a Figure, draws what it was given and writes a PNG."""
import numpy as np
import pytest

from tinyopt import nn, plot, tensor


def _png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    return data


def test_headless_backend_is_agg():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    out = subprocess.run([sys.executable, "-c", "import tinyopt.plot, matplotlib; print(matplotlib.get_backend())"],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip().lower() == "agg"


def test_training_curves_from_history_dict_and_records(tmp_path):
    h = {"loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.7], "accuracy": [0.5, 0.7, 0.8], "val_accuracy": [0.4, 0.6, 0.7]}
    fig = plot.training_curves(h, save=tmp_path / "curves.png")
    assert len(fig.axes) == 2
    lines = fig.axes[0].get_lines()
    assert [list(l.get_ydata()) for l in lines] == [h["loss"], h["val_loss"]]
    _png(tmp_path / "curves.png")
    plot.close(fig)
    records = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.2}, {"epoch": 2, "train_loss": 0.5, "val_loss": 0.9}]
    fig = plot.training_curves(records, metrics=("loss", "accuracy"))
    assert len(fig.axes) == 1 and list(fig.axes[0].get_lines()[0].get_xdata()) == [1, 2]
    plot.close(fig)
    with pytest.raises(ValueError, match="none of the metrics"):
        plot.training_curves({"foo": [1]})


def test_lr_schedule_several_series(tmp_path):
    fig = plot.lr_schedule({"step": [0.1] * 5 + [0.01] * 5, "cos": 0.05 * (1 + np.cos(np.linspace(0, np.pi, 10)))},
                           log=True, save=tmp_path / "lr.png", close=True)
    assert len(fig.axes[0].get_lines()) == 2 and fig.axes[0].get_yscale() == "log"
    _png(tmp_path / "lr.png")


def test_optimizer_paths_on_rosenbrock(tmp_path):
    def rosen(x, y):
        return (1 - x) ** 2 + 100 * (y - x**2) ** 2

    path = np.array([[-1.5, 2.0], [-1.0, 1.0], [0.0, 0.2], [1.0, 1.0]])
    fig = plot.optimizer_paths(rosen, {"sgd": path}, minimum=(1, 1), save=tmp_path / "paths.png", close=True)
    line = fig.axes[0].get_lines()[0]
    np.testing.assert_array_equal(line.get_xdata(), path[:, 0])
    _png(tmp_path / "paths.png")
    with pytest.raises(ValueError, match=r"shape \(T, 2\)"):
        plot.optimizer_paths(rosen, {"bad": np.zeros((3, 3))})


def test_histograms_of_weights_and_grads(tmp_path):
    model = nn.Sequential(nn.Linear(4, 3, rng=0), nn.ReLU(), nn.Linear(3, 2, rng=1))
    with pytest.raises(ValueError, match="backward"):
        plot.histograms(model, which="grads")
    model(tensor(np.ones((5, 4), np.float32))).sum().backward()
    fig = plot.histograms(model, which="grads", save=tmp_path / "g.png", close=True)
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert len(titled) == 4 and titled[0].get_title().startswith("0.weight")
    _png(tmp_path / "g.png")
    fig = plot.histograms({"w": np.arange(100.0)}, bins=10)
    counts = [p.get_height() for p in fig.axes[0].patches]
    assert counts == [10] * 10
    plot.close(fig)


def test_confusion_counts_and_plot(tmp_path):
    y_true = np.array([0, 0, 1, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0, 2])
    c = plot.confusion_counts(y_true, y_pred)
    assert c.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    fig = plot.confusion_matrix(y_true, y_pred, class_names=["a", "b", "c"], save=tmp_path / "cm.png", close=True)
    assert "accuracy 0.714" in fig.axes[0].get_title()
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["1", "1", "0", "0", "2", "0", "1", "0", "2"]
    _png(tmp_path / "cm.png")


def test_smooth_is_a_bias_corrected_moving_average():
    values = [4.0, 2.0, 3.0]
    beta = 0.5
    s1 = (1 - beta) * 4.0
    s2 = beta * s1 + (1 - beta) * 2.0
    s3 = beta * s2 + (1 - beta) * 3.0
    expected = [s1 / (1 - beta), s2 / (1 - beta**2), s3 / (1 - beta**3)]
    assert np.allclose(plot.smooth(values, beta), expected)
    assert plot.smooth([5.0] * 10, 0.9) == pytest.approx([5.0] * 10)   # a constant stays constant from step 1
    with pytest.raises(ValueError, match="beta"):
        plot.smooth(values, 1.0)


def test_step_losses_plot(tmp_path):
    fig = plot.step_losses(np.linspace(2, 0.5, 30), steps_per_epoch=10, save=tmp_path / "steps.png", close=True)
    assert fig is not None
    _png(tmp_path / "steps.png")
    with pytest.raises(ValueError, match="non-empty"):
        plot.step_losses([])
