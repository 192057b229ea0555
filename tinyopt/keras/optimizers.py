"""Keras optimizer names and defaults, on top of tinyopt.optim (no second implementation).

Keras builds an optimizer before it knows the parameters (`Adam()` then `model.compile(optimizer=...)`);
torch binds them at construction. A `KerasOptimizer` holds Keras' hyperparameters and, when the model
is compiled, creates the tinyopt.optim optimizer of the same name with the torch argument names:

| Keras                    | defaults (Keras)                                  | runs as tinyopt.optim       |
|--------------------------|---------------------------------------------------|-----------------------------|
| `SGD`                    | learning_rate=0.01, momentum=0, nesterov=False   | `SGD(lr, momentum, nesterov, momentum_style="sutskever")` |
| `Adam`                   | learning_rate=0.001, β₁=0.9, β₂=0.999, ε=1e-7     | `Adam(lr, betas, eps, eps_placement="keras")` |
| `AdamW`                  | learning_rate=0.001, weight_decay=0.004, ε=1e-7   | `AdamW(lr, betas, eps, weight_decay)` |
| `RMSprop`                | learning_rate=0.001, ρ=0.9, momentum=0, ε=1e-7    | `RMSprop(lr, alpha=ρ, eps, momentum)` |
| `Adagrad`                | learning_rate=0.001, initial_accumulator_value=0.1, ε=1e-7 | `Adagrad(lr, initial_accumulator_value, eps)` |

The defaults are Keras' (they differ from torch's: Keras' Adam ε is 1e-7, torch's 1e-8; Keras'
RMSprop ρ is 0.9, torch's α is 0.99). Where Keras' update rule differs from torch's, the
tinyopt.optim option that reproduces Keras is switched on:

- SGD with momentum: Keras keeps v ← μv − γg, θ ← θ + v, i.e. the learning rate inside the
  velocity; that is `SGD(momentum_style="sutskever")` (torch keeps b ← μb + g, θ ← θ − γb; the two
  agree while γ is constant and differ after a learning-rate change).
- Adam/AdamW: Keras divides by √v + ε̂ with ε̂ = ε·√(1 − β₂ᵗ), not by √v̂ + ε; that is
  `Adam(eps_placement="keras")`.
- RMSprop: Keras divides by √(v + ε), torch by √v + ε; tinyopt.optim.RMSprop has only torch's
  form, so this one differs from Keras in where ε sits (negligible unless v ≈ ε).

`get(identifier)` accepts a name ('sgd', 'adam', 'adamw', 'rmsprop', 'adagrad'), a
`KerasOptimizer`, or an already-built `tinyopt.optim.Optimizer`. The tinyopt.optim classes are
looked up by name when the model is compiled, so optimizers added to tinyopt.optim later work
without a change here.
"""
from __future__ import annotations

import math

import numpy as np

from tinyopt.nn.parameter import Parameter
from tinyopt.optim.optimizer import Optimizer


class KerasOptimizer:
    """Keras-style optimizer: hyperparameters now, parameters at `build(params)`.

    After building it forwards `step`, `zero_grad`, `state_dict`, `load_state_dict` and
    `param_groups` to the tinyopt.optim optimizer in `self.optimizer`; `learning_rate` reads and
    writes the learning rate of every parameter group."""

    torch_name = ""
    keras_defaults: dict = {}

    def __init__(self, learning_rate=None, **hyper):
        unknown = set(hyper) - set(self.keras_defaults)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected arguments {sorted(unknown)}; "
                            f"it takes learning_rate and {sorted(self.keras_defaults)}")
        self.hyper = dict(self.keras_defaults, **hyper)
        if learning_rate is not None and (isinstance(learning_rate, bool) or not isinstance(
                learning_rate, (int, float, np.integer, np.floating))):
            raise TypeError(f"{type(self).__name__}: learning_rate must be a number, got {learning_rate!r} "
                            f"({type(learning_rate).__name__}); learning-rate schedules go in a callback "
                            "(keras.callbacks.LearningRateScheduler)")
        self._learning_rate = self.default_learning_rate if learning_rate is None else float(learning_rate)
        if not math.isfinite(self._learning_rate) or self._learning_rate < 0:
            raise ValueError(f"Invalid learning rate: {self._learning_rate}")
        self.optimizer = None
        self._check_hyperparameters()

    def _check_hyperparameters(self) -> None:
        """Refuse bad hyperparameters now, not at compile time: tinyopt.optim's own checks run on a
        throwaway parameter (one validation, the torch optimizer's)."""
        import tinyopt.optim as optim

        cls = getattr(optim, self.torch_name, None)
        if cls is None:
            return  # build() says the optimizer is missing
        kwargs = {k: v for k, v in self.torch_kwargs().items() if v is not None}
        try:
            cls([Parameter(np.zeros(1, np.float32))], lr=self._learning_rate, **kwargs)
        except TypeError:
            return  # an option this tinyopt.optim lacks: build() names it
        except ValueError as e:
            raise ValueError(f"{type(self).__name__}: {e}") from None

    default_learning_rate = 0.001

    def torch_kwargs(self) -> dict:  # pragma: no cover - interface
        raise NotImplementedError

    def build(self, params) -> Optimizer:
        import tinyopt.optim as optim

        params = list(params)
        if self.optimizer is not None:
            built = [p for group in self.optimizer.param_groups for p in group["params"]]
            if [id(p) for p in built] != [id(p) for p in params]:
                raise ValueError(f"this {type(self).__name__} is already built for another model's weights; "
                                 f"give each model its own optimizer, e.g. keras.optimizers.{type(self).__name__}()")
            return self.optimizer

        cls = getattr(optim, self.torch_name, None)
        if cls is None:
            raise NotImplementedError(
                f"tinyopt.optim.{self.torch_name} is not available in this version of tinyopt; "
                f"use optimizer='sgd' or another optimizer from tinyopt.optim"
            )
        kwargs = {k: v for k, v in self.torch_kwargs().items() if v is not None}
        try:
            self.optimizer = cls(list(params), lr=self._learning_rate, **kwargs)
        except TypeError as e:
            raise NotImplementedError(f"tinyopt.optim.{self.torch_name} does not take {sorted(kwargs)} yet ({e})") from None
        return self.optimizer

    # --------------------------------------------------------------- learning rate
    @property
    def learning_rate(self) -> float:
        if self.optimizer is not None:
            return self.optimizer.param_groups[0]["lr"]
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._learning_rate = float(value)
        if self.optimizer is not None:
            set_lr(self.optimizer, value)

    lr = learning_rate

    # --------------------------------------------------------------- forwarding
    def _built(self) -> Optimizer:
        if self.optimizer is None:
            raise RuntimeError(f"{type(self).__name__} is not built yet: compile a model with it first")
        return self.optimizer

    @property
    def param_groups(self):
        return self._built().param_groups

    def step(self, closure=None):
        return self._built().step(closure)

    def zero_grad(self, set_to_none: bool = True):
        self._built().zero_grad(set_to_none)

    def state_dict(self):
        return self._built().state_dict()

    def load_state_dict(self, state):
        self._built().load_state_dict(state)

    def get_config(self) -> dict:
        return dict(name=type(self).__name__, learning_rate=self.learning_rate, **self.hyper)

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class SGD(KerasOptimizer):
    torch_name = "SGD"
    default_learning_rate = 0.01
    keras_defaults = dict(momentum=0.0, nesterov=False, weight_decay=None)

    def torch_kwargs(self):
        h = self.hyper
        if not h["momentum"] and not h["nesterov"] and not h["weight_decay"]:
            return {}  # plain SGD: works with the most basic tinyopt.optim.SGD
        return dict(momentum=h["momentum"], nesterov=h["nesterov"], weight_decay=h["weight_decay"] or 0.0,
                    momentum_style="sutskever")


class Adam(KerasOptimizer):
    torch_name = "Adam"
    keras_defaults = dict(beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False)

    def torch_kwargs(self):
        h = self.hyper
        kwargs = dict(betas=(h["beta_1"], h["beta_2"]), eps=h["epsilon"], eps_placement="keras")
        if h["amsgrad"]:
            kwargs["amsgrad"] = True
        return kwargs


class AdamW(KerasOptimizer):
    torch_name = "AdamW"
    keras_defaults = dict(weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False)

    def torch_kwargs(self):
        h = self.hyper
        kwargs = dict(betas=(h["beta_1"], h["beta_2"]), eps=h["epsilon"], weight_decay=h["weight_decay"],
                      eps_placement="keras")
        if h["amsgrad"]:
            kwargs["amsgrad"] = True
        return kwargs


class RMSprop(KerasOptimizer):
    torch_name = "RMSprop"
    keras_defaults = dict(rho=0.9, momentum=0.0, epsilon=1e-7, centered=False)

    def torch_kwargs(self):
        h = self.hyper
        kwargs = dict(alpha=h["rho"], eps=h["epsilon"])
        if h["momentum"]:
            kwargs["momentum"] = h["momentum"]
        if h["centered"]:
            kwargs["centered"] = True
        return kwargs


class Adagrad(KerasOptimizer):
    torch_name = "Adagrad"
    keras_defaults = dict(initial_accumulator_value=0.1, epsilon=1e-7)

    def torch_kwargs(self):
        h = self.hyper
        return dict(initial_accumulator_value=h["initial_accumulator_value"], eps=h["epsilon"])


NAMES = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad}


def get(identifier):
    """A `KerasOptimizer` (unbuilt) or a tinyopt.optim `Optimizer` from a name or an object."""
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in NAMES:
            raise ValueError(f"unknown optimizer {identifier!r}; choose one of {sorted(NAMES)} or pass an optimizer object")
        return NAMES[key]()
    if isinstance(identifier, (KerasOptimizer, Optimizer)):
        return identifier
    raise TypeError(f"optimizer must be a name, a keras optimizer or a tinyopt.optim.Optimizer, got {type(identifier).__name__}")


def get_lr(optimizer) -> float:
    """Learning rate of the first parameter group (Keras optimizers have one)."""
    if isinstance(optimizer, KerasOptimizer):
        return optimizer.learning_rate
    return optimizer.param_groups[0]["lr"]


def set_lr(optimizer, value: float) -> None:
    """Set the learning rate of every parameter group."""
    if isinstance(optimizer, KerasOptimizer):
        optimizer.learning_rate = value
        return
    for group in optimizer.param_groups:
        group["lr"] = float(value)


__all__ = ["Adagrad", "Adam", "AdamW", "KerasOptimizer", "RMSprop", "SGD", "get", "get_lr", "set_lr"]
