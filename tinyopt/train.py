"""The PyTorch-style training loop behind `tinyopt train` and `tinyopt tour`.

One run trains a classifier on Fashion-MNIST (or arrays you pass in) and writes, in its folder:

- `config.json`     the settings (so `--resume DIR` and `tinyopt eval DIR` need nothing else);
- `metrics.jsonl`   one JSON line per epoch: train/val loss and accuracy, the learning rate of
                    every step (`lr_steps`), seconds;
- `checkpoint.npz`  model, optimizer and scheduler state, epoch, global step, the random
                    Generator, the config and the metrics (tinyopt.checkpoint): the run's record;
- `curves.png`, `lr.png`  training curves and the learning rate per step (tinyopt.plot).

The loop is tinyopt.loop's epoch, for each mini-batch (X, y) drawn in an order shuffled by `rng`:

    z = model(X);  L = cross_entropy(z, y)            (mean over the batch)
    if L is NaN or ±∞: stop, naming epoch and step   (before the update; a diverging learning rate, usually)
    optimizer.zero_grad(); L.backward(); optimizer.step()
    scheduler.step()                                  (per step; 'plateau' steps per epoch on val_loss)

and after each epoch: the validation loss (NaN or ±∞ stops the run too), then one commit of the
folder: checkpoint.npz, metrics.jsonl, config.json, each replaced atomically, in that order (the
checkpoint refuses non-finite weights, and then nothing is written). Nothing at all is written
before the settings are checked and the data is loaded, and a new run replaces an old one in the
same folder only when its first epoch is committed.

Reproducibility: one `np.random.Generator` (from `seed`) initialises the model and shuffles the
data. The checkpoint stores that Generator's state, so a run stopped after epoch k and resumed
from its checkpoint ends bit-identical to a run that was never stopped (tests/test_cli.py checks it).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from tinyopt import nn
from tinyopt.checkpoint import CheckpointError, NonFiniteValues, atomic_write, restore, save
from tinyopt.data import DataLoader
from tinyopt.loop import (
    Hooks, Meter, ProgressBar, Step, TrainingDiverged, divergence_message, evaluation, train_epoch,
)
from tinyopt.nn import functional as F
from tinyopt.tensor import Tensor
from tinyopt.transforms import fashion_mnist_augment

MODELS = ("mlp", "lenet5", "cnn", "cnn92")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
SCHEDULES = ("none", "step", "exp", "cosine", "linear", "onecycle", "plateau")
AMP_MODES = ("none", "fp16", "bf16")
# `tinyopt train --preset NAME`: these flags first, so any flag given on the command line overrides them.
# 'cnn92' is benchmarks/train_cnn.py --recipe cnn92 (README "Accuracy in a time budget"; train.py holds out
# val_fraction of the training images, so it trains on 54,000 of them where the benchmark uses all 60,000).
PRESETS = {"cnn92": ("--model", "cnn92", "--optimizer", "adamw", "--lr", "3e-3", "--schedule", "onecycle",
                     "--epochs", "9", "--batch-size", "128", "--weight-decay", "1e-2", "--augment", "--no-crop")}

# Learning rates that train each optimizer well on Fashion-MNIST with batch 64 (used when --lr is omitted).
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adagrad": 0.01, "rmsprop": 0.001,
              "adam": 0.001, "adamw": 0.001}

# Mean and standard deviation of the 60,000 Fashion-MNIST training pixels (scaled to [0, 1]).
PIXEL_MEAN, PIXEL_STD = np.float32(0.2860), np.float32(0.3530)

CONFIG_FILE, METRICS_FILE, CHECKPOINT_FILE = "config.json", "metrics.jsonl", "checkpoint.npz"


class ConfigError(ValueError):
    """A bad setting; the message names the allowed values."""


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


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
    amp: str = "none"                # mixed precision: "fp16" (autocast + GradScaler), "bf16" (autocast), "none"
    distributed: bool = False        # data-parallel over mpiexec's ranks (tinyopt.distributed.training)
    world_size: int = 1              # ranks; batch_size is per rank, the global batch batch_size · world_size
    scale_lr: str = "none"           # 'linear': lr · world_size (Goyal et al. 2017)
    warmup_epochs: float = 0.0       # with scale_lr 'linear': ramp lr → lr · world_size over these epochs
    augment: bool = False            # random crop (pad 2) + horizontal flip per batch (tinyopt.transforms)
    crop: bool = True                # with augment: the random crop too (False: flips only, as the cnn92 preset)

    def validate(self) -> "TrainConfig":
        """Check every setting (types too, for a config.json edited by hand); raise ConfigError
        naming the first bad one and the values it may take."""
        for name, allowed in (("model", MODELS), ("optimizer", OPTIMIZERS), ("schedule", SCHEDULES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"--{name} {getattr(self, name)!r} is not one of: {', '.join(allowed)}")
        if self.lr is not None and not (_is_real(self.lr) and self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"--lr must be a positive number, got {self.lr!r}")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be a whole number >= 1, got {value!r}")
        if not (_is_real(self.weight_decay) and math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"--weight-decay must be a number >= 0, got {self.weight_decay!r}")
        if not (_is_real(self.momentum) and 0.0 <= self.momentum < 1.0):
            why = " (μ >= 1 never forgets a gradient and diverges)" if _is_real(self.momentum) and self.momentum >= 1 else ""
            raise ConfigError(f"--momentum must be in [0, 1), got {self.momentum!r}{why}; 0.9 is the usual choice")
        if self.optimizer == "nesterov" and self.momentum == 0:
            raise ConfigError("--optimizer nesterov needs --momentum > 0 (Nesterov's look-ahead is along the "
                              "momentum; with --momentum 0 use --optimizer sgd)")
        if not _is_int(self.seed) or self.seed < 0:
            raise ConfigError(f"--seed must be a whole number >= 0, got {self.seed!r}")
        if self.amp not in AMP_MODES:
            raise ConfigError(f"--amp {self.amp!r} is not one of: {', '.join(AMP_MODES)}")
        if not (_is_real(self.val_fraction) and 0.0 < self.val_fraction < 1.0):
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")
        if not isinstance(self.augment, bool):
            raise ConfigError(f"augment must be true or false, got {self.augment!r}")
        if not isinstance(self.crop, bool):
            raise ConfigError(f"crop must be true or false, got {self.crop!r}")
        for name in ("train_size", "test_size"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 2):
                raise ConfigError(f"--{name.replace('_', '-')} must be a whole number >= 2, got {value!r}")
        if self.distributed or self.world_size != 1 or self.scale_lr != "none" or self.warmup_epochs:
            from tinyopt.distributed.training import check_config

            check_config(self)
        return self

    @property
    def learning_rate(self) -> float:
        lr = self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]
        return lr * self.world_size if self.scale_lr == "linear" else lr

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """The config of a dict (config.json's content); unknown names are refused (a typo would
        otherwise be ignored). Call validate() on the result."""
        if not isinstance(d, dict):
            raise ConfigError(f"a config must be a JSON object of settings, got a {type(d).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in d if k not in names]
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(map(repr, unknown))} (known: {', '.join(names)})")
        return cls(**d)


def read_config(out, what: str = "--resume") -> TrainConfig:
    """The validated config.json of run folder `out`; every problem is a ConfigError naming the file."""
    path = Path(out) / CONFIG_FILE
    fix = f"restore the file, or start a new run with `tinyopt train --out {out}`"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} {out}: no {CONFIG_FILE} and {CHECKPOINT_FILE} there; start with "
                          f"`tinyopt train --out {out}`") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} cannot be read ({getattr(e, 'strerror', None) or e}); {fix}") from None
    try:
        d = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"{path} is not valid JSON ({e}); {fix}") from None
    try:
        return TrainConfig.from_dict(d).validate()
    except (ConfigError, TypeError) as e:
        raise ConfigError(f"{path}: {e}; {fix}") from None


# ----------------------------------------------------------------------------- building blocks


def load_data(config: TrainConfig, data_path=None):
    """((x_train, y_train), (x_val, y_val), (x_test, y_test)) from Fashion-MNIST, pixels standardised
    with the training set's mean and standard deviation, x ← (x/255 − 0.2860)/0.3530, shaped (N, 784) for the MLP and (N, 1, 28, 28) for the CNNs. Raises
    `tinyopt.datasets.DatasetError` (with install instructions) when the files are missing."""
    from tinyopt.datasets import fashion_mnist

    (x, y), (xt, yt) = fashion_mnist.load_data(data_path)
    for flag, size, available in (("--train-size", config.train_size, len(x)), ("--test-size", config.test_size, len(xt))):
        if size is not None and size > available:
            raise ConfigError(f"{flag} {size} is more than the {available:,} images there are; use at most {available}")
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
    if name == "cnn92":
        return models.CNN92(num_classes=num_classes, rng=rng)
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
    """(mean cross-entropy, accuracy, predicted classes) in evaluation mode, without a graph (the
    model goes back to the mode it was in)."""
    total, preds = 0.0, []
    with evaluation(model):
        for start in range(0, len(x), batch_size):
            logits = model(Tensor(x[start:start + batch_size]))
            yb = y[start:start + batch_size]
            total += float(F.cross_entropy(logits, yb, reduction="sum").item())
            preds.append(np.argmax(logits.data, axis=1))
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
    rank: int = 0            # under --distributed: this process's rank (only rank 0 writes and prints)


def read_metrics(out) -> list:
    path = Path(out) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_metrics(out: Path, records: list) -> None:
    atomic_write(out / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in records))


def _write_config(out: Path, config: TrainConfig) -> None:
    atomic_write(out / CONFIG_FILE, json.dumps(dataclasses.asdict(config), indent=2) + "\n")


def check_out_folder(out: Path) -> None:
    """Refuse, before anything is trained or written, a run folder that cannot be created or written."""
    fix = "(choose another folder, e.g. with --out)"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder {fix}")
    existing = out
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ConfigError(f"--out {out}: {existing} is a file, not a folder {fix}")
    if existing.exists() and not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: {existing} is not writable {fix}")


def _check_against_checkpoint(out: Path, config: TrainConfig, ckpt: dict) -> None:
    """config.json must be the config the checkpoint was trained with (it records it)."""
    saved = ckpt.get("config")
    if not isinstance(saved, dict):
        return  # a checkpoint of an older tinyopt, which did not record it
    differences = [f"{k}: {v!r} in {CONFIG_FILE}, {saved[k]!r} in {CHECKPOINT_FILE}"
                   for k, v in dataclasses.asdict(config).items() if k in saved and saved[k] != v]
    if differences:
        raise ConfigError(
            f"{out / CONFIG_FILE} does not match the run saved in {CHECKPOINT_FILE} ({'; '.join(differences)}): it "
            "was edited after the run was saved, or the run was interrupted while saving; put the checkpoint's "
            "values back (to change the number of epochs use `tinyopt train --resume DIR --epochs N`)"
        )


class _RunHooks(Hooks):
    """What `run` does around each step: the lr of each step, loss/accuracy sums, the progress bar."""

    def __init__(self, model, bar: ProgressBar):
        self.model, self.bar = model, bar
        self.meter, self.lr_steps, self.loss_steps = Meter(), [], []

    def on_step_end(self, step: Step) -> None:
        self.lr_steps.append(step.lr)
        self.loss_steps.append(float(step.loss))
        correct = int(np.sum(np.argmax(step.output.data, axis=1) == step.targets))
        self.meter.add({"loss": step.loss * step.size, "correct": correct}, step.size)
        means = self.meter.means()
        self.bar.update({"loss": f"{means['loss']:.4f}", "acc": f"{means['correct']:.3f}"})

    def divergence_hint(self, step: Step) -> str:
        if step.global_step == 0:
            return super().divergence_hint(step)
        return f"this step was not applied; lower it, e.g. --lr {step.lr / 10:g}"


def augmented(batches, transform):
    """(transform(x) in x's shape, y) for every batch: images are viewed as (N, 1, 28, 28) for the
    transform (the MLP's flat 784-vectors too) and given back in their own shape."""
    for xb, yb in batches:
        xb = np.asarray(xb)
        yield transform(xb.reshape(len(xb), 1, 28, 28)).reshape(xb.shape), yb


def run(config: TrainConfig, out, resume: bool = False, data=None, verbose: int = 1, plots: bool = True,
        data_path=None, stop_after_epoch: int | None = None) -> RunResult:
    """Train according to `config`, writing into folder `out` (see the module docstring).

    `resume=True` continues the run saved in `out` (its config.json and checkpoint.npz; `config`
    may only change `epochs`, and only when the schedule does not depend on it). `data` replaces
    Fashion-MNIST with ((x_train, y_train), (x_val, y_val), (x_test, y_test)). `stop_after_epoch`
    ends the run early as if interrupted (used to test resuming). `verbose`: 0 silent, 1 a line per
    epoch (plus a progress bar on a terminal).

    Nothing is written before the settings are checked, the data is loaded, the model is built and
    (on resume) the checkpoint is verified and restored. Then each epoch ends with one commit:
    checkpoint.npz (which also records the config and the metrics), then metrics.jsonl, then
    config.json, each replaced atomically; a new run in a folder that holds an old one replaces it
    only when its first epoch is done, so a new run that fails early leaves the old one intact. A
    non-finite training or validation loss raises `TrainingDiverged` before that epoch's commit:
    the last good checkpoint stays."""
    out = Path(out)
    start_time = time.perf_counter()
    file_config = None
    if resume:
        file_config = read_config(out)
        if not (out / CHECKPOINT_FILE).exists():
            raise ConfigError(f"--resume {out}: no {CONFIG_FILE} and {CHECKPOINT_FILE} there; start with `tinyopt train --out {out}`")
        saved = dataclasses.replace(file_config)
        if config is not None and config.epochs != saved.epochs:
            if saved.schedule not in ("none", "plateau"):
                raise ConfigError(f"--epochs cannot change on resume: the {saved.schedule!r} schedule was planned for {saved.epochs} epochs")
            saved.epochs = config.epochs
        config = saved
    elif not isinstance(config, TrainConfig):
        raise TypeError(f"run() needs a TrainConfig (or resume=True), got {type(config).__name__}")
    config.validate()
    check_out_folder(out)
    parallel = None
    if config.distributed:   # data-parallel over mpiexec's ranks: tinyopt.distributed.training
        from tinyopt.distributed.training import DataParallel

        parallel = DataParallel(config, resume)
        verbose, plots = (verbose, plots) if parallel.rank == 0 else (0, False)
    else:
        from tinyopt.distributed.training import check_launch

        check_launch(config)

    train, val, test = data if data is not None else load_data(config, data_path)
    x_train, y_train = train
    rng = np.random.default_rng(config.seed)
    model = build_model(config.model, rng, in_features=int(np.prod(x_train.shape[1:])),
                        num_classes=int(max(y_train.max(), val[1].max(), test[1].max())) + 1)
    optimizer = build_optimizer(config, model.parameters())
    global_batch = config.batch_size * config.world_size
    steps_per_epoch = math.ceil(len(x_train) / global_batch)
    scheduler, sched_every = build_scheduler(config, optimizer, steps_per_epoch)
    # --amp: the training forward under autocast (weights stay float32); fp16 also scales the loss
    from tinyopt.amp import GradScaler, autocast
    scaler = GradScaler("cpu", enabled=config.amp == "fp16")
    amp_dtype = {"fp16": np.float16, "bf16": "bfloat16"}.get(config.amp)
    if parallel:
        scheduler = parallel.warmup(config, optimizer, scheduler, steps_per_epoch)

    start_epoch, global_step, history = 0, 0, []
    if resume:
        try:
            ckpt = restore(out / CHECKPOINT_FILE, model=model, optimizer=optimizer, scheduler=scheduler)
        except CheckpointError as e:
            raise ConfigError(str(e)) from None
        _check_against_checkpoint(out, file_config, ckpt)
        if isinstance(ckpt.get("scaler"), dict) and ckpt["scaler"] and scaler.is_enabled():
            scaler.load_state_dict(ckpt["scaler"])
        start_epoch, global_step = int(ckpt["epoch"]), int(ckpt["global_step"])
        # Restored in place, not replaced: the model's layers that hold the run's generator (CNN92's
        # Dropout) must draw from the restored stream too, or a resumed run is not bit-identical.
        rng.bit_generator.state = ckpt["rng"].bit_generator.state
        history = ckpt["history"] if isinstance(ckpt.get("history"), list) else \
            [r for r in read_metrics(out) if r["epoch"] <= start_epoch]
    config_written = resume and config == file_config

    loader = DataLoader((x_train, y_train), batch_size=global_batch, shuffle=True, rng=rng)
    trained, batches, loss_fn = model, loader, F.cross_entropy
    trained, loss_fn = model, F.cross_entropy
    if parallel:
        trained, loss_fn = parallel.wrap(model), parallel.loss_fn(F.cross_entropy)
    interactive = verbose >= 1 and sys.stdout.isatty()
    if verbose and start_epoch:
        print(f"resuming {out} after epoch {start_epoch}/{config.epochs}", flush=True)
    if config.augment and int(np.prod(x_train.shape[1:])) != 28 * 28:
        raise ConfigError(f"--augment is for 28×28 images; these have shape {x_train.shape[1:]}")
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        with ProgressBar(steps_per_epoch, f"epoch {epoch + 1}/{config.epochs}", interactive) as bar:
            hooks = _RunHooks(model, bar) if parallel is None else parallel.hooks(_RunHooks(model, bar))
            # The augmentation draws from the run's generator (restored on resume), after the shuffle; under
            # --distributed every rank augments the same global batch (same generator), then takes its slice.
            source = augmented(loader, fashion_mnist_augment(generator=rng, crop=config.crop)) if config.augment else loader
            epoch_batches = parallel.batches(source) if parallel else source
            with autocast("cpu", dtype=amp_dtype, enabled=amp_dtype is not None):
                done = train_epoch(trained, optimizer, epoch_batches, loss_fn,
                                   scheduler=scheduler if sched_every == "step" else None, hooks=hooks, epoch=epoch,
                                   global_step=global_step, scaler=scaler if scaler.is_enabled() else None)
        global_step = done.global_step
        if parallel:
            parallel.end_epoch(hooks)
        means = hooks.meter.means()
        val_loss, val_acc, _ = evaluate(model, *val)
        lr = optimizer.param_groups[0]["lr"]
        if not math.isfinite(val_loss):
            raise TrainingDiverged(
                divergence_message("validation loss", val_loss, epoch=epoch + 1, global_step=global_step, lr=lr,
                                   model=model, hint=f"lower the learning rate, e.g. --lr {lr / 10:g}; "
                                   f"{CHECKPOINT_FILE} of the last good epoch is kept"),
                what="validation loss", value=val_loss, epoch=epoch + 1, global_step=global_step, lr=lr)
        if scheduler is not None and sched_every == "epoch":
            scheduler.step(val_loss)
        record = {
            "epoch": epoch + 1, "step": global_step, "train_loss": means["loss"], "train_accuracy": means["correct"],
            "val_loss": val_loss, "val_accuracy": val_acc, "lr": optimizer.param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - t0, 3), "lr_steps": hooks.lr_steps,
            "loss_steps": hooks.loss_steps,
        }
        if parallel:
            parallel.annotate(record)
        history.append(record)
        commit = parallel.commit if parallel else _call   # under --distributed: rank 0 writes, every rank hears how it went
        commit(_commit, out, model, optimizer, scheduler, rng, config, history, write_config=not config_written,
               scaler=scaler)
        config_written = True
        if verbose:
            print(f"epoch {epoch + 1}/{config.epochs}  loss {record['train_loss']:.4f}  acc {record['train_accuracy']:.4f}  "
                  f"val_loss {val_loss:.4f}  val_acc {val_acc:.4f}  lr {record['lr']:.3g}  {record['seconds']:.1f}s"
                  + (f"  {record['images_per_second']:g} images/s on {config.world_size} rank"
                     f"{'s' * (config.world_size > 1)} (global batch {global_batch})" if parallel else ""), flush=True)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            break

    result = RunResult(out, config, history, model, seconds=time.perf_counter() - start_time,
                       rank=parallel.rank if parallel else 0)
    if history and history[-1]["epoch"] == config.epochs:
        result.test_loss, result.test_accuracy, _ = evaluate(model, *test)
    if plots and history:
        write_plots(out, history)
    if parallel:
        parallel.finish()
    return result


def _call(function, *args, **kwargs):
    return function(*args, **kwargs)


def _commit(out: Path, model, optimizer, scheduler, rng, config: TrainConfig, history: list, write_config: bool,
            scaler=None):
    """End of an epoch: the checkpoint first (it refuses non-finite weights, and then nothing else
    changes), then metrics.jsonl and config.json, each atomically."""
    epoch = history[-1]["epoch"]
    state = {"model": model, "optimizer": optimizer, "scheduler": scheduler.state_dict() if scheduler else None,
             "epoch": epoch, "global_step": history[-1]["step"], "rng": rng, "config": dataclasses.asdict(config),
             "history": history}
    if scaler is not None and scaler.is_enabled():
        state["scaler"] = scaler.state_dict()
    try:
        save(state, out / CHECKPOINT_FILE)
    except NonFiniteValues as e:
        lr = optimizer.param_groups[0]["lr"]
        raise TrainingDiverged(
            f"the weights became non-finite in epoch {epoch} ({e.key} holds NaN/inf) although every loss was "
            f"finite, with learning rate {lr:g}: lower it, e.g. --lr {lr / 10:g}; {CHECKPOINT_FILE} of the last "
            "good epoch is kept", what="weights", epoch=epoch, global_step=history[-1]["step"], lr=lr) from None
    _write_metrics(out, history)
    if write_config:
        _write_config(out, config)


def write_plots(out, history: list) -> list:
    """curves.png (loss and accuracy per epoch), steps.png (training loss per step, smoothed) and
    lr.png (learning rate per step) in `out`."""
    from tinyopt import plot

    out = Path(out)
    plot.training_curves(history, metrics=("loss", "accuracy"), save=out / "curves.png", close=True)
    lrs = [lr for r in history for lr in r.get("lr_steps", [])]
    plot.lr_schedule(lrs, save=out / "lr.png", close=True)
    written = [out / "curves.png", out / "lr.png"]
    losses = [x for r in history for x in r.get("loss_steps", [])]
    if losses:  # runs saved by an older tinyopt have no per-step losses
        plot.step_losses(losses, steps_per_epoch=len(history[0].get("loss_steps", [])) or None,
                         save=out / "steps.png", close=True)
        written.append(out / "steps.png")
    return written


def load_run(out, data_path=None):
    """(config, model with the checkpoint's weights) for a run folder; used by `tinyopt eval`."""
    out = Path(out)
    if not (out / CONFIG_FILE).exists() or not (out / CHECKPOINT_FILE).exists():
        raise ConfigError(f"{out} is not a training run (no {CONFIG_FILE} / {CHECKPOINT_FILE}); train one with `tinyopt train --out {out}`")
    config = read_config(out, what="eval")
    model = build_model(config.model, np.random.default_rng(config.seed))
    try:
        ckpt = restore(out / CHECKPOINT_FILE, model=model)
    except CheckpointError as e:
        raise ConfigError(str(e)) from None
    _check_against_checkpoint(out, config, ckpt)
    return config, model


__all__ = [
    "ConfigError", "DEFAULT_LR", "MODELS", "OPTIMIZERS", "RunResult", "SCHEDULES", "TrainConfig", "TrainingDiverged",
    "build_model", "build_optimizer", "build_scheduler", "check_out_folder", "evaluate", "load_data", "load_run",
    "read_config", "read_metrics", "run", "write_plots",
]
