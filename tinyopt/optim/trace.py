"""Step-through trace: every intermediate quantity of an optimizer's formula, step by step.

Attach a `Trace` to an optimizer and each `step()` hands it, for every parameter, the quantities
its docstring's algorithm computes, under the docstring's names (for Adam: g, m, v, m_hat,
v_hat, lr_eff, update, theta), plus the step's scalars (t, γ, the bias corrections). The trace
keeps the first `k` elements of each (flattened), and prints them as a table: one block per
step, one row per quantity, one column per element:

    >>> opt = tinyopt.optim.Adam([w], lr=0.1)
    >>> with opt.trace(k=3) as tr:
    ...     for _ in range(2):
    ...         loss = f(w); opt.zero_grad(); loss.backward(); opt.step()
    >>> print(tr.table())
    Adam · parameter 0 · shape (2, 3) · elements [0:3] of 6
    ── t = 1 ──  γ = 0.1  β₁ = 0.9  β₂ = 0.999  ε = 1e-08  λ = 0  1−β₁ᵗ = 0.1  1−β₂ᵗ = 0.001
      symbol   name                [0]          [1]          [2]   meaning
      θ_{t−1}  theta_prev          0.5         -1.2            2   parameter before the step
      g_t      g                     1         -2.4            4   gradient (+ λθ for Adam's coupled decay)
      m_t      m                   0.1        -0.24          0.4   first moment: β₁ m_{t−1} + (1 − β₁) g_t
      ...
      γ_eff    lr_eff              0.1    0.0416667        0.025   effective per-element lr γ / (√v̂_t + ε)
      Δθ_t     update             -0.1          0.1         -0.1   −γ_eff ⊙ m̂_t
      θ_t      theta               0.4         -1.1          1.9   parameter after the step
    ── t = 2 ──  ...

The row labels come from the optimizer class's `trace_symbols` list: (code name, math symbol,
meaning), in the docstring's order.

While a trace is attached, the optimizer runs its readable NumPy formula (the reference path),
never the fused kernel, so what is printed is what was computed. Recording copies only `k`
elements per quantity; `k=None` keeps whole arrays.

`Trace.history(name, param=0)` returns a (steps × k) array of one quantity, for plots and tests.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

import numpy as np


@dataclass
class StepRecord:
    """One optimizer step of one parameter: its scalars and the first k elements of each quantity."""

    optimizer: str
    step: int
    param: int
    shape: tuple
    size: int
    quantities: dict = field(default_factory=dict)  # name -> 1-D ndarray (first k elements)
    scalars: dict = field(default_factory=dict)  # name -> float


class Trace:
    """Records `StepRecord`s from `optimizer` while attached (from construction until `detach()`).

    Parameters
    ----------
    optimizer: the Optimizer to trace (a second Trace replaces the first).
    k: how many leading elements (of each flattened parameter) to keep; None keeps all.
    params: which parameters to record, as indices across param groups (None: all).
    """

    def __init__(self, optimizer, k: int | None = 4, params=None):
        if k is not None and k < 1:
            raise ValueError(f"k must be a positive number of elements or None, got {k}")
        self.optimizer = optimizer
        self.k = k
        self.params = None if params is None else {int(i) for i in params}
        self.records: list[StepRecord] = []
        optimizer._tracer = self

    # ------------------------------------------------------------------ attach / detach
    def detach(self) -> "Trace":
        if self.optimizer._tracer is self:
            self.optimizer._tracer = None
        return self

    def __enter__(self) -> "Trace":
        return self

    def __exit__(self, *exc) -> None:
        self.detach()

    def _collect(self, optimizer, p, group, quantities: dict, scalars: dict) -> None:
        index = optimizer._param_index(p)
        if self.params is not None and index not in self.params:
            return
        keep = {}
        for name, value in quantities.items():
            flat = np.ravel(np.asarray(value))
            if flat.size == 1 and p.data.size != 1:  # a scalar quantity (e.g. SGD's lr): broadcast for the table
                flat = np.full(p.data.size, flat[0])
            keep[name] = np.array(flat[: self.k] if self.k is not None else flat, copy=True)
        self.records.append(
            StepRecord(
                optimizer=type(optimizer).__name__,
                step=int(scalars.get("t", len(self.steps(index)) + 1)),
                param=index,
                shape=tuple(p.shape),
                size=int(p.data.size),
                quantities=keep,
                scalars={k: v for k, v in scalars.items() if k != "t"},
            )
        )

    # ------------------------------------------------------------------ access
    def steps(self, param: int = 0) -> list:
        """The records of one parameter, in step order."""
        return [r for r in self.records if r.param == param]

    def history(self, name: str, param: int = 0) -> np.ndarray:
        """One quantity of one parameter over all recorded steps: an array of shape (steps, k)."""
        rows = [r.quantities[name] for r in self.steps(param) if name in r.quantities]
        if not rows:
            names = sorted({n for r in self.steps(param) for n in r.quantities})
            raise KeyError(f"no quantity {name!r} recorded for parameter {param}; recorded: {names}")
        return np.stack(rows)

    def __len__(self) -> int:
        return len(self.records)

    # ------------------------------------------------------------------ printing
    def table(self, param: int = 0, steps=None, k: int | None = None, precision: int = 6) -> str:
        """A readable table of parameter `param`: one block per step (all, or the step numbers in
        `steps`), one row per quantity in the docstring's order, the first `k` elements as columns."""
        records = self.steps(param)
        if steps is not None:
            wanted = set(steps)
            records = [r for r in records if r.step in wanted]
        if not records:
            return f"(no steps recorded for parameter {param})"
        symbols = _symbols_of(self.optimizer)
        first = records[0]
        n = len(next(iter(first.quantities.values())))
        if k is not None:
            n = min(n, k)
        width = max(precision + 7, 10)
        lines = [
            f"{first.optimizer} · parameter {param} · shape {first.shape} · "
            f"elements [0:{n}] of {first.size}"
        ]
        header_cells = "".join(f"{f'[{j}]':>{width}}" for j in range(n))
        name_width = max([len(nm) for r in records for nm in r.quantities] + [4])
        symbol_width = max([_width(symbols.get(nm, (nm, ""))[0]) for r in records for nm in r.quantities] + [6])
        for r in records:
            scalars = "  ".join(f"{_pretty_scalar_name(name)} = {_fmt(v, precision)}" for name, v in r.scalars.items())
            lines.append(f"── t = {r.step} ──  {scalars}".rstrip())
            lines.append(f"  {'symbol':<{symbol_width}}  {'name':<{name_width}}{header_cells}   meaning")
            for name in _ordered(r.quantities, symbols):
                symbol, meaning = symbols.get(name, (name, ""))
                cells = "".join(f"{_fmt(x, precision):>{width}}" for x in r.quantities[name][:n])
                lines.append(f"  {_pad(symbol, symbol_width)}  {name:<{name_width}}{cells}   {meaning}".rstrip())
        return "\n".join(lines)

    def print(self, param: int = 0, steps=None, k: int | None = None, precision: int = 6) -> None:
        print(self.table(param=param, steps=steps, k=k, precision=precision))

    def __str__(self) -> str:
        params = sorted({r.param for r in self.records})
        return "\n\n".join(self.table(i) for i in params) if params else "(empty trace)"


# -------------------------------------------------------------------------------- helpers
_SCALAR_NAMES = {
    "lr": "γ", "beta1": "β₁", "beta2": "β₂", "eps": "ε", "weight_decay": "λ", "momentum": "μ",
    "dampening": "τ", "alpha": "α", "lr_decay": "η", "clr": "γ̃ₜ", "bias_correction1": "1−β₁ᵗ",
    "bias_correction2": "1−β₂ᵗ", "rho": "ρ", "rho_t": "ρ_t", "rect": "r_t", "mu_t": "μ_t", "mu_next": "μ_{t+1}",
    "mu_product": "Π_t", "eta": "η", "mu": "μ", "lambd": "λ_d", "lr_adjusted": "γ′", "step_length": "t_k",
    "H_diag": "H_k", "loss": "f",
}


def _pretty_scalar_name(name: str) -> str:
    return _SCALAR_NAMES.get(name, name)


def _symbols_of(optimizer) -> dict:
    """{name: (math symbol, meaning)} from the optimizer class's `trace_symbols` list."""
    return {name: (symbol, meaning) for name, symbol, meaning in getattr(type(optimizer), "trace_symbols", ())}


def _ordered(quantities: dict, symbols: dict) -> list:
    known = [name for name in symbols if name in quantities]
    return known + [name for name in quantities if name not in symbols]


def _width(text: str) -> int:
    """Printed width: combining marks (the hat in m̂) take no column."""
    return sum(0 if unicodedata.combining(c) else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(width - _width(text), 0)


def _fmt(x, precision: int) -> str:
    x = float(x)
    if x == 0.0:
        return "0"
    return f"{x:.{precision}g}"
