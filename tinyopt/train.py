"""The PyTorch-style training loop behind `tinyopt train` and `tinyopt tour`.

One run trains a classifier on Fashion-MNIST (or arrays you pass in) and writes, in its folder:

- `config.json`     the settings (so `--resume DIR` and `tinyopt eval DIR` need nothing else);
- `metrics.jsonl`   one JSON line per epoch: train/val loss and accuracy, the learning rate of
                    every step (`lr_steps`), seconds;
- `checkpoint.npz`  model, optimizer and scheduler state, epoch, global step and the random
                    Generator (tinyopt.checkpoint), rewritten atomically after every epoch;
- `curves.png`, `lr.png`  training curves and the learning rate per step (tinyopt.plot).

The loop, for each epoch and each mini-batch (X, y) drawn in an order shuffled by `rng`:

    z = model(X);  L = cross_entropy(z, y)            (mean over the batch)
    if L is NaN or ±∞: stop, naming epoch and step   (a diverging learning rate, usually)
    optimizer.zero_grad(); L.backward(); optimizer.step()
    scheduler.step()                                  (per step; 'plateau' steps per epoch on val_loss)

Reproducibility: one `np.random.Generator` (from `seed`) initialises the model and shuffles the
data. The checkpoint stores that Generator's state, so a run stopped after epoch k and resumed
from its checkpoint ends bit-identical to a run that was never stopped (tests/test_cli.py checks it).
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from tinyopt import nn
from tinyopt.autograd import no_grad
from tinyopt.checkpoint import CheckpointError, restore, save
from tinyopt.data import DataLoader
from tinyopt.nn import functional as F
from tinyopt.tensor import Tensor

MODELS = ("mlp", "lenet5", "cnn")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
SCHEDULES = ("none", "step", "exp", "cosine", "linear", "onecycle", "plateau")

# Learning rates that train each optimizer well on Fashion-MNIST with batch 64 (used when --lr is omitted).
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adagrad": 0.01, "rmsprop": 0.001,
              "adam": 0.001, "adamw": 0.001}

# Mean and standard deviation of the 60,000 Fashion-MNIST training pixels (scaled to [0, 1]).
PIXEL_MEAN, PIXEL_STD = np.float32(0.2860), np.float32(0.3530)

CONFIG_FILE, METRICS_FILE, CHECKPOINT_FILE = "config.json", "metrics.jsonl", "checkpoint.npz"


class ConfigError(ValueError):
    """A bad setting; the message names the allowed values."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch, the step and the learning rate."""


@dataclasses.dataclass
class TrainConfig:
    model: str = "mlp"
    optimizer: str = "adam"
    lr: float | None = None          # None: DEFAULT_LR[optimizer]
    schedule: str = "none"
    epochs: int = 5
    batch_size: int = 64
    weight_decay: float = 0.0
    momentum: float = 0.9            # for 'momentum' and 'nesterov'
    seed: int = 0
    train_size: int | None = None    # use the first N training images (None: all 60,000)
    test_size: int | None = None     # use the first N test images (None: all 10,000)
    val_fraction: float = 0.1        # the last fraction of the training images is held out

    def validate(self) -> "TrainConfig":
        for name, allowed in (("model", MODELS), ("optimizer", OPTIMIZERS), ("schedule", SCHEDULES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"--{name} {getattr(self, name)!r} is not one of: {', '.join(allowed)}")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"--lr must be a positive number, got {self.lr}")
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.weight_decay < 0:
            raise ConfigError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        for name in ("train_size", "test_size"):
            value = getattr(self, name)
            if value is not None and value < 2:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 2, got {value}")
        return self

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# ----------------------------------------------------------------------------- building blocks


def load_data(config: TrainConfig, data_path=None):
    """((x_train, y_train), (x_val, y_val), (x_test, y_test)) from Fashion-MNIST, pixels standardised
    with the training set's mean and standard deviation, x ← (x/255 − 0.2860)/0.3530, shaped (N, 784) for the MLP and (N, 1, 28, 28) for the CNNs. Raises
    `tinyopt.datasets.DatasetError` (with install instructions) when the files are missing."""
    from tinyopt.datasets import fashion_mnist

    (x, y), (xt, yt) = fashion_mnist.load_data(data_path)
    x, y = x[: config.train_size], y[: config.train_size]
    xt, yt = xt[: config.test_size], yt[: config.test_size]
    shape = (-1, 784) if config.model == "mlp" else (-1, 1, 28, 28)
    x = ((x.astype(np.float32) / 255.0 - PIXEL_MEAN) / PIXEL_STD).reshape(shape)
    xt = ((xt.astype(np.float32) / 255.0 - PIXEL_MEAN) / PIXEL_STD).reshape(shape)
    split = len(x) - max(1, int(round(len(x) * config.val_fraction)))
    return (x[:split], y[:split].astype(np.int64)), (x[split:], y[split:].astype(np.int64)), (xt, yt.astype(np.int64))


def build_model(name: str, rng, in_features: int = 784, num_classes: int = 10):
    """'mlp': 784 → 128 → ReLU → 10; 'lenet5' and 'cnn' (the seeds' Keras CNN): tinyopt.models."""
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(in_features, 128, rng=rng), nn.ReLU(),
                             nn.Linear(128, num_classes, rng=rng))
    import tinyopt.models as models

    if name == "lenet5":
        return models.LeNet5(num_classes=num_classes, rng=rng)
    if name == "cnn":
        return models.KerasCNN(num_classes=num_classes, rng=rng)
    raise ConfigError(f"--model {name!r} is not one of: {', '.join(MODELS)}")


def build_optimizer(config: TrainConfig, params):
    """The tinyopt.optim optimizer for `config.optimizer` (torch's names and defaults; 'momentum' and
    'nesterov' are SGD with momentum μ = config.momentum)."""
    import tinyopt.optim as optim

    lr, wd = config.learning_rate, config.weight_decay
    name = config.optimizer
    if name == "sgd":
        return optim.SGD(params, lr=lr, weight_decay=wd)
    if name in ("momentum", "nesterov"):
        return optim.SGD(params, lr=lr, momentum=config.momentum, nesterov=name == "nesterov", weight_decay=wd)
    cls = {"adagrad": "Adagrad", "rmsprop": "RMSprop", "adam": "Adam", "adamw": "AdamW"}[name]
    return getattr(optim, cls)(params, lr=lr, weight_decay=wd)


def build_scheduler(config: TrainConfig, optimizer, steps_per_epoch: int):
    """(scheduler or None, 'step' | 'epoch'). Every schedule but 'plateau' is stepped per batch over
    T = epochs · steps_per_epoch steps:

        step:      η drops ×0.1 after every T/3 steps            (StepLR)
        exp:       η_t = η₀ · 0.01^(t/T), 100× smaller at the end  (ExponentialLR)
        cosine:    η_t = η₀ (1 + cos(π t/T)) / 2                   (CosineAnnealingLR)
        linear:    η_t = η₀ (1 − 0.99 t/T)                          (LinearLR)
        onecycle:  warm up to η₀ then anneal (OneCycleLR, max_lr = η₀)
        plateau:   η ← η/2 when val_loss has not improved for 1 epoch (ReduceLROnPlateau)
    """
    from tinyopt.optim import lr_scheduler as L

    total = config.epochs * steps_per_epoch
    name = config.schedule
    if name == "none":
        return None, "step"
    if name == "plateau":
        return L.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=1), "epoch"
    if name == "step":
        return L.StepLR(optimizer, step_size=max(1, total // 3), gamma=0.1), "step"
    if name == "exp":
        return L.ExponentialLR(optimizer, gamma=0.01 ** (1.0 / total)), "step"
    if name == "cosine":
        return L.CosineAnnealingLR(optimizer, T_max=total), "step"
    if name == "linear":
        return L.LinearLR(optimizer, start_factor=1.0, end_factor=0.01, total_iters=total), "step"
    if name == "onecycle":
        return L.OneCycleLR(optimizer, max_lr=config.learning_rate, total_steps=total), "step"
    raise ConfigError(f"--schedule {name!r} is not one of: {', '.join(SCHEDULES)}")


def evaluate(model, x, y, batch_size: int = 500):
    """(mean cross-entropy, accuracy, predicted classes) in evaluation mode, without a graph."""
    model.eval()
    total, preds = 0.0, []
    with no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(Tensor(x[start:start + batch_size]))
            yb = y[start:start + batch_size]
            total += float(F.cross_entropy(logits, yb, reduction="sum").item())
            preds.append(np.argmax(logits.data, axis=1))
    model.train()
    pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    return total / max(len(x), 1), float(np.mean(pred == y)) if len(y) else float("nan"), pred


# ----------------------------------------------------------------------------- the run


@dataclasses.dataclass
class RunResult:
    out: Path
    config: TrainConfig
    history: list            # the metrics.jsonl records
    model: object
    test_loss: float | None = None
    test_accuracy: float | None = None
    seconds: float = 0.0


def read_metrics(out) -> list:
    path = Path(out) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_metrics(out: Path, records: list) -> None:
    tmp = out / (METRICS_FILE + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    tmp.replace(out / METRICS_FILE)


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, file=sys.stdout)


def run(config: TrainConfig, out, resume: bool = False, data=None, verbose: int = 1, plots: bool = True,
        data_path=None, stop_after_epoch: int | None = None) -> RunResult:
    """Train according to `config`, writing into folder `out` (see the module docstring).

    `resume=True` continues the run saved in `out` (its config.json and checkpoint.npz; `config`
    may only change `epochs`, and only when the schedule does not depend on it). `data` replaces
    Fashion-MNIST with ((x_train, y_train), (x_val, y_val), (x_test, y_test)). `stop_after_epoch`
    ends the run early as if interrupted (used to test resuming). `verbose`: 0 silent, 1 a line per
    epoch (plus a progress bar on a terminal)."""
    out = Path(out)
    start_time = time.perf_counter()
    if resume:
        saved = TrainConfig.from_dict(json.loads((out / CONFIG_FILE).read_text())) if (out / CONFIG_FILE).exists() else None
        if saved is None or not (out / CHECKPOINT_FILE).exists():
            raise ConfigError(f"--resume {out}: no {CONFIG_FILE} and {CHECKPOINT_FILE} there; start with `tinyopt train --out {out}`")
        if config is not None and config.epochs != saved.epochs:
            if saved.schedule not in ("none", "plateau"):
                raise ConfigError(f"--epochs cannot change on resume: the {saved.schedule!r} schedule was planned for {saved.epochs} epochs")
            saved.epochs = config.epochs
        config = saved
    config.validate()
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")

    train, val, test = data if data is not None else load_data(config, data_path)
    x_train, y_train = train
    rng = np.random.default_rng(config.seed)
    model = build_model(config.model, rng, in_features=int(np.prod(x_train.shape[1:])),
                        num_classes=int(max(y_train.max(), val[1].max(), test[1].max())) + 1)
    optimizer = build_optimizer(config, model.parameters())
    steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
    scheduler, sched_every = build_scheduler(config, optimizer, steps_per_epoch)

    start_epoch, global_step, history = 0, 0, []
    if resume:
        try:
            ckpt = restore(out / CHECKPOINT_FILE, model=model, optimizer=optimizer, scheduler=scheduler)
        except CheckpointError as e:
            raise ConfigError(str(e)) from None
        start_epoch, global_step, rng = int(ckpt["epoch"]), int(ckpt["global_step"]), ckpt["rng"]
        history = [r for r in read_metrics(out) if r["epoch"] <= start_epoch]
        _write_metrics(out, history)
    else:
        _write_metrics(out, [])

    loader = DataLoader((x_train, y_train), batch_size=config.batch_size, shuffle=True, rng=rng)
    interactive = verbose >= 1 and sys.stdout.isatty()
    if verbose and start_epoch:
        print(f"resuming {out} after epoch {start_epoch}/{config.epochs}", flush=True)
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        model.train()
        loss_sum, correct, seen, lr_steps = 0.0, 0, 0, []
        bar = _progress(steps_per_epoch, f"epoch {epoch + 1}/{config.epochs}", interactive)
        for step, (xb, yb) in enumerate(loader):
            lr = optimizer.param_groups[0]["lr"]
            logits = model(Tensor(xb))
            loss = F.cross_entropy(logits, yb)
            value = float(loss.item())
            if not math.isfinite(value):
                if bar is not None:
                    bar.close()
                raise TrainingDiverged(
                    f"loss became {value} at epoch {epoch + 1}, step {step + 1} (global step {global_step + 1}) "
                    f"with learning rate {lr:g}: lower it, e.g. --lr {lr / 10:g}"
                )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None and sched_every == "step":
                scheduler.step()
            global_step += 1
            lr_steps.append(lr)
            loss_sum += value * len(yb)
            correct += int(np.sum(np.argmax(logits.data, axis=1) == yb))
            seen += len(yb)
            if bar is not None:
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}", refresh=False)
                bar.update(1)
        if bar is not None:
            bar.close()
        val_loss, val_acc, _ = evaluate(model, *val)
        if scheduler is not None and sched_every == "epoch":
            scheduler.step(val_loss)
        record = {
            "epoch": epoch + 1, "step": global_step, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
            "val_loss": val_loss, "val_accuracy": val_acc, "lr": optimizer.param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - t0, 3), "lr_steps": lr_steps,
        }
        history.append(record)
        with open(out / METRICS_FILE, "a") as f:
            f.write(json.dumps(record) + "\n")
        save({"model": model, "optimizer": optimizer, "scheduler": scheduler.state_dict() if scheduler else None,
              "epoch": epoch + 1, "global_step": global_step, "rng": rng, "config": dataclasses.asdict(config)},
             out / CHECKPOINT_FILE)
        if verbose:
            print(f"epoch {epoch + 1}/{config.epochs}  loss {record['train_loss']:.4f}  acc {record['train_accuracy']:.4f}  "
                  f"val_loss {val_loss:.4f}  val_acc {val_acc:.4f}  lr {record['lr']:.3g}  {record['seconds']:.1f}s", flush=True)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            break

    result = RunResult(out, config, history, model, seconds=time.perf_counter() - start_time)
    if history and history[-1]["epoch"] == config.epochs:
        result.test_loss, result.test_accuracy, _ = evaluate(model, *test)
    if plots and history:
        write_plots(out, history)
    return result


def write_plots(out, history: list) -> list:
    """curves.png (loss and accuracy per epoch) and lr.png (learning rate per step) in `out`."""
    from tinyopt import plot

    out = Path(out)
    plot.training_curves(history, metrics=("loss", "accuracy"), save=out / "curves.png", close=True)
    lrs = [lr for r in history for lr in r.get("lr_steps", [])]
    plot.lr_schedule(lrs, save=out / "lr.png", close=True)
    return [out / "curves.png", out / "lr.png"]


def load_run(out, data_path=None):
    """(config, model with the checkpoint's weights) for a run folder; used by `tinyopt eval`."""
    out = Path(out)
    if not (out / CONFIG_FILE).exists() or not (out / CHECKPOINT_FILE).exists():
        raise ConfigError(f"{out} is not a training run (no {CONFIG_FILE} / {CHECKPOINT_FILE}); train one with `tinyopt train --out {out}`")
    config = TrainConfig.from_dict(json.loads((out / CONFIG_FILE).read_text()))
    model = build_model(config.model, np.random.default_rng(config.seed))
    try:
        restore(out / CHECKPOINT_FILE, model=model)
    except CheckpointError as e:
        raise ConfigError(str(e)) from None
    return config, model


__all__ = [
    "ConfigError", "DEFAULT_LR", "MODELS", "OPTIMIZERS", "RunResult", "SCHEDULES", "TrainConfig", "TrainingDiverged",
    "build_model", "build_optimizer", "build_scheduler", "evaluate", "load_data", "load_run", "read_metrics", "run",
    "write_plots",
]
