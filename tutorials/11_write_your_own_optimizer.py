# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 11: write your own optimizer, and let the checker find your mistakes
#
# An optimizer is a few lines of math, and it is easy to get one of them wrong in a way that still
# trains: the loss goes down, nothing crashes, and the numbers are not Adam's. This lesson is an
# exercise:
#
# 1. implement **Adam** yourself (the code between `# BEGIN SOLUTION` and `# END SOLUTION`);
# 2. check it with `tinyopt.verify.check_optimizer`, which runs your class and tinyopt's side by
#    side in float64 on a quadratic, Rosenbrock's function and a small MLP, and reports the first
#    step, parameter and element where they differ, and, when your class records its
#    intermediate quantities, the first *formula term* that differs;
# 3. see what the checker says about the classic mistakes: no bias correction (the seed
#    articles' formula), ε inside the square root, L2 instead of decoupled weight decay, a step
#    counter starting at 0, a moment buffer started from the first gradient;
# 4. implement **SGD with momentum** and see when starting the buffer from zero matters;
# 5. run the same check from the command line: `tinyopt verify --candidate module:Class`.
#
# Set `TINYOPT_FAST=1` (the test suite does) for fewer steps.

# %%
import os
import textwrap
from pathlib import Path

import numpy as np

from tinyopt import cli, optim
from tinyopt.optim import Optimizer
from tinyopt.verify import check_optimizer

FAST = bool(os.environ.get("CI") or os.environ.get("TINYOPT_FAST"))
OUT = Path(os.environ.get("TINYOPT_OUTPUT_DIR", "runs/tutorials")) / "11_write_your_own_optimizer"
OUT.mkdir(parents=True, exist_ok=True)
STEPS = 30 if FAST else 100

# %% [markdown]
# ## 0. What an optimizer class is
#
# torch's interface, which tinyopt's optimizers have and yours will have too:
#
# - `__init__(params, lr=..., **hyperparameters)`: keep the parameters (Tensors) and settings;
# - `zero_grad()`: forget the last gradients;
# - `step(closure=None)`: read each parameter's gradient `p.grad` and change `p.data` in place.
#   (A closure re-computes the loss; optimizers such as LBFGS need it, most ignore it.)
#
# Subclassing `tinyopt.optim.Optimizer` gives you `param_groups` (each a dict with `"params"` and
# the hyperparameters), `state` (a dict per parameter for your buffers), `zero_grad`,
# `state_dict`, and `self._record(p, group, quantities, scalars)`: hand it your intermediate
# quantities **under the names tinyopt's Adam uses**, and the checker can compare them term by
# term. Those names, with the symbols of Adam's docstring (`help(optim.Adam)`):

# %%
for name, symbol, meaning in optim.Adam.trace_symbols:
    print(f"{name:14s} {symbol:10s} {meaning}")

# %% [markdown]
# Adam (Kingma & Ba 2015), as torch and tinyopt define it. For t = 1, 2, …:
#
#     g_t ← ∇f(θ_{t−1})            (+ λ θ_{t−1} with coupled L2 weight decay)
#     m_t ← β₁ m_{t−1} + (1 − β₁) g_t,        m₀ = 0
#     v_t ← β₂ v_{t−1} + (1 − β₂) g_t²,       v₀ = 0
#     m̂_t ← m_t / (1 − β₁ᵗ),   v̂_t ← v_t / (1 − β₂ᵗ)
#     θ_t ← θ_{t−1} − γ m̂_t / (√v̂_t + ε)     (decoupled decay, AdamW: θ_{t−1} ← θ_{t−1}(1 − γλ) first)
#
# Read the gradient as `np.asarray(p.grad)`: that works whether tinyopt hands you an ndarray or
# (as it soon will) a Tensor.

# %% [markdown]
# ## 1. Exercise: Adam

# %%
class MyAdam(Optimizer):
    """Adam with torch's arguments; records g, m, v, m_hat, v_hat, lr_eff, update, theta."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 decoupled_weight_decay=False):
        if lr < 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def step(self, closure=None):
        # BEGIN SOLUTION my_adam
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = np.asarray(p.grad)
                state = self.state.setdefault(p, {})
                if not state:
                    state["step"] = 0
                    state["m"] = np.zeros_like(p.data)
                    state["v"] = np.zeros_like(p.data)
                state["step"] += 1
                t = state["step"]
                if wd != 0:
                    if group["decoupled_weight_decay"]:
                        p.data *= 1 - lr * wd
                    else:
                        g = g + wd * p.data
                m = state["m"] = beta1 * state["m"] + (1 - beta1) * g
                v = state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
                m_hat = m / (1 - beta1**t)
                v_hat = v / (1 - beta2**t)
                lr_eff = lr / (np.sqrt(v_hat) + eps)
                update = -lr_eff * m_hat
                p.data += update
                self._record(p, group, dict(g=g, m=m, v=v, m_hat=m_hat, v_hat=v_hat, lr_eff=lr_eff,
                                            update=update, theta=p.data), dict(t=t))
        return loss
        # END SOLUTION


# %% [markdown]
# ## 2. Check it
#
# `check_optimizer(candidate, reference, steps, lr, **hyperparameters)` builds both with the same
# arguments and the same float64 starting point, runs the loop you would write
# (`zero_grad(); loss.backward(); step()`) on three problems, and compares every parameter after
# every step (relative tolerance 1e-9). Your Adam should pass with and without weight decay.

# %%
report = check_optimizer(MyAdam, reference=optim.Adam, steps=STEPS, lr=1e-2)
print(report)
report_l2 = check_optimizer(MyAdam, reference=optim.Adam, steps=STEPS, lr=1e-2, weight_decay=0.1)
report_adamw = check_optimizer(MyAdam, reference=optim.Adam, steps=STEPS, lr=1e-2, weight_decay=0.1,
                               decoupled_weight_decay=True)
print(report_adamw)
assert report.ok and report_l2.ok and report_adamw.ok, "your Adam differs from tinyopt's: read the report above"

# %% [markdown]
# ## 3. The classic mistakes, and what the checker says
#
# Below is the same Adam again, with each classic mistake behind a switch, so that every wrong
# line stands next to the right one. Each subclass turns on one mistake.

# %%
class AdamWithMistake(Optimizer):
    """Adam, with the mistake named by the class attribute `mistake` (None: no mistake)."""

    mistake = None

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 decoupled_weight_decay=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = np.asarray(p.grad)
                state = self.state.setdefault(p, {})
                if not state:
                    state["step"] = 0
                    if self.mistake == "m₀ = g₁":
                        state["m"] = g.copy()  # wrong: m₀ = 0; starting from g₁ makes m̂₁ = 10 g₁
                    else:
                        state["m"] = np.zeros_like(p.data)
                    state["v"] = np.zeros_like(p.data)
                if self.mistake == "t starts at 0":
                    t = state["step"]  # wrong: read before the increment, so t = 0 on the first step
                    state["step"] += 1
                else:
                    state["step"] += 1
                    t = state["step"]
                if wd != 0:
                    if group["decoupled_weight_decay"] and self.mistake != "L2 instead of decoupled":
                        p.data *= 1 - lr * wd
                    else:  # right for Adam; wrong for AdamW, whose decay must bypass m and v
                        g = g + wd * p.data
                m = state["m"] = beta1 * state["m"] + (1 - beta1) * g
                v = state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
                if self.mistake == "no bias correction":
                    m_hat, v_hat = m, v  # wrong: the seed articles' θ ← θ − α m_t / (√v_t + ε)
                else:
                    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
                if self.mistake == "ε inside the square root":
                    lr_eff = lr / np.sqrt(v_hat + eps)  # wrong: torch adds ε after the root
                else:
                    lr_eff = lr / (np.sqrt(v_hat) + eps)
                update = -lr_eff * m_hat
                p.data += update
                self._record(p, group, dict(g=g, m=m, v=v, m_hat=m_hat, v_hat=v_hat, lr_eff=lr_eff,
                                            update=update, theta=p.data), dict(t=t))
        return loss


class NoBiasCorrection(AdamWithMistake):
    mistake = "no bias correction"


class EpsInsideSqrt(AdamWithMistake):
    mistake = "ε inside the square root"


class L2InsteadOfDecoupled(AdamWithMistake):
    mistake = "L2 instead of decoupled"


class StepFromZero(AdamWithMistake):
    mistake = "t starts at 0"


class MomentFromFirstGradient(AdamWithMistake):
    mistake = "m₀ = g₁"


# the switchboard with every switch off is Adam: the checker agrees
assert check_optimizer(AdamWithMistake, steps=STEPS, weight_decay=0.1, decoupled_weight_decay=True).ok

# %% [markdown]
# ### No bias correction (the seed articles' Adam)
#
# Two of the seed articles write Adam as θ ← θ − α m_t / (√v_t + ε). Because m₀ = v₀ = 0, m_t
# and v_t start out too small by the factors (1 − β₁ᵗ) and (1 − β₂ᵗ); the first step is then
# (1 − β₁)/√(1 − β₂) ≈ 3.16 times larger than Adam's. The checker finds the difference at step 1
# and names the first term that left the formula: m̂.

# %%
mistakes = {}
report = check_optimizer(NoBiasCorrection, steps=STEPS)
print(report)
mistakes["no bias correction"] = report
assert report.step == 1 and report.term.name == "m_hat"
assert abs(report.term.expected / report.term.got - 10.0) < 1e-9  # m̂₁ = m₁ / (1 − β₁) = 10 m₁

# %% [markdown]
# ### ε inside the square root
#
# √(v̂ + ε) instead of √v̂ + ε. With ε = 1e-8 the two agree where gradients are large (√(g² + ε)
# ≈ |g| + ε/(2|g|)) and part where |g| is near √ε = 1e-4: in the MLP's weights. The checker
# names the effective learning rate γ_eff = γ / (√v̂_t + ε).

# %%
report = check_optimizer(EpsInsideSqrt, steps=STEPS)
mistakes["ε inside the square root"] = report
print(report.term.sentence())
assert report.step == 1 and report.term.name == "lr_eff"

# %% [markdown]
# ### L2 instead of decoupled weight decay (AdamW)
#
# AdamW (Loshchilov & Hutter 2019) shrinks θ by (1 − γλ) *outside* the adaptive step. Adding
# λθ to the gradient instead (L2, right for Adam, wrong for AdamW) sends the decay through m and
# v, where the division by √v̂ rescales it per element. The checker: g differs at step 1. (The
# reference here is `Adam(decoupled_weight_decay=True)`, which is AdamW.)

# %%
report = check_optimizer(L2InsteadOfDecoupled, steps=STEPS, weight_decay=0.1, decoupled_weight_decay=True)
mistakes["L2 instead of decoupled"] = report
print(report.term.sentence())
assert report.step == 1 and report.term.name == "g"

# %% [markdown]
# ### A step counter that starts at 0
#
# Reading t before incrementing it makes the first bias correction 1 − β₁⁰ = 0: m̂₁ = m₁ / 0 = ∞,
# and θ becomes NaN. The checker reports the infinite m̂ and, among the recorded scalars, t = 0
# where 1 was expected.

# %%
report = check_optimizer(StepFromZero, steps=STEPS)
mistakes["t starts at 0"] = report
print(report.term.sentence())
t_diff = [s for r in report.results for s in r.scalar_differences if s.name == "t"][0]
print(f"scalar t at step {t_diff.step}: expected {t_diff.expected:g}, got {t_diff.got:g}")
assert report.step == 1 and report.term.name == "m_hat" and not np.isfinite(report.term.got)
assert t_diff.expected == 1 and t_diff.got == 0

# %% [markdown]
# ### The first moment started from the first gradient
#
# m₀ = g₁ "because there is no history yet" gives m₁ = g₁, and the bias correction, which
# assumes m₀ = 0, then multiplies it by 10. The checker: m differs at step 1.

# %%
report = check_optimizer(MomentFromFirstGradient, steps=STEPS)
mistakes["m₀ = g₁"] = report
print(report.term.sentence())
assert report.step == 1 and report.term.name == "m"

# %% [markdown]
# ## 4. Exercise: SGD with momentum
#
# torch's SGD (and tinyopt's), with momentum μ and dampening τ:
#
#     g_t ← ∇f(θ_{t−1}) + λ θ_{t−1}
#     b_t ← g_t                         if t = 1   (no dampening on the first step)
#     b_t ← μ b_{t−1} + (1 − τ) g_t     otherwise
#     d_t ← g_t + μ b_t  (Nesterov)  or  b_t
#     θ_t ← θ_{t−1} − γ d_t
#
# The trace names (`optim.SGD.trace_symbols`): g, buf, d, update, theta.

# %%
class MySGD(Optimizer):
    """SGD with momentum, dampening, L2 weight decay and Nesterov, like torch.optim.SGD."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def step(self, closure=None):
        # BEGIN SOLUTION my_sgd
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, mu, tau, wd = group["lr"], group["momentum"], group["dampening"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = np.asarray(p.grad)
                if wd != 0:
                    g = g + wd * p.data
                quantities = dict(g=g)
                if mu != 0:
                    state = self.state.setdefault(p, {})
                    if "buf" not in state:
                        buf = state["buf"] = g.copy()
                    else:
                        buf = state["buf"] = mu * state["buf"] + (1 - tau) * g
                    d = g + mu * buf if group["nesterov"] else buf
                    quantities["buf"] = buf
                else:
                    d = g
                update = -lr * d
                p.data += update
                self._record(p, group, dict(quantities, d=d, update=update, theta=p.data))
        return loss
        # END SOLUTION


# %%
sgd_options = [dict(momentum=0.9), dict(momentum=0.9, dampening=0.5), dict(momentum=0.9, nesterov=True),
               dict(momentum=0.5, weight_decay=0.01)]
for options in sgd_options:
    r = check_optimizer(MySGD, reference=optim.SGD, steps=STEPS, lr=1e-3, **options)
    print(f"MySGD {options}: {'OK' if r.ok else 'DIFFERS'}")
    assert r.ok, r

# %% [markdown]
# ### The momentum buffer started from zero: harmless, until there is dampening
#
# Many texts write b₀ = 0 and b_t = μ b_{t−1} + (1 − τ) g_t from t = 1. Without dampening
# (τ = 0) that gives b₁ = g₁, torch's value: same trajectory, and the checker agrees. With
# dampening, b₁ = (1 − τ) g₁ instead of g₁, and the checker names the buffer at step 1. (For
# Adam it was the other way round: there the buffers *must* start at zero.)

# %%
class SGDZeroBuffer(MySGD):
    """MySGD with b₀ = 0 (so b₁ = (1 − τ) g₁)."""

    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if group["momentum"] != 0 and p.grad is not None and "buf" not in self.state.get(p, {}):
                    self.state.setdefault(p, {})["buf"] = np.zeros_like(p.data)
        return super().step(closure)


harmless = check_optimizer(SGDZeroBuffer, reference=optim.SGD, steps=STEPS, lr=1e-3, momentum=0.9)
harmful = check_optimizer(SGDZeroBuffer, reference=optim.SGD, steps=STEPS, lr=1e-3, momentum=0.9, dampening=0.5)
print("τ = 0:  ", "OK" if harmless.ok else "DIFFERS")
print("τ = 0.5:", harmful.term.sentence())
mistakes["b₀ = 0 with dampening"] = harmful
assert harmless.ok
assert harmful.step == 1 and harmful.term.name == "buf"
assert abs(harmful.term.got / harmful.term.expected - 0.5) < 1e-9  # (1 − τ) g₁ instead of g₁

# %% [markdown]
# ## 5. From the command line
#
# `tinyopt verify --candidate module:Class --reference adam` does the same for a class in a
# file (`module` importable from the current folder, or `path/to/file.py`). Options go with
# `--option NAME=VALUE` (Python literals). The exit status is 0 when they agree and 1 when they
# differ; a mistake on the command line is one line saying what to fix (status 2). Here is the
# seed articles' Adam as a student might hand it in: not a tinyopt `Optimizer` at all, just
# torch's interface, so the checker can compare parameters but no formula terms.

# %%
(OUT / "seed_adam.py").write_text(textwrap.dedent('''
    import numpy as np


    class SeedAdam:
        """θ ← θ − α m_t / (√v_t + ε), as the seed articles write it."""

        def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
            self.params, self.lr, self.betas, self.eps = list(params), lr, betas, eps
            self.m = [np.zeros_like(p.data) for p in self.params]
            self.v = [np.zeros_like(p.data) for p in self.params]

        def zero_grad(self):
            for p in self.params:
                p.grad = None

        def step(self, closure=None):
            b1, b2 = self.betas
            for p, m, v in zip(self.params, self.m, self.v):
                g = np.asarray(p.grad)
                m[...] = b1 * m + (1 - b1) * g
                v[...] = b2 * v + (1 - b2) * g * g
                p.data -= self.lr * m / (np.sqrt(v) + self.eps)
'''))
exit_code = cli.main(["verify", "--candidate", f"{OUT / 'seed_adam.py'}:SeedAdam", "--reference", "adam",
                      "--steps", "5"])
print("exit status:", exit_code)
usage_code = cli.main(["verify", "--candidate", "seed_adam"])  # forgot the :Class part
print("exit status:", usage_code)

# %% [markdown]
# ## What the checker found, checked
#
# | mistake | first differing step | first differing term |
# |---|---|---|
# | no bias correction | 1 | m̂ |
# | ε inside the square root | 1 | γ_eff |
# | L2 instead of decoupled decay | 1 | g |
# | t starting at 0 | 1 | m̂ (and the scalar t) |
# | m₀ = g₁ | 1 | m |
# | SGD's b₀ = 0 with dampening | 1 | b (without dampening: no difference) |

# %%
expected = {"no bias correction": "m_hat", "ε inside the square root": "lr_eff", "L2 instead of decoupled": "g",
            "t starts at 0": "m_hat", "m₀ = g₁": "m", "b₀ = 0 with dampening": "buf"}
print(f"{'mistake':28s} {'step':>4s}  term")
for name, r in mistakes.items():
    print(f"{name:28s} {r.step:>4d}  {r.term.symbol} ({r.term.name})")
    assert not r.ok and r.step == 1 and r.term.name == expected[name], name
assert exit_code == 1 and usage_code == 2
print("all checks passed")
