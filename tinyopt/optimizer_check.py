"""Check an optimizer someone else wrote against a reference: `tinyopt.verify.check_optimizer`.

    >>> report = tinyopt.verify.check_optimizer(MyAdam, reference=tinyopt.optim.Adam, steps=50, lr=1e-2)
    >>> report.ok, report.step, report.param, report.element, report.abs_error
    >>> print(report)            # one row per problem, then the first formula term that differs

The candidate is any class (or factory) with torch's optimizer interface, `cls(params, lr=...,
**hyperparameters)`, `zero_grad()`, `step(closure=None)`: a tinyopt optimizer, a student's class,
or a `torch.optim` class (its parameters are then torch tensors; see "Gradients" below). The
candidate and the reference run side by side, from the same float64 starting point, on three
problems (`PROBLEMS`):

- ``quadratic``: f(Θ) = ½ vec(Θ)ᵀ A vec(Θ) − bᵀ vec(Θ) for a 2×3 matrix Θ, A symmetric positive
  definite with eigenvalues from 0.1 to 10 (condition number 100);
- ``rosenbrock``: f(x, y) = (1 − x)² + 100 (y − x²)² from (−1.2, 1); its curvature reaches ~10³,
  so plain SGD with lr ≳ 2e-3 diverges there (both runs then stop, and the report says where);
- ``mlp``: a 4 → 8 → 3 tanh network with cross-entropy on 64 fixed synthetic points, in
  mini-batches of 16 that cycle with the step number (the gradients change from step to step, as
  in training, but are the same for both optimizers at equal parameters).

Each step, the training loop that a user writes is run on each optimizer:
``opt.zero_grad(); loss = f(θ); loss.backward(); opt.step(closure)``. The closure repeats the
first three, for optimizers such as LBFGS that re-evaluate; an optimizer that evaluates it once
(as tinyopt's and torch's do) recomputes the same gradient at the same point, and one that
ignores it (or whose `step()` takes no argument: then none is passed) finds `p.grad` already set.
After each step the parameters are compared element by element; an element differs when
``|got − expected| > atol + rtol · |expected|`` (NumPy's `isclose`, default rtol = 1e-9 and
atol = 1e-12: tinyopt's Adam, SGD and RMSprop and torch's, which order their operations
differently, stay within 1e-15 of each other over 200 steps on these problems). The report gives
the first step at which any parameter differs, the parameter (its index and name) and the element
with the largest difference there, the expected and the candidate's value.

**Formula terms.** When both optimizers are `tinyopt.optim.Optimizer` subclasses that call
`self._record(p, group, quantities, scalars)` under the same names (Adam's are g, m, v, m_hat,
v_hat, lr_eff, update, ...: `tinyopt.optim.Adam.trace_symbols`), a `Trace` records every
quantity of every step (all elements), and the report also names the first term, in the
reference's formula order, that differs: "m̂_t differs at step 1: expected bias-corrected
m_t / (1 − β₁ᵗ) = 0.1, got 0.01". Terms are compared up to the first step where the parameters
differ: until then both optimizers saw the same gradients, so the first differing term is where
the candidate's formula leaves the reference's. Recorded scalars (the step counter t, the bias
corrections) are compared too.

**Gradients.** They come from tinyopt's autograd (`loss.backward()`), so a candidate sees `p.grad`
in exactly the form tinyopt gives it (an ndarray today, a Tensor once gradients become Tensors);
the checker itself reads parameters, gradients and recorded quantities through `_to_array`, which
takes ndarrays, tinyopt Tensors and torch tensors alike. For a torch optimizer the same loss is
evaluated by tinyopt at the torch parameters' values and the gradient is handed over as a float64
torch tensor.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

import numpy as np

from tinyopt import optim
from tinyopt.nn import functional as F
from tinyopt.nn.parameter import Parameter
from tinyopt.optim import Optimizer
from tinyopt.tensor import Tensor

DEFAULT_RTOL = 1e-9
DEFAULT_ATOL = 1e-12


# ============================================================================ arrays of any kind
def _to_array(x) -> np.ndarray:
    """An ndarray view of an ndarray, a tinyopt Tensor, a torch tensor or a number."""
    if isinstance(x, Tensor):
        return np.asarray(x.data)
    if type(x).__module__.startswith("torch") and hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


# ============================================================================ the problems
@dataclass
class Problem:
    """A deterministic objective: `loss(params, t)` on tinyopt Tensors, starting from `init`.

    `t` is the step number (1, 2, ...): the MLP's mini-batch depends on it, never on how often
    the loss was evaluated, so a closure that re-evaluates gets the same batch."""

    name: str
    description: str
    param_names: list
    init: list  # float64 ndarrays
    loss: object  # callable(list[Tensor], t) -> Tensor


def _quadratic(rng: np.random.Generator) -> Problem:
    n = 6
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    eigenvalues = np.geomspace(0.1, 10.0, n)
    a = (q * eigenvalues) @ q.T
    a = (a + a.T) / 2
    b = rng.standard_normal((n, 1))
    a_t, b_t = Tensor(a, dtype=np.float64), Tensor(b, dtype=np.float64)

    def loss(params, t):
        v = params[0].reshape(n, 1)
        return 0.5 * (v * (a_t @ v)).sum() - (b_t * v).sum()

    return Problem("quadratic", "½ θᵀAθ − bᵀθ, Θ 2×3, cond(A) = 100", ["Θ"],
                   [rng.standard_normal((2, 3))], loss)


def _rosenbrock(rng: np.random.Generator) -> Problem:
    def loss(params, t):
        x, y = params[0][0], params[0][1]
        return (1 - x) ** 2 + 100 * (y - x * x) ** 2

    return Problem("rosenbrock", "(1 − x)² + 100 (y − x²)² from (−1.2, 1)", ["(x, y)"],
                   [np.array([-1.2, 1.0])], loss)


def _mlp(rng: np.random.Generator) -> Problem:
    n, d, h, k, batch = 64, 4, 8, 3, 16
    x = rng.standard_normal((n, d))
    teacher = rng.standard_normal((d, k))
    y = np.argmax(x @ teacher + 0.5 * rng.standard_normal((n, k)), axis=1)
    bound1, bound2 = 1 / math.sqrt(d), 1 / math.sqrt(h)
    init = [rng.uniform(-bound1, bound1, (h, d)), rng.uniform(-bound1, bound1, h),
            rng.uniform(-bound2, bound2, (k, h)), rng.uniform(-bound2, bound2, k)]

    def loss(params, t):
        w1, b1, w2, b2 = params
        rows = np.arange((t - 1) * batch, t * batch) % n
        xb = Tensor(x[rows], dtype=np.float64)
        hidden = F.linear(xb, w1, b1).tanh()
        return F.cross_entropy(F.linear(hidden, w2, b2), y[rows])

    return Problem("mlp", "4→8→3 tanh MLP, cross-entropy, batches of 16", ["0.weight", "0.bias", "2.weight", "2.bias"],
                   init, loss)


PROBLEMS = {"quadratic": _quadratic, "rosenbrock": _rosenbrock, "mlp": _mlp}


def make_problems(names=None, seed: int = 0) -> list:
    """The named problems (default: all), each built from its own `np.random.default_rng((seed, i))`."""
    names = list(PROBLEMS) if names is None else list(names)
    unknown = [n for n in names if n not in PROBLEMS]
    if unknown or not names:
        raise ValueError(f"unknown problem(s) {unknown}; choose from {list(PROBLEMS)}")
    return [PROBLEMS[name](np.random.default_rng((seed, list(PROBLEMS).index(name)))) for name in names]


# ============================================================================ running one optimizer
def _is_torch_optimizer(factory) -> bool:
    return isinstance(factory, type) and any(c.__module__.startswith("torch.optim") for c in factory.__mro__)


def _accepts_closure(opt) -> bool:
    try:
        params = inspect.signature(opt.step).parameters
    except (TypeError, ValueError):  # a builtin or C-implemented step: assume torch's signature
        return True
    return len(params) > 0


class _Run:
    """One optimizer on one problem: its own copy of the parameters and the user's training loop."""

    def __init__(self, factory, problem: Problem, kwargs: dict, trace: bool):
        self.problem = problem
        self.torch = _is_torch_optimizer(factory)
        if self.torch:
            import torch

            self.params = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in problem.init]
        else:
            self.params = [Parameter(np.array(a, dtype=np.float64), dtype=np.float64) for a in problem.init]
        self.opt = factory(self.params, **kwargs)
        self.trace = None
        if trace and isinstance(self.opt, Optimizer):
            self.trace = self.opt.trace(k=None)
            self._record_arrays()
        self.closure_ok = _accepts_closure(self.opt)
        self.t = 0

    def _record_arrays(self) -> None:
        """Hand the Trace ndarrays whatever the optimizer records (a student may record Tensors)."""
        record = self.opt._record

        def record_arrays(p, group, quantities, scalars=None):
            record(p, group, {k: _to_array(v) for k, v in quantities.items()},
                   {k: (v if isinstance(v, (int, float)) else _to_array(v).item()) for k, v in (scalars or {}).items()})

        self.opt._record = record_arrays

    def values(self) -> list:
        return [np.array(_to_array(p), dtype=np.float64, copy=True) for p in self.params]

    def _loss_and_grad(self):
        self.opt.zero_grad()
        if not self.torch:
            loss = self.problem.loss(self.params, self.t)
            loss.backward()
            return loss
        import torch

        leaves = [Tensor(_to_array(p).copy(), requires_grad=True, dtype=np.float64) for p in self.params]
        loss = self.problem.loss(leaves, self.t)
        loss.backward()
        for p, leaf in zip(self.params, leaves):
            p.grad = torch.tensor(_to_array(leaf.grad), dtype=torch.float64)
        return torch.tensor(float(_to_array(loss)), dtype=torch.float64)

    def step(self) -> None:
        self.t += 1
        self._loss_and_grad()
        if self.closure_ok:
            self.opt.step(self._loss_and_grad)
        else:
            self.opt.step()

    def records(self, param: int) -> list:
        return self.trace.steps(param) if self.trace is not None else []

    def close(self) -> None:
        if self.trace is not None:
            self.trace.detach()


# ============================================================================ the report
@dataclass
class Difference:
    """Where a candidate's parameter (or formula term) first leaves the reference's."""

    problem: str
    step: int
    param: int
    param_name: str
    element: tuple
    expected: float
    got: float

    @property
    def abs_error(self) -> float:
        return abs(self.got - self.expected) if math.isfinite(self.got - self.expected) else math.inf

    @property
    def rel_error(self) -> float:
        if not math.isfinite(self.abs_error):
            return math.inf
        return self.abs_error / abs(self.expected) if self.expected != 0 else math.inf


@dataclass
class TermDifference(Difference):
    """A recorded quantity (or scalar) of the formula that differs, with its docstring symbol."""

    name: str = ""
    symbol: str = ""
    meaning: str = ""

    def sentence(self) -> str:
        where = f"parameter {self.param} ({self.param_name}) element {_fmt_element(self.element)}"
        what = f"{self.meaning} = " if self.meaning else ""
        return (f"{self.symbol} ({self.name}) differs at step {self.step} of {self.problem}, {where}: "
                f"expected {what}{_fmt(self.expected)}, got {_fmt(self.got)}")


@dataclass
class ProblemResult:
    problem: str
    description: str
    steps: int  # steps compared
    difference: Difference | None = None
    term: TermDifference | None = None
    scalar_differences: list = field(default_factory=list)  # TermDifference for scalars (t, bias corrections)
    max_abs_error: float = 0.0
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.difference is None


@dataclass
class OptimizerReport:
    """What `check_optimizer` found. `ok`, and for the earliest difference over all problems:
    `problem`, `step`, `param` (index), `param_name`, `element`, `expected`, `got`, `abs_error`,
    `rel_error`, `term` (a `TermDifference` or None). `results` has one `ProblemResult` per problem."""

    candidate: str
    reference: str
    hyperparameters: dict
    rtol: float
    atol: float
    results: list
    reference_hyperparameters: dict | None = None  # when they differ from the candidate's

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def first(self) -> ProblemResult | None:
        failing = [r for r in self.results if not r.ok]
        return min(failing, key=lambda r: r.difference.step) if failing else None

    def _attr(self, name):
        first = self.first
        return None if first is None else getattr(first.difference, name)

    problem = property(lambda self: self._attr("problem"))
    step = property(lambda self: self._attr("step"))
    param = property(lambda self: self._attr("param"))
    param_name = property(lambda self: self._attr("param_name"))
    element = property(lambda self: self._attr("element"))
    expected = property(lambda self: self._attr("expected"))
    got = property(lambda self: self._attr("got"))
    abs_error = property(lambda self: self._attr("abs_error"))
    rel_error = property(lambda self: self._attr("rel_error"))

    @property
    def term(self) -> TermDifference | None:
        """The first differing formula term of the earliest failing problem (None if not traced)."""
        first = self.first
        return None if first is None else first.term

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        reference = self.reference
        if self.reference_hyperparameters not in (None, self.hyperparameters):
            reference += "(" + ", ".join(f"{k}={v!r}" for k, v in self.reference_hyperparameters.items()) + ")"
        title = f"{self.candidate}({options}) vs {reference} (float64, rtol {self.rtol:g}, atol {self.atol:g})"
        header = ["problem", "steps", "result", "first diff", "parameter", "element", "expected", "got", "|Δ|"]
        rows = []
        for r in self.results:
            d = r.difference
            if d is None:
                rows.append([r.problem, str(r.steps), "PASS", "-", "-", "-", "-", "-", f"max {r.max_abs_error:.1e}"])
            else:
                rows.append([r.problem, str(r.steps), "FAIL", f"step {d.step}", f"{d.param} {d.param_name}",
                             _fmt_element(d.element), _fmt(d.expected), _fmt(d.got), f"{d.abs_error:.2e}"])
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
        lines = [title, "=" * len(title), "  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
        for r in self.results:
            if r.term is not None:
                lines.append("  " + r.term.sentence())
            for s in r.scalar_differences:
                lines.append(f"  scalar {s.symbol} differs at step {s.step} of {s.problem}: "
                             f"expected {_fmt(s.expected)}, got {_fmt(s.got)}")
        notes = [(r.problem, r.note) for r in self.results if r.note]
        if len(notes) > 1 and len({note for _, note in notes}) == 1 and len(notes) == len(self.results):
            lines.append(f"  all problems: {notes[0][1]}")
        else:
            lines += [f"  {problem}: {note}" for problem, note in notes]
        passed = sum(r.ok for r in self.results)
        verdict = "OK" if self.ok else f"DIFFERS (first at step {self.step} of {self.problem})"
        lines.append(f"{passed} of {len(self.results)} problems agree: {verdict}")
        return "\n".join(lines)

    __repr__ = __str__


def _fmt(x) -> str:
    x = float(x)
    return "0" if x == 0 else f"{x:.10g}"


def _fmt_element(element) -> str:
    return "[" + ", ".join(str(i) for i in element) + "]"


def _name_of(factory) -> str:
    func = getattr(factory, "func", None)  # functools.partial: name its fixed options too
    if func is not None:
        fixed = ", ".join(f"{k}={v!r}" for k, v in getattr(factory, "keywords", {}).items())
        return f"{_name_of(func)}[{fixed}]" if fixed else _name_of(func)
    return getattr(factory, "__qualname__", None) or getattr(factory, "__name__", None) or type(factory).__name__


# ============================================================================ comparing
def _first_difference(problem, step, got_values, expected_values, rtol, atol) -> Difference | None:
    for i, (got, expected) in enumerate(zip(got_values, expected_values)):
        bad = ~np.isclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)
        if bad.any():
            error = np.where(bad, np.abs(got - expected), -1.0)
            error = np.where(np.isnan(error), np.inf, error)
            flat = int(np.argmax(error))
            element = tuple(int(j) for j in np.unravel_index(flat, got.shape))
            return Difference(problem.name, step, i, problem.param_names[i], element,
                              float(expected.ravel()[flat]), float(got.ravel()[flat]))
    return None


def _term_differences(problem, candidate: _Run, reference: _Run, last_step: int, rtol, atol):
    """The first differing quantity (reference's formula order) and the differing scalars, over
    the steps 1..last_step, comparing the i-th record of each parameter (records are aligned by
    call order, not by the step number each side reports: a candidate whose t starts at 0 still
    lines up)."""
    symbols = {name: (symbol, meaning) for name, symbol, meaning in getattr(type(reference.opt), "trace_symbols", ())}
    n_params = len(problem.init)
    scalars_seen = {}
    for s in range(last_step):
        pairs = []
        for i in range(n_params):
            ours, theirs = candidate.records(i), reference.records(i)
            if s < len(ours) and s < len(theirs):
                pairs.append((i, ours[s], theirs[s]))
        if not pairs:
            continue
        i, got, expected = pairs[0]  # the step's scalars, compared once per step
        scalar_items = [("t", float(got.step), float(expected.step))]
        scalar_items += [(k, float(got.scalars[k]), float(v)) for k, v in expected.scalars.items() if k in got.scalars]
        for name, g, e in scalar_items:
            if name not in scalars_seen and not np.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True):
                scalars_seen[name] = TermDifference(problem.name, s + 1, i, problem.param_names[i], (), e, g,
                                                    name=name, symbol=_scalar_symbol(name), meaning="")
        order = [n for n in symbols] + [n for n in pairs[0][2].quantities if n not in symbols]
        for name in order:
            for i, got, expected in pairs:
                if name not in got.quantities or name not in expected.quantities:
                    continue
                g = np.asarray(got.quantities[name], dtype=np.float64).ravel()
                e = np.asarray(expected.quantities[name], dtype=np.float64).ravel()
                if g.shape != e.shape:
                    symbol, meaning = symbols.get(name, (name, ""))
                    return (TermDifference(problem.name, s + 1, i, problem.param_names[i], (), math.nan, math.nan,
                                           name=name, symbol=symbol, meaning=f"{meaning} [recorded {g.size} elements, "
                                                                              f"expected {e.size}]"),
                            list(scalars_seen.values()))
                bad = ~np.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
                if bad.any():
                    error = np.where(bad, np.abs(g - e), -1.0)
                    flat = int(np.argmax(np.where(np.isnan(error), np.inf, error)))
                    shape = problem.init[i].shape if e.size == problem.init[i].size else e.shape
                    element = tuple(int(j) for j in np.unravel_index(flat, shape))
                    symbol, meaning = symbols.get(name, (name, ""))
                    return (TermDifference(problem.name, s + 1, i, problem.param_names[i], element, float(e[flat]),
                                           float(g[flat]), name=name, symbol=symbol, meaning=meaning),
                            list(scalars_seen.values()))
    return None, list(scalars_seen.values())


_SCALAR_SYMBOLS = {"t": "t", "lr": "γ", "beta1": "β₁", "beta2": "β₂", "eps": "ε", "weight_decay": "λ",
                   "bias_correction1": "1−β₁ᵗ", "bias_correction2": "1−β₂ᵗ", "momentum": "μ", "dampening": "τ",
                   "alpha": "α"}


def _scalar_symbol(name: str) -> str:
    return _SCALAR_SYMBOLS.get(name, name)


def _check_problem(candidate_factory, reference_factory, problem, steps, kwargs, reference_kwargs, rtol, atol):
    candidate = _Run(candidate_factory, problem, kwargs, trace=True)
    reference = _Run(reference_factory, problem, reference_kwargs, trace=True)
    traced = candidate.trace is not None and reference.trace is not None
    result = ProblemResult(problem.name, problem.description, steps=0)
    try:
        for t in range(1, steps + 1):
            with np.errstate(all="ignore"):  # a wrong candidate may divide by zero, a run diverge: the report says so
                candidate.step()
                reference.step()
            got, expected = candidate.values(), reference.values()
            result.steps = t
            difference = _first_difference(problem, t, got, expected, rtol, atol)
            if difference is not None:
                result.difference = difference
                break
            with np.errstate(invalid="ignore"):
                result.max_abs_error = max([result.max_abs_error] + [
                    float(np.max(np.abs(g - e), initial=0.0, where=np.isfinite(e))) for g, e in zip(got, expected)])
            if not all(np.isfinite(e).all() for e in expected):
                result.note = f"the reference diverged (inf/nan) at step {t}; compared steps 1–{t}"
                break
        if traced:
            last = result.difference.step if result.difference is not None else result.steps
            result.term, result.scalar_differences = _term_differences(problem, candidate, reference, last, rtol, atol)
            if result.term is not None and result.ok:
                result.note = (f"parameters agree, but the recorded term {result.term.name!r} does not "
                               f"(recorded under another meaning?)")
        elif result.difference is not None:
            side = "candidate" if candidate.trace is None else "reference"
            result.note = (f"no formula terms compared: the {side} is not a tinyopt.optim.Optimizer "
                           "(subclass it and call self._record(...) to get them)")
    finally:
        candidate.close()
        reference.close()
    if traced and result.difference is not None and not candidate.records(0):
        result.note = ("no formula terms compared: the candidate records nothing (call self._record(p, group, "
                       f"quantities, scalars) with the names of {_name_of(reference_factory)}.trace_symbols)")
    return result


def check_optimizer(candidate_cls, reference=optim.Adam, steps: int = 50, lr: float = 1e-2, *,
                    problems=None, rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL, seed: int = 0,
                    reference_kwargs: dict | None = None, **hyperparameters) -> OptimizerReport:
    """Run `candidate_cls` and `reference` side by side on `problems` (default: quadratic,
    Rosenbrock, a small MLP) in float64 for `steps` steps, and report where they first differ.

    Both are built as ``cls(params, lr=lr, **hyperparameters)``; `reference_kwargs`, when given,
    replaces the hyperparameters for the reference (for an option the two spell differently). See
    the module docstring for the comparison rule and for how formula terms are found. Returns an
    `OptimizerReport` (`report.ok`, `report.step`, `report.term`, `print(report)`).
    """
    if not callable(candidate_cls):
        raise TypeError(f"candidate_cls must be an optimizer class (or factory), got {type(candidate_cls).__name__}")
    if not callable(reference):
        raise TypeError(f"reference must be an optimizer class (or factory), got {type(reference).__name__}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a whole number >= 1, got {steps!r}")
    if not lr >= 0:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not (rtol >= 0 and atol >= 0):
        raise ValueError(f"rtol and atol must be >= 0, got rtol={rtol}, atol={atol}")
    problem_list = make_problems(problems, seed=seed)
    kwargs = dict(lr=lr, **hyperparameters)
    ref_kwargs = dict(lr=lr, **(hyperparameters if reference_kwargs is None else reference_kwargs))
    results = [_check_problem(candidate_cls, reference, p, int(steps), kwargs, ref_kwargs, rtol, atol)
               for p in problem_list]
    return OptimizerReport(_name_of(candidate_cls), _name_of(reference), kwargs, rtol, atol, results,
                           reference_hyperparameters=ref_kwargs)


__all__ = ["Difference", "OptimizerReport", "PROBLEMS", "Problem", "ProblemResult", "TermDifference",
           "check_optimizer", "make_problems"]
