"""Keras callbacks, with Keras' hook names and semantics.

A callback gets `set_model(model)` and `set_params(params)` once, then the hooks
`on_train_begin(logs)`, `on_epoch_begin(epoch, logs)`, `on_train_batch_begin(batch, logs)`,
`on_train_batch_end(batch, logs)`, `on_epoch_end(epoch, logs)`, `on_train_end(logs)` (and
`on_test_begin/end`, `on_predict_begin/end`). `logs` at epoch end holds `loss`, the metrics,
`val_*` when there is validation data, and `learning_rate`. Setting `model.stop_training = True`
ends `fit` after the current epoch.

"Improvement" for EarlyStopping and ReduceLROnPlateau (mode 'min'; 'max' flips the signs):
    improved(current, best) = current < best − min_delta
mode 'auto' means 'max' when the monitored name contains "acc", else 'min' (Keras' rule).
"""
from __future__ import annotations

import csv
import math
import os
import warnings
from pathlib import Path

import numpy as np


class Callback:
    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_begin(self, batch, logs=None): ...
    def on_train_batch_end(self, batch, logs=None): ...
    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...


class CallbackList(Callback):
    """Calls every hook on each callback in order."""

    def __init__(self, callbacks=(), model=None, params=None):
        super().__init__()
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be Callback instances, got {type(cb).__name__}")
        if model is not None:
            self.set_model(model)
        if params is not None:
            self.set_params(params)

    def set_model(self, model):
        for cb in self.callbacks:
            cb.set_model(model)

    def set_params(self, params):
        for cb in self.callbacks:
            cb.set_params(params)

    def _call(self, hook, *args):
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def on_train_begin(self, logs=None): self._call("on_train_begin", logs)
    def on_train_end(self, logs=None): self._call("on_train_end", logs)
    def on_epoch_begin(self, epoch, logs=None): self._call("on_epoch_begin", epoch, logs)
    def on_epoch_end(self, epoch, logs=None): self._call("on_epoch_end", epoch, logs)
    def on_train_batch_begin(self, batch, logs=None): self._call("on_train_batch_begin", batch, logs)
    def on_train_batch_end(self, batch, logs=None): self._call("on_train_batch_end", batch, logs)
    def on_test_begin(self, logs=None): self._call("on_test_begin", logs)
    def on_test_end(self, logs=None): self._call("on_test_end", logs)


class History(Callback):
    """Records every epoch's logs: `history[name]` is a list with one value per epoch, `epoch` the
    epoch numbers (0-based, as Keras), `params` the fit parameters (epochs, steps, verbose)."""

    def __init__(self):
        super().__init__()
        self.history: dict = {}
        self.epoch: list = []

    def on_train_begin(self, logs=None):
        self.epoch = []  # Keras keeps history across fits but restarts the epoch list

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def __repr__(self):
        return f"History(keys={list(self.history)}, epochs={len(self.epoch)})"


def _resolve_mode(mode: str, monitor: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if "acc" in monitor or monitor.startswith("fmeasure") else "min"
    return mode


def _improved(current, best, mode: str, min_delta: float) -> bool:
    if best is None:
        return True
    if mode == "min":
        return current < best - min_delta
    return current > best + min_delta


def _monitored(logs, monitor: str, who: str):
    logs = logs or {}
    if monitor not in logs:
        available = ", ".join(sorted(logs)) or "none"
        raise KeyError(f"{who} monitors {monitor!r}, which is not in the logs (available: {available}); "
                       "pass validation data or monitor another value")
    return float(logs[monitor])


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs.

    With `restore_best_weights=True` the model gets back the weights of its best epoch when
    training stops early (Keras' behaviour: if training runs to the end, the last weights stay)."""

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline=None, restore_best_weights: bool = False, start_from_epoch: int = 0):
        super().__init__()
        if patience < 0:
            raise ValueError(f"patience must be >= 0, got {patience}")
        self.monitor, self.patience, self.verbose = monitor, int(patience), verbose
        self.min_delta = abs(float(min_delta))
        self.mode = _resolve_mode(mode, monitor)
        self.baseline, self.restore_best_weights, self.start_from_epoch = baseline, restore_best_weights, start_from_epoch

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = self.baseline
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        current = _monitored(logs, self.monitor, "EarlyStopping")
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()  # so there is always something to restore
        self.wait += 1
        if _improved(current, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = current, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                if self.verbose:
                    print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
                self.model.set_weights(self.best_weights)

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")


class ModelCheckpoint(Callback):
    """Save a checkpoint (`tinyopt.save`) at the end of every epoch, or only when `monitor` improves
    (`save_best_only=True`). `filepath` may contain `{epoch}` and log names, e.g.
    `"ckpt-{epoch:02d}-{val_loss:.3f}.npz"` (epochs counted from 1, as Keras).

    The file holds `model` (its state dict) and, unless `save_weights_only`, `optimizer` and `epoch`;
    load it with `model.load_weights(path)` or `tinyopt.checkpoint.restore`.

    Never a non-finite checkpoint: an epoch whose loss or monitored value is NaN or ±∞, or whose
    weights are (tinyopt.save refuses them), is not saved, with a RuntimeWarning naming the epoch
    and the reason; the last good file stays as it was, and a NaN never becomes the "best" value."""

    def __init__(self, filepath, monitor: str = "val_loss", verbose: int = 0, save_best_only: bool = False,
                 save_weights_only: bool = False, mode: str = "auto", save_freq="epoch"):
        super().__init__()
        if save_freq != "epoch":
            raise ValueError("only save_freq='epoch' is supported")
        self.filepath, self.monitor, self.verbose = str(filepath), monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.mode = _resolve_mode(mode, monitor)
        self.best = None

    def _skip(self, epoch: int, why: str) -> None:
        warnings.warn(f"ModelCheckpoint: epoch {epoch + 1} not saved: {why}; the last checkpoint saved stays",
                      RuntimeWarning, stacklevel=3)

    def on_epoch_end(self, epoch, logs=None):
        from tinyopt.checkpoint import NonFiniteValues, save

        logs = logs or {}
        bad = [k for k in ("loss", self.monitor) if k in logs and not math.isfinite(float(logs[k]))]
        current = None
        if self.save_best_only:
            current = _monitored(logs, self.monitor, "ModelCheckpoint")
        if bad:
            return self._skip(epoch, f"{bad[0]} is {logs[bad[0]]}")
        if self.save_best_only and not _improved(current, self.best, self.mode, 0.0):
            return
        path = self.filepath.format(epoch=epoch + 1, **logs)
        state = {"model": self.model.state_dict()}
        if not self.save_weights_only:
            state["epoch"] = epoch + 1
            if self.model.optimizer is not None:
                state["optimizer"] = self.model.optimizer.state_dict()
        try:
            save(state, path)
        except NonFiniteValues as e:
            return self._skip(epoch, f"the weights are not finite ({e.key} holds NaN/inf)")
        if self.save_best_only:
            self.best = current
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved checkpoint to {path}")


class LearningRateScheduler(Callback):
    """At the start of each epoch set lr ← schedule(epoch, lr) (or schedule(epoch) for a one-argument
    function); epochs are counted from 0 as in Keras."""

    def __init__(self, schedule, verbose: int = 0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        from tinyopt.keras.optimizers import get_lr, set_lr

        lr = get_lr(self.model.optimizer)
        try:
            new = self.schedule(epoch, lr)
        except TypeError:
            new = self.schedule(epoch)
        new = float(new)
        if not np.isfinite(new) or new < 0:
            raise ValueError(f"LearningRateScheduler: schedule returned {new} for epoch {epoch}")
        set_lr(self.model.optimizer, new)
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {new}.")


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` (never below `min_lr`) when `monitor` has not improved
    by `min_delta` for `patience` epochs, then wait `cooldown` epochs before counting again."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, verbose: int = 0,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0):
        super().__init__()
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0, got {factor}")
        self.monitor, self.factor, self.patience, self.verbose = monitor, float(factor), int(patience), verbose
        self.mode = _resolve_mode(mode, monitor)
        self.min_delta, self.cooldown, self.min_lr = float(min_delta), int(cooldown), float(min_lr)

    def on_train_begin(self, logs=None):
        self.best, self.wait, self.cooldown_counter = None, 0, 0

    def on_epoch_end(self, epoch, logs=None):
        from tinyopt.keras.optimizers import get_lr, set_lr

        current = _monitored(logs, self.monitor, "ReduceLROnPlateau")
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if _improved(current, self.best, self.mode, self.min_delta):
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = get_lr(self.model.optimizer)
                if old > self.min_lr:
                    new = max(old * self.factor, self.min_lr)
                    set_lr(self.model.optimizer, new)
                    if self.verbose:
                        print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class CSVLogger(Callback):
    """Append one row per epoch (`epoch` then the log names in sorted order) to a CSV file."""

    def __init__(self, filename, separator: str = ",", append: bool = False):
        super().__init__()
        self.filename, self.sep, self.append = Path(filename), separator, append
        self.keys = None

    def on_train_begin(self, logs=None):
        exists = self.append and self.filename.exists() and self.filename.stat().st_size > 0
        self.filename.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.filename, "a" if self.append else "w", newline="")
        self.writer = None
        self.header_written = exists

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
        if self.writer is None:
            self.writer = csv.DictWriter(self.file, fieldnames=["epoch"] + self.keys, delimiter=self.sep,
                                         extrasaction="ignore")
            if not self.header_written:
                self.writer.writeheader()
                self.header_written = True
        row = {"epoch": epoch}
        row.update({k: logs.get(k, "NA") for k in self.keys})
        self.writer.writerow(row)
        self.file.flush()
        os.fsync(self.file.fileno())

    def on_train_end(self, logs=None):
        self.file.close()
        self.writer = None


class TerminateOnNaN(Callback):
    """Stop training when a batch loss is NaN or infinite, before that batch's update is applied
    (fit never applies a non-finite loss; seeing it here, this callback makes fit end quietly
    instead of raising TrainingDiverged), or when an epoch's `loss` or `val_loss` is."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            print(f"Batch {batch}: invalid loss, terminating training")
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        for key in ("loss", "val_loss"):
            value = (logs or {}).get(key)
            if value is not None and not np.isfinite(value) and not self.model.stop_training:
                print(f"Epoch {epoch + 1}: invalid {key}, terminating training")
                self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback from plain functions: LambdaCallback(on_epoch_end=lambda epoch, logs: ...)."""

    def __init__(self, **hooks):
        super().__init__()
        for name, fn in hooks.items():
            if not name.startswith("on_") or not hasattr(Callback, name):
                raise ValueError(f"unknown callback hook {name!r}")
            setattr(self, name, fn)


__all__ = [
    "CSVLogger", "Callback", "CallbackList", "EarlyStopping", "History", "LambdaCallback", "LearningRateScheduler",
    "ModelCheckpoint", "ReduceLROnPlateau", "TerminateOnNaN",
]
