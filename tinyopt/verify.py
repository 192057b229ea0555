"""Verify the optimizer math yourself: `tinyopt.verify.optimizers()` or `tinyopt verify`.

For every optimizer and a set of its options, two independent checks, printed as a pass/fail
table:

1. **by hand**: the first steps, recomputed here one number at a time in plain Python floats
   (`math.sqrt`, no NumPy, no tinyopt) straight from the formula in the optimizer's docstring;
2. **torch**: a few hundred steps next to `torch.optim` with the same arguments on the same
   gradients, in float64 (skipped, not failed, when torch is not installed).

The test problem is a separable quadratic with a fixed, deterministic disturbance,
g_t(θ) = h ⊙ θ + c_t, on a small vector θ: every element follows its own scalar recursion, so the
by-hand version is a loop over floats, and the trajectory does not amplify rounding (a mismatch
beyond the tolerance is a formula difference). Both the NumPy formula path and, where one exists,
the fused Numba kernel are checked.

`schedulers()` does the same for `tinyopt.optim.lr_scheduler` when it is present: closed forms by
hand for the schedules that have one, torch's learning-rate sequence for all of them.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass

import numpy as np

from tinyopt.optimizer_check import check_optimizer  # noqa: F401  (checks a class someone else wrote)

HAND_STEPS = 5
TORCH_STEPS = 200
HAND_RTOL = 1e-12
TORCH_RTOL = 1e-9

# the test problem: g_t(θ)_i = h_i θ_i + c_{t,i}
_THETA0 = [1.0, -0.5, 2.0, 0.25, -1.5]
_H = [2.0, 0.5, 1.0, 4.0, 0.1]


def _c(t: int, i: int) -> float:
    return 0.1 * math.sin(1.7 * t + i)


def _gradient(theta, t):
    return [_H[i] * theta[i] + _c(t, i) for i in range(len(theta))]


# ============================================================================ by hand
# Each function runs the docstring's algorithm on plain floats and returns [θ_1, ..., θ_T] (lists).

def _hand_gd(steps, lr, maximize=False):
    theta, path = list(_THETA0), []
    for t in range(1, steps + 1):
        g = _gradient(theta, t)
        for i in range(len(theta)):
            gi = -g[i] if maximize else g[i]
            theta[i] = theta[i] - lr * gi
        path.append(list(theta))
    return path


def _hand_sgd(steps, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False,
              momentum_style="pytorch"):
    theta, buf, path = list(_THETA0), [0.0] * len(_THETA0), []
    for t in range(1, steps + 1):
        g = _gradient(theta, t)
        for i in range(len(theta)):
            gi = -g[i] if maximize else g[i]
            gi = gi + weight_decay * theta[i]
            if momentum == 0:
                theta[i] = theta[i] - lr * gi
            elif momentum_style == "pytorch":
                buf[i] = gi if t == 1 else momentum * buf[i] + (1 - dampening) * gi
                d = gi + momentum * buf[i] if nesterov else buf[i]
                theta[i] = theta[i] - lr * d
            else:  # sutskever: v ← μ v + (1 − τ) γ g
                buf[i] = lr * gi if t == 1 else momentum * buf[i] + (1 - dampening) * lr * gi
                theta[i] = theta[i] - (momentum * buf[i] + lr * gi if nesterov else buf[i])
        path.append(list(theta))
    return path


def _hand_adagrad(steps, lr=0.01, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                  maximize=False):
    theta, total, path = list(_THETA0), [initial_accumulator_value] * len(_THETA0), []
    for t in range(1, steps + 1):
        g = _gradient(theta, t)
        clr = lr / (1 + (t - 1) * lr_decay)
        for i in range(len(theta)):
            gi = (-g[i] if maximize else g[i]) + weight_decay * theta[i]
            total[i] = total[i] + gi * gi
            theta[i] = theta[i] - clr * gi / (math.sqrt(total[i]) + eps)
        path.append(list(theta))
    return path


def _hand_rmsprop(steps, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                  maximize=False):
    n = len(_THETA0)
    theta, v, gbar, buf, path = list(_THETA0), [0.0] * n, [0.0] * n, [0.0] * n, []
    for t in range(1, steps + 1):
        g = _gradient(theta, t)
        for i in range(n):
            gi = (-g[i] if maximize else g[i]) + weight_decay * theta[i]
            v[i] = alpha * v[i] + (1 - alpha) * gi * gi
            if centered:
                gbar[i] = alpha * gbar[i] + (1 - alpha) * gi
                v_tilde = v[i] - gbar[i] * gbar[i]
            else:
                v_tilde = v[i]
            if momentum > 0:
                buf[i] = momentum * buf[i] + gi / (math.sqrt(v_tilde) + eps)
                theta[i] = theta[i] - lr * buf[i]
            else:
                theta[i] = theta[i] - lr * gi / (math.sqrt(v_tilde) + eps)
        path.append(list(theta))
    return path


def _hand_adam(steps, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
               decoupled_weight_decay=False, bias_correction=True, eps_placement="pytorch"):
    n = len(_THETA0)
    b1, b2 = betas
    theta, m, v, vmax, path = list(_THETA0), [0.0] * n, [0.0] * n, [0.0] * n, []
    for t in range(1, steps + 1):
        g = _gradient(theta, t)
        c1, c2 = (1 - b1**t, 1 - b2**t) if bias_correction else (1.0, 1.0)
        for i in range(n):
            gi = -g[i] if maximize else g[i]
            if decoupled_weight_decay:
                theta[i] = theta[i] * (1 - lr * weight_decay)
            else:
                gi = gi + weight_decay * theta[i]
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi * gi
            vmax[i] = max(vmax[i], v[i])
            vv = vmax[i] if amsgrad else v[i]
            m_hat, v_hat = m[i] / c1, vv / c2
            e = eps if eps_placement == "pytorch" else eps / math.sqrt(c2)
            theta[i] = theta[i] - lr * m_hat / (math.sqrt(v_hat) + e)
        path.append(list(theta))
    return path


def _hand_adamw(steps, weight_decay=1e-2, **kwargs):
    return _hand_adam(steps, weight_decay=weight_decay, decoupled_weight_decay=True, **kwargs)


_BY_HAND = {"GD": _hand_gd, "SGD": _hand_sgd, "Adagrad": _hand_adagrad, "RMSprop": _hand_rmsprop,
            "Adam": _hand_adam, "AdamW": _hand_adamw}

# (optimizer, options); options that torch does not have are skipped in the torch column.
CASES = [
    ("GD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, momentum=0.9, momentum_style="sutskever")),
    ("SGD", dict(lr=0.1, momentum=0.9, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.01, initial_accumulator_value=0.1)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True, weight_decay=0.01)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, bias_correction=False)),
    ("Adam", dict(lr=0.01, eps_placement="keras", eps=1e-3)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
]
_TINYOPT_ONLY = {"momentum_style", "bias_correction", "eps_placement"}
_FUSED = {"SGD", "Adam", "AdamW"}


# ============================================================================ running
def _run_tinyopt(name, kwargs, steps, fused=None):
    import tinyopt as to
    from tinyopt import optim

    p = to.Tensor(np.array(_THETA0), requires_grad=True, dtype=np.float64)
    extra = {"fused": fused} if name in _FUSED else {}
    opt = getattr(optim, name)([p], **kwargs, **extra)
    path = []
    for t in range(1, steps + 1):
        p.grad = np.array(_gradient(list(p.data), t))
        opt.step()
        path.append(p.data.copy())
    return np.array(path)


def _run_torch(torch, name, kwargs, steps):
    p = torch.tensor(_THETA0, dtype=torch.float64, requires_grad=True)
    cls = torch.optim.SGD if name == "GD" else getattr(torch.optim, name)
    opt = cls([p], **kwargs)
    path = []
    for t in range(1, steps + 1):
        p.grad = torch.tensor(_gradient(p.detach().tolist(), t), dtype=torch.float64)
        opt.step()
        path.append(p.detach().numpy().copy())
    return np.array(path)


def _rel_err(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


@dataclass
class Check:
    subject: str  # "Adam(lr=0.01, amsgrad=True)"
    check: str  # "by hand, 5 steps" / "torch, 200 steps" / ...
    error: float | None  # max relative error; None when skipped
    tolerance: float
    note: str = ""

    @property
    def status(self) -> str:
        if self.error is None:
            return "skip"
        return "PASS" if self.error <= self.tolerance else "FAIL"


def _describe(name, kwargs) -> str:
    return f"{name}(" + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")"


def _no_torch_note(use_torch) -> str:
    return "torch comparison turned off" if use_torch is False else "torch not installed"


def _import_torch(use_torch):
    if use_torch is False:
        return None
    try:
        import torch
    except ImportError:
        if use_torch:
            raise
        return None
    return torch


def optimizers(use_torch: bool | None = None, hand_steps: int = HAND_STEPS, torch_steps: int = TORCH_STEPS,
               file=None, verbose: bool = True) -> list:
    """Check every optimizer against its formula by hand and against torch.optim; print a table.

    use_torch: None (default) compares with torch when it is importable; False never; True
    requires it. Returns the list of `Check`s (see `all(c.status != "FAIL" for c in checks)`).
    """
    torch = _import_torch(use_torch)
    checks = []
    for name, kwargs in CASES:
        subject = _describe(name, kwargs)
        expected = np.array(_BY_HAND[name](hand_steps, **kwargs))
        has_kernel = name in _FUSED and kwargs.get("momentum_style", "pytorch") == "pytorch"
        paths = [("formula", False)] + ([("fused kernel", True)] if has_kernel else [])
        for label, fused in paths:
            ours = _run_tinyopt(name, kwargs, hand_steps, fused=fused)
            checks.append(Check(subject, f"by hand, {hand_steps} steps, {label}", _rel_err(ours, expected), HAND_RTOL))
        if torch is None:
            checks.append(Check(subject, f"torch, {torch_steps} steps", None, TORCH_RTOL, _no_torch_note(use_torch)))
        elif _TINYOPT_ONLY & set(kwargs):
            checks.append(Check(subject, f"torch, {torch_steps} steps", None, TORCH_RTOL, "a tinyopt-only variant"))
        else:
            theirs = _run_torch(torch, name, kwargs, torch_steps)
            for label, fused in paths:
                ours = _run_tinyopt(name, kwargs, torch_steps, fused=fused)
                error = _rel_err(ours, theirs)
                checks.append(Check(subject, f"torch, {torch_steps} steps, {label}", error, TORCH_RTOL))
    if verbose:
        print(format_table(checks, "Optimizers: formula by hand and torch.optim"), file=file or sys.stdout)
    return checks


# ============================================================================ schedulers
# (name, kwargs, closed form lr(epoch) or None); checked when tinyopt.optim.lr_scheduler has the class.
_BASE_LR = 0.1


def _plateau_metric(epoch: int) -> float:
    """Improves for 10 epochs, then stalls: ReduceLROnPlateau must cut the lr after `patience`."""
    return 1.0 / (1 + min(epoch, 10))


def _scheduler_cases():
    """(name, make(lib, optimizer) -> scheduler, closed form lr(epoch) or None, needs a metric)."""
    def simple(name, **kwargs):
        return lambda lib, opt: getattr(lib, name)(opt, **kwargs)

    def sequential(lib, opt):
        warmup = lib.LinearLR(opt, start_factor=0.1, total_iters=5)
        decay = lib.ExponentialLR(opt, gamma=0.9)
        return lib.SequentialLR(opt, schedulers=[warmup, decay], milestones=[5])

    return [
        ("StepLR(step_size=7, gamma=0.5)", simple("StepLR", step_size=7, gamma=0.5),
         lambda e: _BASE_LR * 0.5 ** (e // 7), False),
        ("MultiStepLR(milestones=[5, 12, 30], gamma=0.3)", simple("MultiStepLR", milestones=[5, 12, 30], gamma=0.3),
         lambda e: _BASE_LR * 0.3 ** sum(e >= m for m in (5, 12, 30)), False),
        ("ExponentialLR(gamma=0.9)", simple("ExponentialLR", gamma=0.9), lambda e: _BASE_LR * 0.9**e, False),
        ("CosineAnnealingLR(T_max=10, eta_min=0.001)", simple("CosineAnnealingLR", T_max=10, eta_min=0.001),
         lambda e: 0.001 + (_BASE_LR - 0.001) * (1 + math.cos(math.pi * e / 10)) / 2, False),
        ("CosineAnnealingWarmRestarts(T_0=5, T_mult=2)", simple("CosineAnnealingWarmRestarts", T_0=5, T_mult=2),
         None, False),
        ("LinearLR(start_factor=0.25, total_iters=8)", simple("LinearLR", start_factor=0.25, total_iters=8),
         lambda e: _BASE_LR * (0.25 + 0.75 * min(e, 8) / 8), False),
        ("ConstantLR(factor=0.5, total_iters=4)", simple("ConstantLR", factor=0.5, total_iters=4),
         lambda e: _BASE_LR * (0.5 if e < 4 else 1.0), False),
        ("PolynomialLR(total_iters=20, power=2.0)", simple("PolynomialLR", total_iters=20, power=2.0),
         lambda e: _BASE_LR * (1 - min(e, 20) / 20) ** 2, False),
        ("LambdaLR(lr_lambda=1/(1+e))", simple("LambdaLR", lr_lambda=lambda e: 1 / (1 + e)),
         lambda e: _BASE_LR / (1 + e), False),
        ("OneCycleLR(max_lr=1.0, total_steps=61)", simple("OneCycleLR", max_lr=1.0, total_steps=61), None, False),
        ("SequentialLR(LinearLR warmup 5, ExponentialLR 0.9)", sequential,
         lambda e: _BASE_LR * (0.1 + 0.9 * e / 5 if e < 5 else 0.9 ** (e - 5)), False),
        ("ReduceLROnPlateau(factor=0.5, patience=3)", simple("ReduceLROnPlateau", factor=0.5, patience=3), None, True),
    ]


def _lr_sequence(lib, opt_cls, make_param, make_grad, make, epochs, with_metric):
    p = make_param()
    opt = opt_cls([p], lr=_BASE_LR)
    sched = make(lib, opt)
    lrs = []
    for e in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        p.grad = make_grad()
        opt.step()
        if with_metric:
            sched.step(_plateau_metric(e))
        else:
            sched.step()
    return lrs


def schedulers(use_torch: bool | None = None, epochs: int = 60, file=None, verbose: bool = True) -> list:
    """Learning-rate sequences of `tinyopt.optim.lr_scheduler` vs their closed forms and vs torch."""
    import tinyopt as to
    from tinyopt import optim

    try:
        from tinyopt.optim import lr_scheduler
    except ImportError:
        lr_scheduler = None
    torch = _import_torch(use_torch)
    checks = []
    for subject, make, closed, with_metric in _scheduler_cases():
        class_name = subject.split("(")[0]
        if lr_scheduler is None or not hasattr(lr_scheduler, class_name):
            checks.append(Check(subject, "closed form / torch", None, TORCH_RTOL, "not in tinyopt.optim.lr_scheduler"))
            continue
        ours = _lr_sequence(lr_scheduler, optim.SGD,
                            lambda: to.Tensor(np.zeros(1), requires_grad=True, dtype=np.float64),
                            lambda: np.zeros(1), make, epochs, with_metric)
        if closed is not None:
            expected = [closed(e) for e in range(epochs)]
            checks.append(Check(subject, f"closed form, {epochs} epochs", _rel_err(ours, expected), TORCH_RTOL))
        if torch is None:
            checks.append(Check(subject, f"torch, {epochs} epochs", None, TORCH_RTOL, _no_torch_note(use_torch)))
            continue
        theirs = _lr_sequence(torch.optim.lr_scheduler, torch.optim.SGD,
                              lambda: torch.zeros(1, dtype=torch.float64, requires_grad=True),
                              lambda: torch.zeros(1, dtype=torch.float64), make, epochs, with_metric)
        checks.append(Check(subject, f"torch, {epochs} epochs", _rel_err(ours, theirs), TORCH_RTOL))
    if verbose:
        print(format_table(checks, "Schedulers: closed form and torch.optim.lr_scheduler"), file=file or sys.stdout)
    return checks


# ============================================================================ output / CLI
def format_table(checks, title: str) -> str:
    subject_w = max([len(c.subject) for c in checks] + [len("what")])
    check_w = max([len(c.check) for c in checks] + [len("check")])
    lines = [title, "=" * len(title),
             f"{'what':<{subject_w}}  {'check':<{check_w}}  {'max rel err':>11}  {'tol':>7}  result"]
    for c in checks:
        err = "-" if c.error is None else f"{c.error:.1e}"
        note = f"  ({c.note})" if c.note else ""
        lines.append(f"{c.subject:<{subject_w}}  {c.check:<{check_w}}  {err:>11}  {c.tolerance:>7.0e}  "
                     f"{c.status}{note}")
    counts = {s: sum(c.status == s for c in checks) for s in ("PASS", "FAIL", "skip")}
    lines.append(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['skip']} skipped")
    return "\n".join(lines)


def main(argv=None) -> int:
    """`tinyopt verify [--no-torch] [--only optimizers|schedulers]`; exit status 1 if a check fails."""
    parser = argparse.ArgumentParser(prog="tinyopt verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-torch", action="store_true", help="skip the comparison with torch")
    parser.add_argument("--only", choices=("optimizers", "schedulers"), help="run one of the two tables")
    parser.add_argument("--steps", type=int, default=TORCH_STEPS, help="steps for the torch comparison")
    args = parser.parse_args(argv)
    use_torch = False if args.no_torch else None
    checks = []
    if args.only in (None, "optimizers"):
        checks += optimizers(use_torch=use_torch, torch_steps=args.steps)
    if args.only in (None, "schedulers"):
        if args.only is None:
            print()
        checks += schedulers(use_torch=use_torch)
    return 1 if any(c.status == "FAIL" for c in checks) else 0


if __name__ == "__main__":
    raise SystemExit(main())
