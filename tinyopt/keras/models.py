"""Keras' `Sequential` model: `compile`, `fit`, `evaluate`, `predict`, `summary`, on tinyopt's engine.

`Sequential` is an `nn.Module` whose children are the Keras layers (which wrap `nn` modules), so
everything torch-style works on it too: `model.parameters()`, `state_dict()`, a hand-written loop.

One training step of `fit` (for a batch X, Y of `batch_size` samples) is the PyTorch loop, the
epoch of `tinyopt.loop` that `tinyopt train` runs too:

    Ŷ = model(X)                          (training mode: dropout active)
    L = loss(Y, Ŷ) + Σ_layers R(W)        (R: kernel/bias regularizers, e.g. l2: λ Σ w²)
    ∇L by backpropagation; optimizer.step()

A NaN or infinite L is never applied. Unlike Keras, which records `nan` and trains on, `fit` then
raises `tinyopt.loop.TrainingDiverged` naming the epoch, the step and the learning rate, unless a
callback stops training when it sees the loss in `on_train_batch_end` (`TerminateOnNaN` does:
`fit` then ends after that epoch's `on_epoch_end`, with the weights of the last finite step). A
non-finite `val_loss` is reported the same way after `on_epoch_end`.

The epoch's `loss` (and each metric) is the mean over all samples of the epoch, i.e. batch values
weighted by batch size, as Keras reports it. `val_loss` / `val_*` are computed in evaluation
mode (no dropout) after the epoch, on `validation_data` or on the last `validation_split` fraction
of x, y (taken before shuffling, as Keras does). The epoch logs (and so `History.history`) also hold
`learning_rate`, the rate at the end of the epoch (Keras adds it only when an LR callback runs;
here it is always there, so schedules can be plotted).

Randomness: shuffling draws from `fit(..., rng=)` (a Generator or a seed; default generator when
omitted), layer initialisation from each layer's `rng=`.
"""
from __future__ import annotations

import math
import sys
import time

import numpy as np

from tinyopt.autograd import no_grad
from tinyopt.keras import callbacks as callbacks_module
from tinyopt.keras import losses as losses_module
from tinyopt.keras import metrics as metrics_module
from tinyopt.keras import mixed_precision
from tinyopt.keras import optimizers as optimizers_module
from tinyopt.keras.layers import InputLayer, Layer
from tinyopt.loop import (
    Hooks, Meter, ProgressBar, Step, TrainingDiverged, divergence_message, evaluation, learning_rate, minibatches,
    train_epoch, train_step,
)
from tinyopt.nn.module import Module, ShapeError
from tinyopt.random import resolve
from tinyopt.tensor import Tensor


def _as_float_input(x) -> np.ndarray:
    x = np.asarray(x.data if isinstance(x, Tensor) else x)
    if x.dtype != np.float32:
        x = x.astype(np.float32)  # Keras' floatx: uint8 images and float64 arrays become float32
    return x


def _as_target(y) -> np.ndarray:
    y = np.asarray(y.data if isinstance(y, Tensor) else y)
    if y.dtype == np.float64:
        y = y.astype(np.float32)
    return y


def _compiled_loss(model):
    """The compiled loss as tinyopt.loop calls it: L = loss(Y, Ŷ) + Σ_layers R(W)."""
    def loss_fn(y_pred, y):
        loss = model.loss(y, y_pred)
        reg = model.regularization_loss()
        return loss if reg is None else loss + reg
    return loss_fn


class _FitHooks(Hooks):
    """What `fit` does around each step of tinyopt.loop's epoch: Keras' batch callbacks, the
    batch logs (loss and metrics), their size-weighted epoch means, the progress bar. A non-finite
    loss (never applied) goes to the callbacks too; unless one of them stops training
    (TerminateOnNaN does), fit raises TrainingDiverged."""

    def __init__(self, model, callbacks, bar: ProgressBar):
        self.model, self.callbacks, self.bar, self.meter = model, callbacks, bar, Meter()

    def _logs(self, step: Step) -> dict:
        logs = {"loss": step.loss}
        logs.update({k: float(np.mean(v)) for k, v in self.model._metric_values(step.targets, step.output.data).items()})
        self.meter.add({k: v * step.size for k, v in logs.items()}, step.size)
        return logs

    def on_step_begin(self, step: Step) -> None:
        self.callbacks.on_train_batch_begin(step.index)

    def on_step_end(self, step: Step) -> None:
        self.callbacks.on_train_batch_end(step.index, dict(self._logs(step)))
        self.bar.update({k: f"{v:.4f}" for k, v in self.meter.means().items()})

    def on_non_finite(self, step: Step) -> None:
        self.callbacks.on_train_batch_end(step.index, dict(self._logs(step)))
        if not self.model.stop_training:
            raise self.diverged(step, f"{self.divergence_hint(step)}; or pass "
                                "callbacks=[keras.callbacks.TerminateOnNaN()] to end fit quietly")

    def should_stop(self) -> bool:
        return self.model.stop_training


class Sequential(Module):
    """A linear stack of Keras layers. `Sequential([layer, ...])` or `add(layer)` one at a time."""

    def __init__(self, layers=None, name: str = "sequential"):
        super().__init__()
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "_layers", [])
        object.__setattr__(self, "_name_counts", {})
        object.__setattr__(self, "built", False)
        object.__setattr__(self, "input_shape", None)
        object.__setattr__(self, "optimizer", None)
        object.__setattr__(self, "loss", None)
        object.__setattr__(self, "compiled_metrics", [])
        object.__setattr__(self, "stop_training", False)
        object.__setattr__(self, "history", None)
        object.__setattr__(self, "dtype_policy", mixed_precision.global_policy())  # Keras: read at creation
        for layer in layers or []:
            self.add(layer)

    # ------------------------------------------------------------------ building
    @property
    def layers(self) -> list:
        return [layer for layer in self._layers if not isinstance(layer, InputLayer)]

    def add(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add takes keras layers (tinyopt.keras.layers), got {type(layer).__name__}")
        if layer.name is None:
            n = self._name_counts.get(layer.kind, 0)
            self._name_counts[layer.kind] = n + 1
            layer.name = layer.kind if n == 0 else f"{layer.kind}_{n}"
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(f"layer name {layer.name!r} is used twice in this model")
        self._layers.append(layer)
        self.add_module(layer.name, layer)
        if len(self._layers) == 1 and layer.input_spec is not None:
            self.build((None,) + layer.input_spec)
        elif self.built:
            shape = layer._build(self.output_shape[1:])
            object.__setattr__(self, "output_shape", (None,) + shape)

    def build(self, input_shape) -> None:
        """Build every layer for inputs of `input_shape` (with the batch axis, which may be None)."""
        shape = tuple(input_shape)[1:]
        object.__setattr__(self, "input_shape", (None,) + tuple(shape))
        for layer in self._layers:
            try:
                shape = layer._build(shape)
            except ShapeError as e:
                raise ShapeError(f"while building layer {layer.name!r} of Sequential {self.name!r}: {e}") from None
        object.__setattr__(self, "output_shape", (None,) + tuple(shape))
        object.__setattr__(self, "built", True)

    def forward(self, x):
        if not isinstance(x, Tensor):
            x = Tensor(_as_float_input(x))
        if not self.built:
            self.build((None,) + tuple(x.shape[1:]))
        with mixed_precision.compute_scope(self):   # autocast under a mixed policy
            for layer in self._layers:
                try:
                    x = layer(x)
                except ShapeError as e:
                    raise ShapeError(f"layer {layer.name!r} of Sequential {self.name!r}: {e}") from None
        return mixed_precision.model_output(self, x)

    call = forward

    def regularization_loss(self):
        terms = [t for layer in self._layers for t in layer.regularization_losses()]
        if not terms:
            return None
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        return total

    # ------------------------------------------------------------------ weights
    def get_weights(self) -> list:
        """Copies of all parameters and buffers, in state_dict order (tinyopt's layout)."""
        return [v.copy() for v in self.state_dict().values()]

    def set_weights(self, weights) -> None:
        keys = list(self.state_dict())
        if len(weights) != len(keys):
            raise ValueError(f"model {self.name!r} has {len(keys)} weight arrays, got {len(weights)}")
        self.load_state_dict(dict(zip(keys, weights)))

    def count_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save_weights(self, path) -> None:
        from tinyopt.checkpoint import save

        save({"model": self.state_dict()}, path)

    def load_weights(self, path) -> None:
        from tinyopt.checkpoint import restore

        restore(path, model=self)

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """Choose the optimizer (a name, a keras optimizer, or a tinyopt.optim optimizer), the loss
        (a name or a loss object) and metrics (names like "accuracy")."""
        if loss is None:
            raise ValueError("compile needs a loss, e.g. loss='sparse_categorical_crossentropy'")
        opt = mixed_precision.wrap_optimizer(self, optimizers_module.get(optimizer))
        object.__setattr__(self, "optimizer", opt)
        object.__setattr__(self, "loss", losses_module.get(loss))
        kind = losses_module.kind(self.loss)
        object.__setattr__(self, "compiled_metrics", [metrics_module.get(m, kind) for m in (metrics or [])])
        if self.built:
            self._build_optimizer()

    def _build_optimizer(self):
        opt = self.optimizer
        if isinstance(opt, optimizers_module.KerasOptimizer) and opt.optimizer is None:
            opt.build(self.parameters())

    def _require_compiled(self, what: str):
        if self.loss is None:
            raise RuntimeError(f"call model.compile(optimizer=..., loss=...) before model.{what}()")

    # ------------------------------------------------------------------ one batch
    def _metric_values(self, y, y_pred: np.ndarray) -> dict:
        return {name: fn(y, y_pred) for name, fn in self.compiled_metrics}

    def train_on_batch(self, x, y) -> dict:
        """One optimisation step (tinyopt.loop.train_step); returns the batch's loss and metrics.
        A NaN or infinite loss raises TrainingDiverged and is not applied."""
        self._require_compiled("train_on_batch")
        x, y = _as_float_input(x), _as_target(y)
        if not self.built:
            self.build((None,) + x.shape[1:])
        self._build_optimizer()
        self.train()
        step = train_step(self, self.optimizer, x, y, _compiled_loss(self),
                          scaler=mixed_precision.scaler_of(self.optimizer))
        if not step.applied:
            raise TrainingDiverged(
                divergence_message("loss", step.loss, lr=step.lr, model=self,
                                   hint="train_on_batch did not apply the step; lower the learning rate"),
                value=step.loss, lr=step.lr)
        logs = {"loss": step.loss}
        logs.update({k: float(np.mean(v)) for k, v in self._metric_values(y, step.output.data).items()})
        return logs

    # ------------------------------------------------------------------ fit
    def fit(self, x=None, y=None, batch_size=None, epochs: int = 1, verbose="auto", callbacks=None,
            validation_split: float = 0.0, validation_data=None, shuffle: bool = True, initial_epoch: int = 0,
            rng=None):
        """Train for `epochs` epochs; returns a `History` (`.history` dict of per-epoch lists)."""
        self._require_compiled("fit")
        if x is None or y is None:
            raise ValueError("fit needs x and y arrays")
        x, y = _as_float_input(x), _as_target(y)
        if len(x) != len(y):
            raise ValueError(f"x and y must have the same number of samples, got {len(x)} and {len(y)}")
        batch_size = 32 if batch_size is None else batch_size
        if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
        if validation_data is None and validation_split > 0:
            split = int(len(x) * (1.0 - validation_split))
            if split == 0 or split == len(x):
                raise ValueError(f"validation_split={validation_split} leaves no training or no validation samples")
            validation_data = (x[split:], y[split:])
            x, y = x[:split], y[:split]
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (x_val, y_val)")
            validation_data = (_as_float_input(validation_data[0]), _as_target(validation_data[1]))
        if not self.built:
            self.build((None,) + x.shape[1:])
        self._build_optimizer()

        rng = resolve(rng)
        n = len(x)
        steps = math.ceil(n / batch_size)
        verbose = 1 if verbose == "auto" else int(verbose)
        history = callbacks_module.History()
        cbs = callbacks_module.CallbackList(
            list(callbacks or []) + [history], model=self,
            params={"verbose": verbose, "epochs": epochs, "steps": steps},
        )
        history.params = {"verbose": verbose, "epochs": epochs, "steps": steps}
        history.model = self
        object.__setattr__(self, "history", history)
        object.__setattr__(self, "stop_training", False)
        use_bar = verbose == 1 and sys.stdout.isatty()
        loss_fn = _compiled_loss(self)
        global_step = 0

        cbs.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            cbs.on_epoch_begin(epoch)
            order = rng.permutation(n) if shuffle else np.arange(n)
            start = time.perf_counter()
            with ProgressBar(steps, f"Epoch {epoch + 1}/{epochs}", use_bar, leave=True) as bar:
                hooks = _FitHooks(self, cbs, bar)
                global_step = train_epoch(self, self.optimizer, minibatches(x, y, batch_size, order), loss_fn,
                                          hooks=hooks, epoch=epoch, global_step=global_step,
                                          scaler=mixed_precision.scaler_of(self.optimizer)).global_step
                epoch_logs = hooks.meter.means()
                if validation_data is not None:
                    val = self._evaluate_logs(*validation_data, batch_size=batch_size)
                    epoch_logs.update({f"val_{k}": v for k, v in val.items()})
                epoch_logs["learning_rate"] = optimizers_module.get_lr(self.optimizer)
                elapsed = time.perf_counter() - start
                bar.close({k: f"{v:.4f}" for k, v in epoch_logs.items() if k != "learning_rate"})
            if not use_bar and verbose in (1, 2):
                shown = " - ".join(f"{k}: {v:.4f}" for k, v in epoch_logs.items() if k != "learning_rate")
                print(f"Epoch {epoch + 1}/{epochs} - {elapsed:.1f}s - {shown}", flush=True)
            cbs.on_epoch_end(epoch, epoch_logs)
            val_loss = epoch_logs.get("val_loss", 0.0)
            if not math.isfinite(val_loss) and not self.stop_training:
                lr = learning_rate(self.optimizer)
                raise TrainingDiverged(
                    divergence_message("val_loss", val_loss, epoch=epoch + 1, global_step=global_step, lr=lr,
                                       model=self, hint="lower the learning rate, or pass "
                                       "callbacks=[keras.callbacks.TerminateOnNaN()] to end fit quietly"),
                    what="val_loss", value=val_loss, epoch=epoch + 1, global_step=global_step, lr=lr)
            if self.stop_training:
                break
        cbs.on_train_end()
        return history

    # ------------------------------------------------------------------ evaluate / predict
    def _evaluate_logs(self, x, y, batch_size: int = 32) -> dict:
        self._require_compiled("evaluate")
        x, y = _as_float_input(x), _as_target(y)
        sums, n = {}, 0
        with evaluation(self):
            for xb, yb in minibatches(x, y, batch_size):
                y_pred = self(Tensor(xb))
                loss = self.loss(yb, y_pred)
                sums["loss"] = sums.get("loss", 0.0) + float(loss.item()) * len(xb)
                for k, v in self._metric_values(yb, y_pred.data).items():
                    sums[k] = sums.get(k, 0.0) + float(np.sum(v))
                n += len(xb)
        reg = self.regularization_loss()
        logs = {k: s / n for k, s in sums.items()}
        if reg is not None:
            logs["loss"] += float(reg.item())  # Keras reports the loss including regularization
        return logs

    def evaluate(self, x, y, batch_size=None, verbose="auto", return_dict: bool = False):
        """Loss (and metrics) on x, y in evaluation mode. Returns the loss alone when no metrics were
        compiled, else [loss, metric, ...] (or a dict with `return_dict=True`), like Keras."""
        logs = self._evaluate_logs(x, y, batch_size or 32)
        if verbose in (1, 2):
            print(" - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose=0) -> np.ndarray:
        """Model outputs for x (evaluation mode, no graph), as an ndarray."""
        x = _as_float_input(x)
        batch_size = batch_size or 32
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                outs = [self(Tensor(x[s:s + batch_size])).data for s in range(0, len(x), batch_size)]
        finally:
            self.train(was_training)
        return np.concatenate(outs, axis=0)

    def __call__(self, x, training=None):
        if training is None:
            return self.forward(x)
        was = self.training
        self.train(bool(training))
        try:
            return self.forward(x)
        finally:
            self.train(was)

    # ------------------------------------------------------------------ summary
    def summary(self, print_fn=print, line_length: int = 65) -> str:
        """Print (and return) a table of layers, output shapes and parameter counts."""
        if not self.built:
            raise ValueError(
                f"model {self.name!r} is not built yet: give the first layer input_shape=..., call "
                "model.build((None, ...)), or fit it once"
            )
        labels = [f"{layer.name} ({type(layer).__name__})" for layer in self.layers]
        cols = (max([29] + [len(label) + 2 for label in labels]), 26, 10)
        line_length = max(line_length, sum(cols))
        rows = [f'Model: "{self.name}"', "_" * line_length,
                f"{'Layer (type)':<{cols[0]}}{'Output Shape':<{cols[1]}}{'Param #':>{cols[2]}}", "=" * line_length]
        for i, (layer, label) in enumerate(zip(self.layers, labels)):
            shape = str((None,) + tuple(layer.output_shape))
            rows.append(f"{label:<{cols[0]}}{shape:<{cols[1]}}{layer.count_params():>{cols[2]},}")
            rows.append("_" * line_length if i < len(self.layers) - 1 else "=" * line_length)
        total = self.count_params()
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        rows += [f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                 f"Non-trainable params: {total - trainable:,}", "_" * line_length]
        text = "\n".join(rows)
        if print_fn is not None:
            print_fn(text)
        return text


Model = Sequential  # the functional Model API is not implemented; Sequential covers the seed examples

__all__ = ["Model", "Sequential"]
