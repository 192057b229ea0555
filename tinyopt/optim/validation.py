"""The one place hyperparameters are checked: every optimizer and every scheduler calls these.

torch writes `if not 0.0 <= lr: raise ValueError(f"Invalid learning rate: {lr}")` in each
optimizer; tinyopt writes the same conditions once, here, and each class lists its hyperparameters
in one `_check_hyperparameters(h)` (optimizers: called for the defaults, for every param group
added later, and for every group a `load_state_dict` would install) or at the top of its
constructor (schedulers), before anything is changed.

What is refused (a `ValueError` that names the value and, where it is not obvious, why):

- everything torch refuses, with torch's message ("Invalid learning rate: -0.1", "Invalid beta
  parameter at index 1: 1.0", ...);
- NaN and ±inf for every real hyperparameter (torch lets `lr=inf` or `eps=inf` through; the first
  makes every step non-finite, the second turns every update into 0);
- values that break the formula by construction, with the reason in the message: momentum μ > 1
  (the buffer b_t = μ b_{t−1} + ... grows like μᵗ), dampening outside [0, 1] (1 − τ < 0 turns the
  buffer against the gradient), `betas` that are not a pair, schedules that divide by zero
  (`StepLR(step_size=0)`, `CosineAnnealingLR(T_max=0)`), `CyclicLR(base_lr > max_lr)`, negative
  decay factors γ (they flip the sign of the learning rate).

A value of the wrong type (a string, None where a number is needed) raises `TypeError`.
"""
from __future__ import annotations

import math
import numbers

# Words torch uses in its messages for these hyperparameter names.
_WHAT = {"lr": "learning rate", "eps": "epsilon value"}


def _what(name: str) -> str:
    return _WHAT.get(name, f"{name} value")


def check_real(name: str, value, *, low=None, high=None, low_open: bool = False, high_open: bool = False,
               why: str | None = None, what: str | None = None) -> float:
    """Check that `value` is a finite real number in [low, high] (an end is excluded when
    `low_open`/`high_open`; None: unbounded) and return it as given.

    The message is torch's form, "Invalid {what}: {value}", plus the allowed range and `why`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    ok = math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise ValueError(f"Invalid {what or _what(name)}: {value} ({_allowed(low, high, low_open, high_open)}"
                         + (f"; {why}" if why else "") + ")")
    return value


def _allowed(low, high, low_open, high_open) -> str:
    if low is None and high is None:
        return "must be a finite number"
    if high is None:
        return f"must be a finite number {'>' if low_open else '>='} {low}"
    if low is None:
        return f"must be a finite number {'<' if high_open else '<='} {high}"
    return f"must be in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"


def check_nonnegative(name: str, value, why: str | None = None) -> float:
    """torch's `if not 0.0 <= value: raise ValueError(f"Invalid {what}: {value}")`, refusing NaN/inf too."""
    return check_real(name, value, low=0.0, why=why)


def check_lr(value, name: str = "lr") -> float:
    return check_nonnegative(name, value)


MOMENTUM_WHY = "with μ > 1 the momentum buffer b_t = μ b_{t−1} + … grows like μᵗ: the optimizer diverges by construction"


def check_momentum(value, name: str = "momentum") -> float:
    """μ ∈ [0, 1]: torch checks μ ≥ 0 only; μ > 1 is refused here because it diverges by construction."""
    return check_real(name, value, low=0.0, high=1.0, why=MOMENTUM_WHY)


def check_dampening(value) -> float:
    return check_real("dampening", value, low=0.0, high=1.0,
                      why="the buffer adds (1 − τ) g_t; τ > 1 would push against the gradient")


def check_betas(betas, *, n: int = 2, name: str = "betas", high_open: bool = True) -> tuple:
    """A tuple of `n` coefficients, each in [0, 1) (torch's "Invalid beta parameter at index i");
    returns them as a tuple of floats."""
    if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__"):
        raise TypeError(f"{name} must be a tuple of {n} floats, got {betas!r}")
    if len(betas) != n:
        raise ValueError(f"{name} must have {n} values, got {len(betas)}: {tuple(betas)!r}")
    for i, beta in enumerate(betas):
        check_real(name, beta, low=0.0, high=1.0, high_open=high_open, what=f"beta parameter at index {i}")
    return tuple(float(b) for b in betas)


def check_pair(name: str, values, n: int = 2) -> tuple:
    """A tuple of `n` real numbers (each checked by the caller)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise TypeError(f"{name} must be a tuple of {n} numbers, got {values!r}")
    if len(values) != n:
        raise ValueError(f"{name} must have {n} values, got {len(values)}: {tuple(values)!r}")
    return tuple(values)


def check_int(name: str, value, *, low: int | None = None, why: str | None = None) -> int:
    """An integer (a float with an integral value is refused, as torch's schedulers do) ≥ `low`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"Expected an integer {name}, but got {value!r} ({type(value).__name__})")
    if low is not None and value < low:
        raise ValueError(f"Expected {name} >= {low}, but got {value}" + (f" ({why})" if why else ""))
    return int(value)


def check_choice(name: str, value, choices) -> object:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_per_group(name: str, values: list, check) -> list:
    """Apply `check(name, value)` to each per-group value (a scheduler's `base_lr` list, ...)."""
    for i, value in enumerate(values):
        try:
            check(name, value)
        except ValueError as e:
            raise ValueError(f"{e} (param group {i})" if len(values) > 1 else str(e)) from None
    return values
