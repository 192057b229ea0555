"""Plots for training runs and lessons (matplotlib; the Agg backend when there is no display).

Every function returns the `matplotlib.figure.Figure` it drew and, given `save="file.png"`,
also writes it as a PNG. Figures are made with `pyplot.subplots`, so they show in notebooks;
scripts that make many of them should `close(fig)` (or pass `close=True` with `save=`).

- `training_curves(history)`: loss / accuracy per epoch, training and validation.
- `lr_schedule(lrs)`: learning rate per step, for one or several schedules.
- `optimizer_paths(f, paths)`: paths of optimizers over the contour lines of f(x, y).
- `histograms(model)`: histograms of every parameter's values (`which="weights"`) or gradients.
- `confusion_matrix(y_true, y_pred)`: counts C[i, j] = #{n : y_n = i, ŷ_n = j}, as a heat map.
- `loss_surface_1d(alphas, losses)`, `loss_surface_2d(alphas, betas, z, paths)`: loss landscapes from
  `tinyopt.landscape` (curves along directions; contours on a plane with optimizer trajectories).
- `sharpness_history(steps, sharpness, lrs)`: λ_max of the Hessian along runs, with each run's 2/η.
"""
from __future__ import annotations

import os
import sys

import matplotlib
import numpy as np

if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        matplotlib.use("Agg")  # headless (CI, ssh): draw to files only

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def _finish(fig, save, close: bool):
    fig.tight_layout()
    if save is not None:
        folder = os.path.dirname(os.fspath(save))
        if folder:
            os.makedirs(folder, exist_ok=True)
        fig.savefig(save, dpi=100)
        if close:
            plt.close(fig)
    return fig


def close(fig) -> None:
    plt.close(fig)


# ----------------------------------------------------------------------------- training curves


def _history_dict(history) -> dict:
    """Accept a Keras `History`, its `.history` dict of lists, or a list of per-epoch dicts
    (the records of metrics.jsonl)."""
    if hasattr(history, "history"):
        history = history.history
    if isinstance(history, (list, tuple)):
        out: dict = {}
        for record in history:
            for k, v in record.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out.setdefault(k, []).append(v)
        return out
    if isinstance(history, dict):
        return history
    raise TypeError(f"history must be a History, a dict of lists or a list of dicts, got {type(history).__name__}")


def training_curves(history, metrics=("loss", "accuracy"), title=None, save=None, close: bool = False):
    """One panel per metric: the training value (`name` or `train_name`) and the validation value
    (`val_name`) per epoch. Metrics that the history does not have are skipped."""
    h = _history_dict(history)
    panels = []
    for m in metrics:
        train = h.get(m, h.get(f"train_{m}"))
        val = h.get(f"val_{m}")
        if train is not None or val is not None:
            panels.append((m, train, val))
    if not panels:
        raise ValueError(f"history has none of the metrics {list(metrics)}; it has {sorted(h)}")
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (name, train, val) in zip(axes[0], panels):
        epochs = h.get("epoch")
        for values, label, style in ((train, "training", "-o"), (val, "validation", "--s")):
            if values is None:
                continue
            xs = epochs if epochs is not None and len(epochs) == len(values) else np.arange(1, len(values) + 1)
            ax.plot(xs, values, style, label=label, markersize=3)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _finish(fig, save, close)


def smooth(values, beta: float = 0.98) -> np.ndarray:
    """Exponential moving average with bias correction (as TensorBoard's smoothing and Adam's m̂):
    s_t = β s_{t−1} + (1 − β) x_t, s_0 = 0, shown as s_t / (1 − βᵗ), so the start is not pulled to 0."""
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"smoothing beta must be in [0, 1), got {beta}")
    out, s = np.empty(len(values)), 0.0
    for t, x in enumerate(values, start=1):
        s = beta * s + (1 - beta) * float(x)
        out[t - 1] = s / (1 - beta**t)
    return out


def _auto_beta(n: int) -> float:
    """A smoothing β whose window (≈ 1/(1 − β) steps) is about 5% of the run, between 2 and 50 steps."""
    return min(0.98, max(0.5, 1 - 20 / max(n, 1)))


def step_losses(losses, steps_per_epoch=None, beta=None, title="training loss per step", save=None,
                close: bool = False):
    """The loss of every training step (faint) and its bias-corrected moving average (`smooth`; β by
    default sized to the run, see `_auto_beta`), with the epoch boundaries marked when
    `steps_per_epoch` is given."""
    losses = np.asarray(losses, dtype=np.float64)
    if losses.ndim != 1 or losses.size == 0:
        raise ValueError(f"losses must be a non-empty 1-D sequence, got shape {losses.shape}")
    beta = _auto_beta(losses.size) if beta is None else beta
    fig, ax = plt.subplots(figsize=(6, 3.6))
    steps = np.arange(1, losses.size + 1)
    ax.plot(steps, losses, color="C0", alpha=0.25, lw=0.8, label="per step")
    ax.plot(steps, smooth(losses, beta), color="C0", lw=1.8, label=f"smoothed (EMA, β = {beta:g})")
    if steps_per_epoch:
        for boundary in range(steps_per_epoch, losses.size, steps_per_epoch):
            ax.axvline(boundary + 0.5, color="gray", lw=0.6, ls=":")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _finish(fig, save, close)


def tour_summary(history, variants, title="tinyopt tour: one network through the subject", save=None,
                 close: bool = False):
    """The tour on one page: the training loss per step (smoothed) and per epoch, and every variant
    the tour made (pruned, quantized, distilled, mixed precision) as accuracy against size in bytes.
    `history`: the run's records (dicts with epoch, val_loss and loss_steps or train_loss)."""
    records = list(history)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    losses = [x for r in records for x in r.get("loss_steps", [])]
    ax = axes[0]
    if losses:
        steps = np.arange(1, len(losses) + 1)
        ax.plot(steps, losses, color="C0", alpha=0.2, lw=0.7)
        ax.plot(steps, smooth(losses, _auto_beta(len(losses))), color="C0", lw=1.6,
                label="training loss per step (smoothed)")
        per_epoch = len(records[0]["loss_steps"])
        ax.plot([per_epoch * r["epoch"] for r in records], [r["val_loss"] for r in records], "s--", color="C1",
                label="validation loss per epoch")
        ax.set_xlabel("step")
    else:   # a history without per-step losses (an older run)
        ax.plot([r["epoch"] for r in records], [r["train_loss"] for r in records], "-o", label="training loss")
        ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("training")
    ax = axes[1]
    for i, v in enumerate(variants):
        ax.scatter(v["bytes"], 100 * v["accuracy"], s=40, color=f"C{i % 10}", zorder=3)
        ax.annotate(v["variant"], (v["bytes"], 100 * v["accuracy"]), textcoords="offset points", xytext=(5, 4),
                    fontsize=8)
    if variants:
        ax.set_xscale("log")
    ax.set_xlabel("model size (bytes, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3, which="both")
    ax.set_title("every variant of the tour")
    fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, save, close)


# ----------------------------------------------------------------------------- learning rate


def lr_schedule(lrs, title="learning rate per step", log: bool = False, save=None, close: bool = False):
    """Plot learning rates per step: `lrs` is a sequence, or a dict name → sequence."""
    series = lrs if isinstance(lrs, dict) else {"lr": lrs}
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, values in series.items():
        values = np.asarray(values, dtype=float)
        ax.plot(np.arange(len(values)), values, label=str(name))
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    if log:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    return _finish(fig, save, close)


# ----------------------------------------------------------------------------- optimizer paths


def _contour(ax, gx, gy, z, levels, log_levels: bool):
    """Contour lines of z; with `log_levels`, levels spaced geometrically between min z and max z
    (shows narrow valleys better than even spacing)."""
    if log_levels and np.isfinite(z).all():
        zmin = z.min()
        shifted = z - zmin + 1e-3 * (z.max() - zmin + 1e-12)
        lv = np.geomspace(shifted.min(), shifted.max(), levels) if isinstance(levels, int) else levels
        return ax.contour(gx, gy, shifted, levels=lv, cmap="viridis", linewidths=0.7)
    return ax.contour(gx, gy, z, levels=levels, cmap="viridis", linewidths=0.7)


def optimizer_paths(f, paths: dict, xlim=None, ylim=None, levels=30, log_levels: bool = True, title=None,
                    minimum=None, save=None, close: bool = False):
    """Contour lines of f(x, y) (a function on NumPy arrays, evaluated on a 200×200 grid) with each
    optimizer's path `paths[name]` (an array of shape (T, 2)) drawn over them.

    With `log_levels`, contour levels are spaced geometrically between min f and max f on the
    grid, which shows narrow valleys (Rosenbrock) better than even spacing."""
    arrays = {name: np.asarray(p, dtype=float) for name, p in paths.items()}
    for name, p in arrays.items():
        if p.ndim != 2 or p.shape[1] != 2:
            raise ValueError(f"path {name!r} must have shape (T, 2), got {p.shape}")
    if xlim is None or ylim is None:
        pts = np.concatenate(list(arrays.values())) if arrays else np.zeros((1, 2))
        pts = pts[np.all(np.isfinite(pts), axis=1)]
        lo, hi = pts.min(0), pts.max(0)
        pad = np.maximum(0.2 * (hi - lo), 0.5)
        xlim = xlim or (lo[0] - pad[0], hi[0] + pad[0])
        ylim = ylim or (lo[1] - pad[1], hi[1] + pad[1])
    gx, gy = np.meshgrid(np.linspace(*xlim, 200), np.linspace(*ylim, 200))
    z = np.asarray(f(gx, gy), dtype=float)
    fig, ax = plt.subplots(figsize=(6, 5))
    _contour(ax, gx, gy, z, levels, log_levels)
    for name, p in arrays.items():
        ax.plot(p[:, 0], p[:, 1], "-o", markersize=2, linewidth=1.2, label=f"{name} ({len(p) - 1} steps)")
    if minimum is not None:
        ax.plot([minimum[0]], [minimum[1]], "k*", markersize=12, label="minimum")
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    return _finish(fig, save, close)


# ----------------------------------------------------------------------------- histograms


def histograms(model_or_arrays, which: str = "weights", bins: int = 50, save=None, close: bool = False):
    """Histograms of each parameter's values (`which="weights"`) or gradients (`which="grads"`).

    `model_or_arrays` is a Module (its `named_parameters()`) or a dict name → array."""
    if which not in ("weights", "grads"):
        raise ValueError(f"which must be 'weights' or 'grads', got {which!r}")
    if isinstance(model_or_arrays, dict):
        arrays = {k: np.asarray(v) for k, v in model_or_arrays.items()}
    else:
        arrays = {}
        for name, p in model_or_arrays.named_parameters():
            value = p.data if which == "weights" else (None if p.grad is None else np.asarray(p.grad))
            if value is not None:
                arrays[name] = value
    if not arrays:
        raise ValueError("nothing to plot: no parameters" + (" have gradients (call backward() first)" if which == "grads" else ""))
    n = len(arrays)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, (name, values) in zip(axes.flat, arrays.items()):
        v = np.asarray(values, dtype=float).ravel()
        ax.hist(v, bins=bins, color="tab:blue" if which == "weights" else "tab:orange")
        ax.set_title(f"{name}\nmean {v.mean():.2g}, std {v.std():.2g}", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("weights" if which == "weights" else "gradients")
    return _finish(fig, save, close)


# ----------------------------------------------------------------------------- confusion matrix


def confusion_counts(y_true, y_pred, num_classes=None) -> np.ndarray:
    """C[i, j] = number of samples with true class i predicted as j."""
    y_true = np.asarray(y_true).astype(np.int64).ravel()
    y_pred = np.asarray(y_pred).astype(np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {len(y_true)} and {len(y_pred)}")
    if num_classes is None:
        num_classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts


def confusion_matrix(y_true, y_pred, class_names=None, normalize: bool = False, title=None, save=None,
                     close: bool = False):
    """Heat map of `confusion_counts` (rows: true class, columns: predicted class); with
    `normalize`, each row is divided by its total (per-class recall on the diagonal)."""
    n = len(class_names) if class_names is not None else None
    counts = confusion_counts(y_true, y_pred, n)
    shown = counts / np.maximum(counts.sum(1, keepdims=True), 1) if normalize else counts
    k = len(counts)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * k, 0.8 + 0.55 * k))
    im = ax.imshow(shown, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = shown.max() / 2 if shown.size else 0
    for i in range(k):
        for j in range(k):
            text = f"{shown[i, j]:.2f}" if normalize else str(counts[i, j])
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if shown[i, j] > threshold else "black")
    acc = np.trace(counts) / max(counts.sum(), 1)
    ax.set_title(title or f"confusion matrix (accuracy {acc:.3f})")
    return _finish(fig, save, close)


# ----------------------------------------------------------------------------- loss landscapes


def loss_surface_1d(alphas, losses, xlabel: str = "α (along a filter-normalised direction)", log: bool = False,
                    title="loss along directions", save=None, close: bool = False):
    """Curves L(θ* + α δ) against α: `losses` is one sequence or a dict label → sequence (e.g. one
    per random direction, from `tinyopt.landscape.surface_1d`)."""
    alphas = np.asarray(alphas, dtype=float)
    series = losses if isinstance(losses, dict) else {"loss": losses}
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for label, values in series.items():
        values = np.asarray(values, dtype=float)
        if values.shape != alphas.shape:
            raise ValueError(f"curve {label!r} has {values.shape} values for {alphas.shape} alphas")
        ax.plot(alphas, values, label=str(label))
    ax.axvline(0.0, color="k", linewidth=0.5, alpha=0.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("loss")
    if log:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    return _finish(fig, save, close)


def loss_surface_2d(alphas, betas, z, paths=None, levels=30, log_levels: bool = True, xlabel: str = "α",
                    ylabel: str = "β", title="loss surface", save=None, close: bool = False):
    """Contour lines of z[j, i] = L(center + α_i d1 + β_j d2) (from `tinyopt.landscape.surface_2d`
    or `Plane.surface`) and, optionally, trajectories drawn over them: `paths` is a dict
    label → (T, 2) array of (α, β) coordinates (`Plane.coordinates`)."""
    alphas, betas, z = np.asarray(alphas, dtype=float), np.asarray(betas, dtype=float), np.asarray(z, dtype=float)
    if z.shape != (len(betas), len(alphas)):
        raise ValueError(f"z must have shape (len(betas), len(alphas)) = {(len(betas), len(alphas))}, got {z.shape}")
    arrays = {name: np.asarray(p, dtype=float) for name, p in (paths or {}).items()}
    for name, p in arrays.items():
        if p.ndim != 2 or p.shape[1] != 2:
            raise ValueError(f"path {name!r} must have shape (T, 2), got {p.shape}")
    fig, ax = plt.subplots(figsize=(6, 5))
    gx, gy = np.meshgrid(alphas, betas)
    cs = _contour(ax, gx, gy, z, levels, log_levels)
    if not log_levels:
        ax.clabel(cs, fontsize=6)
    for name, p in arrays.items():
        line, = ax.plot(p[:, 0], p[:, 1], "-o", markersize=2, linewidth=1.2, label=f"{name} ({len(p) - 1} steps)")
        ax.plot(p[-1, 0], p[-1, 1], "s", color=line.get_color(), markersize=5)
    ax.set_xlim(alphas.min(), alphas.max())
    ax.set_ylim(betas.min(), betas.max())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if arrays:
        ax.legend(fontsize=8)
    return _finish(fig, save, close)


def sharpness_history(steps, sharpness, lrs=None, losses=None, title="sharpness λ_max along training", save=None,
                      close: bool = False):
    """λ_max(∇²L) per step for one run or several (`sharpness`: sequence or dict label → sequence,
    measured at `steps`), each with its stability threshold 2/η as a dashed line (`lrs`: a number
    or a dict label → η). With `losses` (dict label → loss per step, steps 0, 1, ...), a second
    panel shows the training loss."""
    steps = np.asarray(steps, dtype=float)
    series = sharpness if isinstance(sharpness, dict) else {"λ_max": sharpness}
    rates = lrs if isinstance(lrs, dict) or lrs is None else {label: lrs for label in series}
    panels = 2 if losses else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 3.8), squeeze=False)
    ax = axes[0, 0]
    for label, values in series.items():
        line, = ax.plot(steps, np.asarray(values, dtype=float), label=f"{label}")
        if rates and label in rates:
            ax.axhline(2.0 / rates[label], color=line.get_color(), linestyle="--", linewidth=1,
                       label=f"2/η = {2.0 / rates[label]:.3g}")
    ax.set_xlabel("step")
    ax.set_ylabel("λ_max of the Hessian")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if losses:
        ax2 = axes[0, 1]
        for label, values in losses.items():
            ax2.plot(np.arange(len(values)), np.asarray(values, dtype=float), label=str(label))
        ax2.set_xlabel("step")
        ax2.set_ylabel("training loss")
        ax2.set_yscale("log")
        ax2.set_title("training loss (full batch)")
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=8)
    return _finish(fig, save, close)


__all__ = ["close", "confusion_counts", "confusion_matrix", "histograms", "loss_surface_1d", "loss_surface_2d",
           "lr_schedule", "optimizer_paths", "sharpness_history", "training_curves"]
