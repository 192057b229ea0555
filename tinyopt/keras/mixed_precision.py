"""Keras' `mixed_precision`: dtype policies and `LossScaleOptimizer`, on `tinyopt.amp`.

    from tinyopt import keras
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = keras.Sequential([...])            # the policy is read when the model is created (Keras: per layer)
    model.compile(optimizer="adam", loss=...)  # under mixed_float16 the optimizer is wrapped in a LossScaleOptimizer
    model.fit(x, y)

A policy names a *compute* dtype and a *variable* dtype (Keras' terms):

    "float32"          compute float32,  variables float32
    "mixed_float16"    compute float16,  variables float32, dynamic loss scaling
    "mixed_bfloat16"   compute bfloat16, variables float32 (bfloat16 has float32's range: no scaling)

Under a mixed policy a Sequential model's forward runs inside `tinyopt.amp.autocast(dtype=compute)`,
so its Dense and Conv2D layers compute in 16 bits from float32 weights (torch's op lists decide what
else; see tinyopt/amp/autocast_mode.py), and its output is cast to float32 before the loss, as the
Keras guide asks of the last layer ("dtype='float32'") so that softmax and the loss are not 16-bit.

`LossScaleOptimizer(inner_optimizer, initial_scale=2**15, dynamic_growth_steps=2000)` is Keras 3's
dynamic loss scaling: the loss is multiplied by S before backward; the gradients are divided by S; a
step with a non-finite gradient is skipped and halves S; `dynamic_growth_steps` finite steps in a row
double S. That is `tinyopt.amp.GradScaler(init_scale=initial_scale, growth_factor=2, backoff_factor=0.5,
growth_interval=dynamic_growth_steps)`, which does the work (`.scaler`); `fit` and `train_on_batch`
hand it to the training loop. Differences from Keras: the policy belongs to the model, not to each
layer (a layer's own `dtype=` is not read), and only "float32" and the two mixed policies exist.
"""
from __future__ import annotations

import contextlib

import numpy as np

from tinyopt import dtypes
from tinyopt.amp import GradScaler, autocast
from tinyopt.keras import optimizers as optimizers_module
from tinyopt.optim.optimizer import Optimizer

_COMPUTE = {"float32": "float32", "mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}


class Policy:
    """A dtype policy (Keras' `DTypePolicy`): `name`, `compute_dtype`, `variable_dtype`."""

    def __init__(self, name: str):
        if isinstance(name, Policy):
            name = name.name
        if name not in _COMPUTE:
            raise ValueError(f"Cannot convert {name!r} to a mixed precision policy; tinyopt supports "
                             f"{', '.join(repr(n) for n in _COMPUTE)}")
        self.name = name
        self.compute_dtype = _COMPUTE[name]
        self.variable_dtype = "float32"

    @property
    def is_mixed(self) -> bool:
        return self.compute_dtype != self.variable_dtype

    def __eq__(self, other):
        return isinstance(other, Policy) and other.name == self.name

    def __hash__(self):
        return hash(self.name)

    def __repr__(self):
        return f'<DTypePolicy "{self.name}">'


DTypePolicy = Policy
_global = Policy("float32")


def set_global_policy(policy) -> None:
    """Set the policy that models created from now on use (a name or a Policy)."""
    global _global
    _global = Policy(policy)


def global_policy() -> Policy:
    return _global


def dtype_policy() -> Policy:
    """Keras 3's name for `global_policy`."""
    return _global


class LossScaleOptimizer(optimizers_module.KerasOptimizer):
    """Dynamic loss scaling around a Keras (or tinyopt.optim) optimizer; forwards everything else to it."""

    def __init__(self, inner_optimizer, initial_scale: float = 2.0**15, dynamic_growth_steps: int = 2000):
        inner = optimizers_module.get(inner_optimizer)
        if isinstance(inner, LossScaleOptimizer):
            raise ValueError("LossScaleOptimizer cannot wrap another LossScaleOptimizer")
        self.inner_optimizer = inner
        self.hyper = {}
        self.scaler = GradScaler("cpu", init_scale=initial_scale, growth_factor=2.0, backoff_factor=0.5,
                                 growth_interval=dynamic_growth_steps)
        self.initial_scale = float(initial_scale)
        self.dynamic_growth_steps = int(dynamic_growth_steps)
        self.optimizer = inner if isinstance(inner, Optimizer) else inner.optimizer
        self._learning_rate = optimizers_module.get_lr(inner) if self.optimizer is not None else inner.learning_rate

    def build(self, params) -> Optimizer:
        if isinstance(self.inner_optimizer, optimizers_module.KerasOptimizer):
            self.optimizer = self.inner_optimizer.build(params)
        return self.optimizer

    @property
    def learning_rate(self) -> float:
        return optimizers_module.get_lr(self.inner_optimizer) if self.optimizer is not None else self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._learning_rate = float(value)
        optimizers_module.set_lr(self.inner_optimizer, value)

    lr = learning_rate

    @property
    def dynamic_scale(self) -> float:
        """The current loss scale S (Keras 3's name; tf.keras called it `loss_scale`)."""
        return self.scaler.get_scale()

    loss_scale = dynamic_scale

    def scale_loss(self, loss):
        """loss · S (Keras 3's `scale_loss`; tf.keras' `get_scaled_loss`)."""
        return self.scaler.scale(loss)

    get_scaled_loss = scale_loss

    def get_config(self) -> dict:
        inner = self.inner_optimizer
        return {"name": "LossScaleOptimizer", "inner_optimizer": inner.get_config() if hasattr(inner, "get_config")
                else type(inner).__name__, "initial_scale": self.initial_scale,
                "dynamic_growth_steps": self.dynamic_growth_steps}

    def __repr__(self):
        return f"LossScaleOptimizer({self.inner_optimizer!r}, dynamic_scale={self.dynamic_scale:g})"


# ----------------------------------------------------------------------------- what models.py calls


def policy_of(model) -> Policy:
    return getattr(model, "dtype_policy", None) or Policy("float32")


def compute_scope(model):
    """The context a model's forward runs in: autocast to the compute dtype under a mixed policy."""
    policy = policy_of(model)
    if not policy.is_mixed:
        return contextlib.nullcontext()
    return autocast("cpu", dtype=dtypes.as_dtype(policy.compute_dtype))


def model_output(model, y):
    """The model's output (or list of outputs) for the loss: float32 under a mixed policy (Keras'
    float32 last layer)."""
    if isinstance(y, (list, tuple)):
        return type(y)(model_output(model, v) for v in y)
    if policy_of(model).is_mixed and y.dtype != np.float32 and dtypes.is_floating_point(y.dtype):
        return y.float()
    return y


def wrap_optimizer(model, optimizer):
    """Keras' compile under "mixed_float16": an optimizer not yet wrapped gets a LossScaleOptimizer."""
    if policy_of(model).name == "mixed_float16" and not isinstance(optimizer, LossScaleOptimizer):
        return LossScaleOptimizer(optimizer)
    return optimizer


def scaler_of(optimizer):
    """The GradScaler the training loop uses for this optimizer (None without loss scaling)."""
    return optimizer.scaler if isinstance(optimizer, LossScaleOptimizer) else None


__all__ = ["DTypePolicy", "LossScaleOptimizer", "Policy", "dtype_policy", "global_policy", "set_global_policy"]
