"""Keras' models: `Sequential` and the functional `Model(inputs, outputs)`, with `compile`, `fit`,
`evaluate`, `predict`, `summary`, `save` / `load_model`, on tinyopt's engine.

A model is an `nn.Module` whose children are the Keras layers (which wrap `nn` modules), so
everything torch-style works on it too: `model.parameters()`, `state_dict()`, a hand-written loop.

- `Sequential([layer, ...])` runs the layers one after another.
- `Model(inputs, outputs)` is a graph: `inputs = keras.Input((8,)); h = layers.Dense(16)(inputs);
  outputs = layers.Dense(3)(layers.Concatenate()([h, inputs])); model = keras.Model(inputs, outputs)`.
  It runs the recorded layer calls in order (each once per call of the model; a layer called twice
  shares its weights). Several inputs: pass a list of KerasTensors, and a list of arrays to
  `fit` / `predict`. Several outputs: `predict` returns a list; `fit`/`evaluate` take one output.

Weights: `get_weights()` / `set_weights()` use Keras' layout, layer by layer (see
`tinyopt.keras.layers`), so `x @ W + b` with the arrays of a Dense layer gives its output;
`state_dict()` keeps torch's layout.

Saving: `model.save(path)` writes one `tinyopt.save` checkpoint (an npz archive, atomic, checksummed,
never pickled) holding the architecture as JSON (each layer's `get_config()` and, for a
functional model, the graph), the weights in Keras' layout, and the compile arguments when they
are Keras names or objects. `keras.models.load_model(path)` rebuilds the model, sets the weights and
compiles it again, with the optimizer's state (its moments and step count) when the optimizer is a
Keras one, so training continues as if it had not stopped.

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

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from tinyopt.keras import callbacks as callbacks_module
from tinyopt.keras import losses as losses_module
from tinyopt.keras import metrics as metrics_module
from tinyopt.keras import mixed_precision
from tinyopt.keras import optimizers as optimizers_module
from tinyopt.keras import layers as layers_module
from tinyopt.keras.layers import InputLayer, KerasTensor, Layer, positive_int
from tinyopt.keras import trainable as _trainable
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
    if x.dtype.kind not in "fiub":
        raise TypeError(f"model inputs must be numeric arrays, got dtype {x.dtype}")
    if x.dtype != np.float32:
        x = x.astype(np.float32)  # Keras' floatx: uint8 images and float64 arrays become float32
    return x


def _as_inputs(x, count: int):
    """One float32 array (a single-input model) or a tuple of them (one per input), of equal length."""
    if count == 1:
        if isinstance(x, (list, tuple)) and len(x) == 1 and isinstance(x[0], (np.ndarray, Tensor)):
            x = x[0]  # [array] for a one-input model, as Keras accepts (a nested list stays a list of samples)
        return _as_float_input(x)
    if not isinstance(x, (list, tuple)) or len(x) != count:
        raise ValueError(f"this model has {count} inputs: pass a list of {count} arrays, got "
                         f"{type(x).__name__}{'' if not isinstance(x, (list, tuple)) else f' of {len(x)}'}")
    arrays = tuple(_as_float_input(a) for a in x)
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise ValueError(f"the {count} input arrays must have the same number of samples, got {[len(a) for a in arrays]}")
    return arrays


def _num_samples(x) -> int:
    return len(x[0]) if isinstance(x, tuple) else len(x)


def _take(x, idx):
    return tuple(a[idx] for a in x) if isinstance(x, tuple) else x[idx]


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


class Model(Module):
    """A Keras model. `Model(inputs, outputs)` builds the functional graph from KerasTensors;
    `Sequential` is the linear special case. Both share compile / fit / evaluate / predict /
    summary / save / get_weights (this class)."""

    trainable = _trainable.model_property  # model.trainable = False freezes every layer

    def __init__(self, inputs=None, outputs=None, name: str | None = None):
        super().__init__()
        self._init_state(name or "functional")
        if type(self) is Model or inputs is not None or outputs is not None:
            self._init_graph(inputs, outputs)

    def _init_state(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a model name must be a non-empty string, got {name!r}")
        for key, value in (("name", name), ("_layers", []), ("_name_counts", {}), ("built", False),
                           ("input_shape", None), ("output_shape", None), ("optimizer", None), ("loss", None),
                           ("compiled_metrics", []), ("_compile_config", None), ("stop_training", False),
                           ("history", None), ("_nodes", []), ("_inputs", []), ("_outputs", []),
                           ("dtype_policy", mixed_precision.global_policy())):  # Keras: read at creation
            object.__setattr__(self, key, value)

    # ------------------------------------------------------------------ the functional graph
    def _init_graph(self, inputs, outputs) -> None:
        if inputs is None or outputs is None:
            raise TypeError("keras.Model(inputs, outputs) needs both: inputs = keras.Input(shape), "
                            "outputs = the KerasTensor its layers produce (subclassed models are not supported; "
                            "write an nn.Module, or use Sequential)")
        ins = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        outs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        for what, group in (("inputs", ins), ("outputs", outs)):
            if not group or not all(isinstance(t, KerasTensor) for t in group):
                raise TypeError(f"keras.Model {what} must be KerasTensors (from keras.Input and layer calls), got "
                                f"{[type(t).__name__ for t in group]}")
        for t in ins:
            if not isinstance(t.layer, InputLayer):
                raise ValueError(f"keras.Model inputs must come from keras.Input(...), got {t!r}")
        if len({id(t) for t in ins}) != len(ins):
            raise ValueError("keras.Model: the same Input is given twice")
        # Walk back from the outputs: every tensor needed, producers before consumers (iterative DFS).
        order, state = [], {}
        for out in outs:
            stack = [(out, False)]
            while stack:
                t, done = stack.pop()
                if done:
                    if state.get(id(t)) != "done":
                        state[id(t)] = "done"
                        order.append(t)
                    continue
                if state.get(id(t)) == "done":
                    continue
                state[id(t)] = "open"
                stack.append((t, True))
                if isinstance(t.layer, InputLayer):
                    if not any(t is i for i in ins):
                        raise ValueError(f"keras.Model: the outputs depend on an Input of shape {t.shape} that is not "
                                         "among the model's inputs; pass it in inputs=[...]")
                    continue
                stack.extend((parent, False) for parent in reversed(t.inputs) if state.get(id(parent)) != "done")
        for t in ins:
            if not any(t is o for o in order):
                order.insert(0, t)  # an input the outputs do not use still takes its array
        layers = []
        for t in order:
            if not any(t.layer is layer for layer in layers):
                layers.append(t.layer)
        for layer in layers:
            self._register(layer)
        index = {id(t): k for k, t in enumerate(order)}
        nodes = [(t.layer, [index[id(p)] for p in t.inputs]) for t in order]
        object.__setattr__(self, "_nodes", nodes)
        object.__setattr__(self, "_inputs", [index[id(t)] for t in ins])
        object.__setattr__(self, "_outputs", [index[id(t)] for t in outs])
        object.__setattr__(self, "_tensors", order)
        object.__setattr__(self, "input_shape", ins[0].shape if len(ins) == 1 else [t.shape for t in ins])
        object.__setattr__(self, "output_shape", outs[0].shape if len(outs) == 1 else [t.shape for t in outs])
        object.__setattr__(self, "built", True)

    def _register(self, layer: Layer) -> None:
        """Name the layer if it has no name (dense, dense_1, ...) and make it a child module."""
        if not isinstance(layer, Layer):
            raise TypeError(f"a keras model takes keras layers (tinyopt.keras.layers), got {type(layer).__name__}")
        if any(existing is layer for existing in self._layers):
            raise ValueError(f"layer {layer.name!r} is already in model {self.name!r}")
        if layer.name is None:
            n = self._name_counts.get(layer.kind, 0)
            while any(e.name == (layer.kind if n == 0 else f"{layer.kind}_{n}") for e in self._layers):
                n += 1
            self._name_counts[layer.kind] = n + 1
            layer.name = layer.kind if n == 0 else f"{layer.kind}_{n}"
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(f"layer name {layer.name!r} is used twice in this model")
        self._layers.append(layer)
        self.add_module(layer.name, layer)

    @property
    def layers(self) -> list:
        """The layers (Keras: a functional model lists its InputLayers, a Sequential does not)."""
        return list(self._layers)

    @property
    def inputs(self) -> list:
        return [self._tensors[k] for k in self._inputs]

    @property
    def outputs(self) -> list:
        return [self._tensors[k] for k in self._outputs]

    @property
    def _num_inputs(self) -> int:
        return len(self._inputs)

    def get_layer(self, name=None, index=None) -> Layer:
        """The layer called `name`, or the one at position `index` of `model.layers`."""
        if (name is None) == (index is None):
            raise ValueError("get_layer takes either name= or index=")
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"model {self.name!r} has {len(self.layers)} layers; index {index!r} is not one of them")
            return self.layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"model {self.name!r} has no layer {name!r}; it has {[layer.name for layer in self._layers]}")

    def forward(self, x):
        if not self._nodes:
            raise NotImplementedError(f"{type(self).__name__} has no graph: build it as keras.Model(inputs, outputs) "
                                      "(subclassed Keras models are not supported; write an nn.Module instead)")
        if len(self._inputs) == 1:
            xs = [x]
        elif isinstance(x, (list, tuple)) and len(x) == len(self._inputs):
            xs = list(x)
        else:
            raise ValueError(f"model {self.name!r} has {len(self._inputs)} inputs: pass a list of {len(self._inputs)}")
        values = [None] * len(self._nodes)
        for k, v in zip(self._inputs, xs):
            v = v if isinstance(v, Tensor) else Tensor(_as_float_input(v))
            expected = self._tensors[k].shape[1:]
            if tuple(v.shape[1:]) != tuple(expected):
                raise ShapeError(f"model {self.name!r}: input {self._tensors[k].layer.name!r} expects shape "
                                 f"{(None,) + tuple(expected)}, got {tuple(v.shape)}")
            values[k] = v
        for k, (layer, parents) in enumerate(self._nodes):
            if isinstance(layer, InputLayer):
                continue
            args = [values[p] for p in parents]
            try:
                values[k] = layer(args if isinstance(layer, layers_module._Merge) else args[0])
            except ShapeError as e:
                raise ShapeError(f"layer {layer.name!r} of model {self.name!r}: {e}") from None
        outs = [values[k] for k in self._outputs]
        return outs[0] if len(outs) == 1 else outs

    call = forward

    def __call__(self, x, training=None):
        if layers_module._symbolic(x):
            raise NotImplementedError("calling a keras model on KerasTensors (a model used as a layer) is not "
                                      "supported; build one keras.Model from the layers themselves")
        if training is None:
            return self._forward_in_policy(x)
        was = self.training
        self.train(bool(training))
        try:
            return self._forward_in_policy(x)
        finally:
            self.train(was)

    def _forward_in_policy(self, x):
        """The forward under the model's dtype policy (autocast for mixed_float16 / mixed_bfloat16)."""
        with mixed_precision.compute_scope(self):
            out = self.forward(x)
        return mixed_precision.model_output(self, out)

    def _output_units(self):
        shape = self.output_shape
        return shape[-1] if isinstance(shape, tuple) and len(shape) == 2 else None

    # ------------------------------------------------------------------ regularization
    @property
    def losses(self) -> list:
        """Keras' `model.losses`: every layer's regularization penalty (scalar Tensors of the current
        weights, e.g. λ Σ w² for `kernel_regularizer=l2(λ)`); `fit` adds their sum to the loss."""
        return [t for layer in self._layers for t in layer.regularization_losses()]

    def regularization_loss(self):
        terms = self.losses
        if not terms:
            return None
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        return total

    # ------------------------------------------------------------------ weights
    def get_weights(self) -> list:
        """Every layer's `get_weights()` in layer order: Keras' layout (Dense kernel (in, units),
        Conv2D kernel (kh, kw, in, filters), BatchNormalization [gamma, beta, moving_mean,
        moving_variance]), as Keras' `model.get_weights()`."""
        return [w for layer in self._layers for w in layer.get_weights()]

    def set_weights(self, weights) -> None:
        """The inverse of `get_weights`. Every array is checked (count, shapes, dtype) before any is set."""
        weights = list(weights)
        counts = [len(layer.get_weights()) for layer in self._layers]
        if len(weights) != sum(counts):
            raise ValueError(f"model {self.name!r} has {sum(counts)} weight arrays, got {len(weights)}")
        plan, own, start = [], [], 0
        for layer, n in zip(self._layers, counts):
            chunk = weights[start:start + n]
            if _overrides_set_weights(layer):  # a layer with its own set_weights: it checks its arrays itself
                own.append((layer, chunk))
            else:
                plan += layer._plan_weights(chunk)
            start += n
        for target, value in plan:
            target[...] = value
        for layer, chunk in own:
            layer.set_weights(chunk)

    def count_params(self) -> int:
        """Keras' count: every weight of every layer, trainable or not."""
        return sum(layer.count_params() for layer in self._layers)

    def save_weights(self, path) -> None:
        from tinyopt.checkpoint import save

        save({"model": self.state_dict()}, path)

    def load_weights(self, path) -> None:
        from tinyopt.checkpoint import restore

        restore(path, model=self)

    # ------------------------------------------------------------------ config and saving
    def get_config(self) -> dict:
        """The architecture as JSON-able data: the layers' configs and the graph."""
        names = {id(layer): layer.name for layer in self._layers}
        return {"name": self.name,
                "layers": [layers_module.serialize(layer) for layer in self._layers],
                "nodes": [[names[id(layer)], parents] for layer, parents in self._nodes],
                "inputs": list(self._inputs), "outputs": list(self._outputs)}

    @classmethod
    def from_config(cls, config: dict) -> "Model":
        built = {}
        for spec in config["layers"]:
            layer = layers_module.deserialize(spec)
            built[layer.name] = layer
        tensors = []
        for layer_name, parents in config["nodes"]:
            layer = built[layer_name]
            if isinstance(layer, InputLayer):
                tensors.append(layer.output)
            else:
                args = [tensors[p] for p in parents]
                tensors.append(layer(args if isinstance(layer, layers_module._Merge) else args[0]))
        ins, outs = [tensors[k] for k in config["inputs"]], [tensors[k] for k in config["outputs"]]
        return Model(ins if len(ins) > 1 else ins[0], outs if len(outs) > 1 else outs[0], name=config["name"])

    def save(self, filepath, overwrite: bool = True) -> Path:
        """Write the architecture, the weights (Keras' layout) and the compile arguments to one file
        (a `tinyopt.save` checkpoint: atomic, checksummed, no pickle; non-finite weights are refused and
        the file is left as it was). Returns the path. Load it with `keras.models.load_model(path)`."""
        from tinyopt.checkpoint import save

        path = Path(filepath) if isinstance(filepath, (str, Path)) else filepath
        if not self.built:
            raise ValueError(f"model {self.name!r} is not built yet, so it has no weights to save: give the first layer "
                             "input_shape=..., call model.build((None, ...)), or fit it once")
        if not isinstance(overwrite, bool):
            raise TypeError(f"overwrite must be True or False, got {overwrite!r}")
        if not overwrite and Path(path).exists():
            raise FileExistsError(f"{path} exists and overwrite=False; pick another name or pass overwrite=True")
        record = {
            "format": SAVE_FORMAT,
            "class_name": "Sequential" if isinstance(self, Sequential) else "Functional",
            "config": json.dumps(self.get_config()),
            "compile": json.dumps(self._compile_config),
            "weights": self.get_weights(),
            "optimizer": self._optimizer_state(),
        }
        return save(record, path)

    def _optimizer_state(self):
        """The optimizer's state dict when load_model can rebuild the optimizer (a Keras optimizer
        named in the compile config, already built), else None."""
        opt = self.optimizer
        if self._compile_config is None or not isinstance(opt, optimizers_module.KerasOptimizer) or opt.optimizer is None:
            return None
        return opt.state_dict()

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """Choose the optimizer (a name, a keras optimizer, or a tinyopt.optim optimizer), the loss
        (a name or a loss object) and metrics (names like "accuracy", or keras.metrics objects)."""
        if loss is None:
            raise ValueError("compile needs a loss, e.g. loss='sparse_categorical_crossentropy'")
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise TypeError(f"metrics must be a list, e.g. metrics=['accuracy'], got {type(metrics).__name__}")
        opt = mixed_precision.wrap_optimizer(self, optimizers_module.get(optimizer))  # LossScaleOptimizer under mixed_float16
        loss_fn = losses_module.get(loss)
        kind = losses_module.kind(loss_fn)
        compiled = [metrics_module.get(m, kind) for m in (metrics or [])]
        names = [n for n, _ in compiled]
        if len(set(names)) != len(names):
            raise ValueError(f"metrics {names} repeat a name")
        if self.built and isinstance(opt, optimizers_module.KerasOptimizer):
            opt.build(self.parameters())  # may refuse (e.g. built for another model) before anything is set
        object.__setattr__(self, "optimizer", opt)
        object.__setattr__(self, "loss", loss_fn)
        object.__setattr__(self, "compiled_metrics", compiled)
        object.__setattr__(self, "_compile_config", _compile_config(optimizer, loss, metrics))
        if self.built:
            self._build_optimizer()

    def _build_optimizer(self):
        opt = self.optimizer
        if isinstance(opt, optimizers_module.KerasOptimizer):
            opt.build(self.parameters())  # builds once; refuses an optimizer built for another model

    def _require_compiled(self, what: str):
        if self.loss is None:
            raise RuntimeError(f"call model.compile(optimizer=..., loss=...) before model.{what}()")

    def _require_single_output(self, what: str):
        if len(self._outputs) > 1:
            raise NotImplementedError(f"model.{what}() on a model with {len(self._outputs)} outputs is not supported "
                                      "(one loss per output); predict() works, or build one model per output")

    def _ensure_built(self, x) -> None:
        if not self.built:
            self.build((None,) + tuple(x.shape[1:]))

    # ------------------------------------------------------------------ targets
    def _checked_targets(self, y, what: str = "y") -> np.ndarray:
        """`y` as fit uses it; labels for a sparse loss are checked (integers in [0, outputs))."""
        y = _as_target(y)
        kind = losses_module.kind(self.loss)
        units = self._output_units()
        keras_sparse = isinstance(self.loss, losses_module.SparseCategoricalCrossentropy)
        if kind == "sparse" and (keras_sparse or y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)):
            y = losses_module.integer_labels(y, f"{type(self.loss).__name__} ({what})",
                                             num_classes=units if keras_sparse else None)
        return y

    # ------------------------------------------------------------------ one batch
    def _metric_values(self, y, y_pred: np.ndarray) -> dict:
        return {name: fn(y, y_pred) for name, fn in self.compiled_metrics}

    def train_on_batch(self, x, y) -> dict:
        """One optimisation step (tinyopt.loop.train_step); returns the batch's loss and metrics.
        A NaN or infinite loss raises TrainingDiverged and is not applied."""
        self._require_compiled("train_on_batch")
        self._require_single_output("train_on_batch")
        x = _as_inputs(x, self._num_inputs)
        if _num_samples(x) == 0:
            raise ValueError("train_on_batch needs at least one sample, got an empty batch")
        if not isinstance(x, tuple):
            self._ensure_built(x)
        y = self._checked_targets(y)
        if len(y) != _num_samples(x):
            raise ValueError(f"x and y must have the same number of samples, got {_num_samples(x)} and {len(y)}")
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
        """Train for `epochs` epochs; returns a `History` (`.history` dict of per-epoch lists).
        Every argument and the data are checked before anything changes (a refused call leaves the
        weights, the optimizer and the random generators as they were)."""
        self._require_compiled("fit")
        self._require_single_output("fit")
        if x is None or y is None:
            raise ValueError("fit needs x and y arrays")
        epochs = _count(epochs, "epochs")
        initial_epoch = _count(initial_epoch, "initial_epoch")
        batch_size = 32 if batch_size is None else positive_int(batch_size, "batch_size")
        if verbose != "auto" and (isinstance(verbose, bool) or verbose not in (0, 1, 2)):
            raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
        if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float, np.floating)) \
                or not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be a number in [0, 1), got {validation_split!r}")
        if callbacks is not None and not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"callbacks must be a list of Callback objects, got {type(callbacks).__name__}")
        x = _as_inputs(x, self._num_inputs)
        if not isinstance(x, tuple):
            self._check_input_shape(x)
        y = self._checked_targets(y)
        n = _num_samples(x)
        if n != len(y):
            raise ValueError(f"x and y must have the same number of samples, got {n} and {len(y)}")
        if n == 0:
            raise ValueError("fit needs at least one sample, got empty arrays")
        if validation_data is None and validation_split > 0:
            split = int(n * (1.0 - validation_split))
            if split == 0 or split == n:
                raise ValueError(f"validation_split={validation_split} leaves no training or no validation samples")
            validation_data = (_take(x, slice(split, None)), y[split:])
            x, y = _take(x, slice(None, split)), y[:split]
        elif validation_data is not None:
            if not isinstance(validation_data, (list, tuple)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (x_val, y_val)")
            xv = _as_inputs(validation_data[0], self._num_inputs)
            yv = self._checked_targets(validation_data[1], "validation_data")
            if _num_samples(xv) != len(yv) or len(yv) == 0:
                raise ValueError(f"validation_data needs as many x as y samples, at least one; got "
                                 f"{_num_samples(xv)} and {len(yv)}")
            validation_data = (xv, yv)
        if not isinstance(x, tuple):
            self._ensure_built(x)
            y = self._checked_targets(y)  # again, now that the number of outputs is known
            if validation_data is not None:
                validation_data = (validation_data[0], self._checked_targets(validation_data[1], "validation_data"))
        cbs_list = list(callbacks or [])
        self._build_optimizer()

        rng = resolve(rng)
        n = _num_samples(x)
        steps = math.ceil(n / batch_size)
        verbose = 1 if verbose == "auto" else int(verbose)
        history = callbacks_module.History()
        cbs = callbacks_module.CallbackList(
            cbs_list + [history], model=self,
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

    def _check_input_shape(self, x) -> None:
        """Compare x's sample shape with a built model's before anything runs."""
        if self.built and isinstance(self.input_shape, tuple) and self.input_shape[1:] != tuple(x.shape[1:]):
            first = next((layer for layer in self._layers if not isinstance(layer, InputLayer)), None)
            who = f"its first layer {first.name!r} " if first is not None else ""
            raise ShapeError(f"model {self.name!r} ({who}) takes inputs of shape {self.input_shape}, got "
                             f"{(None,) + x.shape[1:]}".replace(" ()", ""))

    # ------------------------------------------------------------------ evaluate / predict
    def _evaluate_logs(self, x, y, batch_size: int = 32) -> dict:
        self._require_compiled("evaluate")
        self._require_single_output("evaluate")
        x = _as_inputs(x, self._num_inputs)
        y = self._checked_targets(y)
        if _num_samples(x) != len(y):
            raise ValueError(f"x and y must have the same number of samples, got {_num_samples(x)} and {len(y)}")
        if len(y) == 0:
            raise ValueError("evaluate needs at least one sample, got empty arrays (a loss over no samples is undefined)")
        sums, n = {}, 0
        with evaluation(self):
            for xb, yb in minibatches(x, y, batch_size):
                y_pred = self(xb if isinstance(xb, tuple) else Tensor(xb))
                loss = self.loss(yb, y_pred)
                sums["loss"] = sums.get("loss", 0.0) + float(loss.item()) * len(yb)
                for k, v in self._metric_values(yb, y_pred.data).items():
                    sums[k] = sums.get(k, 0.0) + float(np.sum(v))
                n += len(yb)
        reg = self.regularization_loss()
        logs = {k: s / n for k, s in sums.items()}
        if reg is not None:
            logs["loss"] += float(reg.item())  # Keras reports the loss including regularization
        return logs

    def evaluate(self, x, y, batch_size=None, verbose="auto", return_dict: bool = False):
        """Loss (and metrics) on x, y in evaluation mode. Returns the loss alone when no metrics were
        compiled, else [loss, metric, ...] (or a dict with `return_dict=True`), like Keras."""
        batch_size = 32 if batch_size is None else positive_int(batch_size, "batch_size")
        logs = self._evaluate_logs(x, y, batch_size)
        if verbose in (1, 2):
            print(" - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose=0):
        """Model outputs for x (evaluation mode, no graph), as an ndarray (a list of them for a model
        with several outputs). An empty x gives an empty result of shape (0,) + output shape."""
        x = _as_inputs(x, self._num_inputs)
        batch_size = 32 if batch_size is None else positive_int(batch_size, "batch_size")
        if not isinstance(x, tuple):
            self._check_input_shape(x)
            self._ensure_built(x)
        n = _num_samples(x)
        if n == 0:
            shapes = self.output_shape if isinstance(self.output_shape, list) else [self.output_shape]
            empty = [np.empty((0,) + tuple(s[1:]), dtype=np.float32) for s in shapes]
            return empty[0] if len(empty) == 1 else empty
        with evaluation(self):
            outs = []
            for s in range(0, n, batch_size):
                xb = _take(x, slice(s, s + batch_size))
                out = self(xb if isinstance(xb, tuple) else Tensor(xb))
                outs.append([o.data for o in out] if isinstance(out, list) else [out.data])
        joined = [np.concatenate([b[k] for b in outs], axis=0) for k in range(len(outs[0]))]
        return joined[0] if len(joined) == 1 else joined

    # ------------------------------------------------------------------ summary
    def summary(self, print_fn=print, line_length: int = 65) -> str:
        """Print (and return) a table of layers, output shapes and parameter counts (and, for a
        functional model, which layers feed each one)."""
        if not self.built:
            raise ValueError(
                f"model {self.name!r} is not built yet: give the first layer input_shape=..., call "
                "model.build((None, ...)), or fit it once"
            )
        functional = not isinstance(self, Sequential)
        shown = self.layers
        labels = [f"{layer.name} ({type(layer).__name__})" for layer in shown]
        connected = {}
        if functional:
            for layer, parents in self._nodes:
                links = [self._nodes[p][0].name for p in parents]
                connected.setdefault(layer.name, []).extend(links)
        cols = (max([29] + [len(label) + 2 for label in labels]), 26, 10)
        extra = 2 + max([12] + [len(", ".join(v)) for v in connected.values()]) if functional else 0
        line_length = max(line_length, sum(cols) + extra)
        header = f"{'Layer (type)':<{cols[0]}}{'Output Shape':<{cols[1]}}{'Param #':>{cols[2]}}"
        if functional:
            header += f"  {'Connected to'}"
        rows = [f'Model: "{self.name}"', "_" * line_length, header, "=" * line_length]
        for i, (layer, label) in enumerate(zip(shown, labels)):
            shape = str((None,) + tuple(layer.output_shape))
            row = f"{label:<{cols[0]}}{shape:<{cols[1]}}{layer.count_params():>{cols[2]},}"
            if functional:
                row += "  " + (", ".join(connected.get(layer.name, [])) or "-")
            rows.append(row)
            rows.append("_" * line_length if i < len(shown) - 1 else "=" * line_length)
        total = self.count_params()
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        rows += [f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                 f"Non-trainable params: {total - trainable:,}", "_" * line_length]
        text = "\n".join(rows)
        if print_fn is not None:
            print_fn(text)
        return text


class Sequential(Model):
    """A linear stack of Keras layers. `Sequential([layer, ...])` or `add(layer)` one at a time;
    a first `keras.Input(shape)` (or `input_shape=` on the first layer) builds it at once."""

    def __init__(self, layers=None, name: str = "sequential"):
        Module.__init__(self)
        self._init_state(name)
        object.__setattr__(self, "_inputs", [0])
        object.__setattr__(self, "_outputs", [0])
        if layers is not None and not isinstance(layers, (list, tuple)):
            raise TypeError(f"Sequential takes a list of layers, got {type(layers).__name__}")
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self) -> list:
        return [layer for layer in self._layers if not isinstance(layer, InputLayer)]

    @property
    def inputs(self) -> list:
        """The Input it was given first (`Sequential([keras.Input(shape), ...])`), else []."""
        return [layer.output for layer in self._layers[:1] if isinstance(layer, InputLayer)]

    @property
    def outputs(self) -> list:
        raise NotImplementedError("Sequential.outputs: a Sequential keeps no graph; use model.output_shape, or "
                                  "build the same model as keras.Model(inputs, outputs)")

    def add(self, layer) -> None:
        if isinstance(layer, KerasTensor):
            if not isinstance(layer.layer, InputLayer):
                raise TypeError("Sequential.add takes layers or a keras.Input(...); got a KerasTensor made by "
                                f"layer {layer.layer.name!r} (use keras.Model(inputs, outputs) for graphs)")
            layer = layer.layer
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add takes keras layers (tinyopt.keras.layers), got {type(layer).__name__}")
        if isinstance(layer, layers_module._Merge):
            raise TypeError(f"{type(layer).__name__} takes several inputs; use keras.Model(inputs, outputs) for it")
        if isinstance(layer, InputLayer) and self._layers:
            raise ValueError("an Input can only be the first layer of a Sequential")
        self._register(layer)
        if len(self._layers) == 1 and layer.input_spec is not None:
            self.build((None,) + layer.input_spec)
        elif self.built:
            try:
                shape = layer._build(self.output_shape[1:])
            except ShapeError:
                self._layers.pop()
                delattr(self, layer.name)
                raise
            object.__setattr__(self, "output_shape", (None,) + shape)

    def build(self, input_shape) -> None:
        """Build every layer for inputs of `input_shape` (with the batch axis, which may be None)."""
        shape = tuple(input_shape)[1:]
        object.__setattr__(self, "input_shape", (None,) + tuple(shape))
        for layer in self._layers:
            try:
                if layer.built and not isinstance(layer, InputLayer):  # a layer built before keeps its weights
                    if tuple(shape) != layer.built_input_shape:
                        raise ShapeError(f"layer {layer.name!r} was built for inputs of shape "
                                         f"{(None,) + layer.built_input_shape}, here it gets {(None,) + tuple(shape)}")
                    shape = layer.output_shape
                else:
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
        for layer in self._layers:
            try:
                x = layer(x)
            except ShapeError as e:
                raise ShapeError(f"layer {layer.name!r} of Sequential {self.name!r}: {e}") from None
        return x

    call = forward

    def _output_units(self):
        shape = self.output_shape
        return shape[-1] if self.built and len(shape) == 2 else None

    def get_config(self) -> dict:
        return {"name": self.name, "layers": [layers_module.serialize(layer) for layer in self._layers],
                "build_input_shape": list(self.input_shape[1:]) if self.built else None}

    @classmethod
    def from_config(cls, config: dict) -> "Sequential":
        model = cls([layers_module.deserialize(spec) for spec in config["layers"]], name=config["name"])
        if not model.built and config.get("build_input_shape") is not None:
            model.build((None,) + tuple(config["build_input_shape"]))
        return model


# ----------------------------------------------------------------------------- helpers

SAVE_FORMAT = "tinyopt-keras-model-v1"


def _overrides_set_weights(layer) -> bool:
    """True for a layer class that defines set_weights itself but not `_weight_slots` (so
    `_plan_weights` would not know its layout)."""
    cls = type(layer)
    return cls.set_weights is not Layer.set_weights and cls._weight_slots is Layer._weight_slots


def _count(value, what: str) -> int:
    """A non-negative int (epochs=0 trains nothing, as Keras; -1, 2.5, "3", True are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be a non-negative int, got {value!r} ({type(value).__name__})")
    if value < 0:
        raise ValueError(f"{what} must be >= 0, got {value}")
    return int(value)


def _compile_config(optimizer, loss, metrics):
    """What compile was given, as JSON-able data, or None when part of it cannot be named (a
    tinyopt.optim optimizer, a torch-style loss module, a function): load_model then leaves the
    model uncompiled."""
    if isinstance(optimizer, str):
        opt = {"name": optimizer}
    elif isinstance(optimizer, optimizers_module.KerasOptimizer) and type(optimizer) in optimizers_module.NAMES.values():
        opt = optimizer.get_config()
    else:
        return None
    if isinstance(loss, str):
        loss_cfg = loss
    else:
        loss_cfg = losses_module.serialize(loss)
        if loss_cfg is None:
            return None
    metric_cfg = []
    for m in metrics or []:
        if isinstance(m, str):
            metric_cfg.append(m)
        elif type(m) in METRIC_CLASSES.values() and type(m) is not metrics_module.BinaryAccuracy:
            metric_cfg.append({"class_name": type(m).__name__, "name": m.name})
        else:
            return None
    return {"optimizer": opt, "loss": loss_cfg, "metrics": metric_cfg}


METRIC_CLASSES = {cls.__name__: cls for cls in (
    metrics_module.SparseCategoricalAccuracy, metrics_module.CategoricalAccuracy, metrics_module.BinaryAccuracy,
    metrics_module.MeanSquaredError, metrics_module.MeanAbsoluteError)}


def _compile_from_config(model, config) -> None:
    opt = dict(config["optimizer"])
    name = opt.pop("name")
    optimizer = optimizers_module.get(name) if not opt else optimizers_module.NAMES[name.lower()](**opt)
    loss = config["loss"] if isinstance(config["loss"], str) else losses_module.deserialize(config["loss"])
    metrics = [m if isinstance(m, str) else METRIC_CLASSES[m["class_name"]](name=m["name"]) for m in config["metrics"]]
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)


def model_from_config(config: dict, class_name: str = "Functional") -> Model:
    """A new model (fresh weights) from `model.get_config()`."""
    if class_name == "Sequential":
        return Sequential.from_config(config)
    if class_name == "Functional":
        return Model.from_config(config)
    raise ValueError(f"unknown model class {class_name!r}")


def load_model(filepath, custom_objects=None, compile: bool = True, safe_mode: bool = True) -> Model:  # noqa: A002
    """Rebuild a model written by `model.save(filepath)`: architecture, weights, and (with
    `compile=True`, when the compile arguments were saved) compile. Never unpickles; a damaged,
    truncated or foreign file raises `tinyopt.checkpoint.CheckpointError` naming the file.
    `custom_objects` is not supported (custom layers cannot be rebuilt from a name)."""
    from tinyopt.checkpoint import CheckpointError, load

    if custom_objects:
        raise NotImplementedError("load_model(custom_objects=...) is not supported: only tinyopt.keras layers, "
                                  "losses and metrics can be rebuilt from a saved model")
    if not isinstance(compile, bool):
        raise TypeError(f"compile must be True or False, got {compile!r}")
    record = load(filepath)
    if not isinstance(record, dict) or record.get("format") != SAVE_FORMAT:
        raise CheckpointError(f"{filepath} is a tinyopt checkpoint but not a saved Keras model (no format "
                              f"{SAVE_FORMAT!r}); a file from save_weights() or ModelCheckpoint loads with "
                              "model.load_weights(path) into a model you build yourself")
    try:
        config = json.loads(record["config"])
        compile_config = json.loads(record["compile"])
        model = model_from_config(config, record["class_name"])
        model.set_weights(record["weights"])
        if compile and compile_config is not None:
            _compile_from_config(model, compile_config)
            if record.get("optimizer") is not None:
                model.optimizer.load_state_dict(record["optimizer"])
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, ShapeError, RuntimeError) as e:
        raise CheckpointError(f"{filepath}: the saved model cannot be rebuilt ({type(e).__name__}: {e})") from None
    return model


__all__ = ["Model", "Sequential", "load_model", "model_from_config"]
