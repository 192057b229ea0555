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
# # Lesson 1: optimizers, from their formulas, step by step
#
# An optimizer turns gradients into parameter updates. Every one of them fits in a few lines of
# math, and every `tinyopt.optim` class prints those lines in its docstring (`help(to.optim.Adam)`)
# with the same symbols its code uses. This lesson
#
# 1. runs gradient descent, momentum, Nesterov, Adagrad, RMSprop and Adam on three classic 2-D
#    problems (an ill-conditioned quadratic, Rosenbrock's valley, Beale's function) and draws
#    their paths over the contour lines;
# 2. prints a **step-through trace** for each optimizer: every intermediate quantity of its
#    formula (g, m, v, m̂, v̂, the effective learning rate, the update) for the first steps;
# 3. checks one step by hand against the trace, and a whole path against `torch.optim`;
# 4. compares the variants that articles write (Adam without bias correction; momentum written
#    as v ← βv + γg; Keras' ε) with PyTorch's conventions, and shows when they differ;
# 5. puts the rest of the family on the same three problems: Adam's relatives (Adamax, NAdam,
#    RAdam, LAMB, Adafactor) and the other ideas (Adadelta, Rprop, ASGD, Lion, Muon, L-BFGS),
#    and checks what makes each of them different.
#
# Set `TINYOPT_FAST=1` (the test suite does) for fewer steps.

# %%
import math
import os
from pathlib import Path

import numpy as np

import tinyopt as to
from tinyopt import optim, plot

FAST = bool(os.environ.get("CI") or os.environ.get("TINYOPT_FAST"))
OUT = Path(os.environ.get("TINYOPT_OUTPUT_DIR", "runs/tutorials")) / "01_optimizers"
OUT.mkdir(parents=True, exist_ok=True)
np.set_printoptions(precision=6, suppress=True)


def rel_error(x, y):
    """max |x − y| / max(|x| + |y|, 1e-8), element-wise (CS231n's check)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


# %% [markdown]
# ## 1. Three test functions
#
# Each is written once, on `Tensor`s or NumPy arrays alike (only `+ − * **`), so autograd gives
# the gradient and the same function draws the contours.
#
# - **Ill-conditioned quadratic** f(x, y) = 0.1 x² + 2 y². The Hessian is diag(0.2, 4): the
#   curvature differs 20× between the two directions. Gradient descent is stable only for
#   γ < 2/4 = 0.5, and then crawls along x, where it shrinks by (1 − 0.2γ) per step.
# - **Rosenbrock** f(x, y) = (1 − x)² + 100 (y − x²)²: a curved, flat-bottomed valley; minimum
#   f(1, 1) = 0.
# - **Beale** f(x, y) = (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²: flat plateaus
#   and steep walls; minimum f(3, 0.5) = 0.

# %%
def quadratic(x, y):
    return 0.1 * x**2 + 2 * y**2


def rosenbrock(x, y):
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def beale(x, y):
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def run(make_optimizer, f, start, steps, shape=(2,)):
    """The path θ_0 … θ_steps of an optimizer minimizing f from `start`: an array (steps + 1, 2).

    The optimizer gets a closure (torch's convention: zero the gradients, evaluate, backward,
    return the loss), which L-BFGS needs and every other optimizer accepts. `shape=(1, 2)` makes
    θ a 1×2 matrix, for Muon, which only takes matrices."""
    theta = to.Tensor(np.array(start, dtype=np.float64).reshape(shape), requires_grad=True, dtype=np.float64)
    opt = make_optimizer([theta])

    def closure():
        opt.zero_grad()
        xy = theta if shape == (2,) else theta.reshape(2)
        loss = f(xy[0], xy[1])
        loss.backward()
        return loss

    path = [theta.data.ravel().copy()]
    for _ in range(steps):
        opt.step(closure)
        path.append(theta.data.ravel().copy())
    return np.array(path)


OPTIMIZERS = {  # name → (class, fixed options); the learning rate (and μ) are chosen per problem below
    "GD": (optim.GD, {}),
    "momentum": (optim.SGD, {"momentum": 0.9}),
    "Nesterov": (optim.SGD, {"momentum": 0.9, "nesterov": True}),
    "Adagrad": (optim.Adagrad, {}),
    "RMSprop": (optim.RMSprop, {}),
    "Adam": (optim.Adam, {}),
}


def factory(name, **options):
    """A function params → optimizer, for `run`: OPTIMIZERS[name] with `options` on top."""
    cls, fixed = OPTIMIZERS[name]
    return lambda params: cls(params, **{**fixed, **options})


# %% [markdown]
# ## 2. Paths on the ill-conditioned quadratic
#
# Gradient descent at γ = 0.4 (just below the stability limit 0.5 set by the steep y direction)
# zig-zags in y and creeps in x: each step shrinks x only by the factor 1 − 0.2γ = 0.92.
# Momentum accumulates the consistent x component of the gradient, and the oscillating y
# component cancels in the buffer; with μ = 0.5 (the heavy-ball rule of thumb for a condition
# number of 20 is μ ≈ ((√20 − 1)/(√20 + 1))² ≈ 0.4) it converges at ~√μ ≈ 0.7 per step. (With
# μ = 0.9 it would be *slower* than GD here: the error then shrinks only like √0.9 ≈ 0.95.)
# The adaptive methods divide each coordinate by its own gradient scale, so both directions
# move at a similar speed.

# %%
STEPS_Q = 60 if FAST else 150
settings_q = {"GD": dict(lr=0.4), "momentum": dict(lr=0.6, momentum=0.5), "Nesterov": dict(lr=0.3, momentum=0.6),
              "Adagrad": dict(lr=0.5), "RMSprop": dict(lr=0.05), "Adam": dict(lr=0.1)}
paths_q = {name: run(factory(name, **settings_q[name]), quadratic, (-5.0, -2.0), STEPS_Q) for name in OPTIMIZERS}
for name, p in paths_q.items():
    print(f"{name:9s} {str(settings_q[name]):30s} θ_{STEPS_Q} = {p[-1]}   f = {quadratic(*p[-1]):.2e}")
plot.optimizer_paths(quadratic, paths_q, xlim=(-5.5, 1.5), ylim=(-3.0, 3.0), minimum=(0, 0),
                     title="f = 0.1x² + 2y²", save=OUT / "quadratic.png", close=True)

# %% [markdown]
# The stability limit, checked: on this quadratic one GD step multiplies y by (1 − 4γ), so for
# γ > 0.5 the y coordinate grows without bound.

# %%
diverging = run(factory("GD", lr=0.55), quadratic, (-5.0, -2.0), 30)
print("GD with γ = 0.55: |y| at steps 0, 10, 20, 30:", np.abs(diverging[::10, 1]))
assert abs(diverging[-1, 1]) > 10 * abs(diverging[0, 1])
assert abs(paths_q["GD"][-1, 1]) < 1e-3  # γ = 0.4 < 0.5 converges in y …
for name in ("momentum", "Nesterov"):  # … and momentum beats it along x, by orders of magnitude
    assert abs(paths_q[name][-1, 0]) < 1e-2 * abs(paths_q["GD"][-1, 0]), name

# %% [markdown]
# ## 3. Rosenbrock and Beale
#
# Rosenbrock's valley is easy to find and hard to follow: the gradient points across the
# valley, not along it. Plain GD needs thousands of steps; momentum and Adam follow the curve.
# On Beale's function the gradient's scale changes by orders of magnitude between the steep
# walls and the flat valley floor: momentum overshoots into the lower half before turning,
# while the adaptive methods (which divide by the gradient's own scale) take even steps and end
# closest to the minimum.

# %%
STEPS_R = 1500 if FAST else 4000
lrs_r = {"GD": 1e-3, "momentum": 1e-3, "Nesterov": 1e-3, "Adagrad": 1.0, "RMSprop": 3e-3, "Adam": 0.05}
paths_r = {name: run(factory(name, lr=lrs_r[name]), rosenbrock, (-1.2, 1.0), STEPS_R) for name in OPTIMIZERS}
for name, p in paths_r.items():
    print(f"Rosenbrock {name:9s} θ_{STEPS_R} = {p[-1]}   f = {rosenbrock(*p[-1]):.2e}")
plot.optimizer_paths(rosenbrock, paths_r, xlim=(-1.6, 1.6), ylim=(-0.5, 1.8), minimum=(1, 1),
                     title="Rosenbrock", save=OUT / "rosenbrock.png", close=True)

STEPS_B = 1000 if FAST else 3000
lrs_b = {"GD": 0.01, "momentum": 0.001, "Nesterov": 0.001, "Adagrad": 0.5, "RMSprop": 0.01, "Adam": 0.05}
paths_b = {name: run(factory(name, lr=lrs_b[name]), beale, (1.0, 1.5), STEPS_B) for name in OPTIMIZERS}
for name, p in paths_b.items():
    print(f"Beale      {name:9s} θ_{STEPS_B} = {p[-1]}   f = {beale(*p[-1]):.2e}")
plot.optimizer_paths(beale, paths_b, xlim=(-0.5, 4.0), ylim=(-1.0, 2.0), minimum=(3, 0.5),
                     title="Beale", save=OUT / "beale.png", close=True)

# %% [markdown]
# ## 4. The step-through trace: one table per optimizer
#
# `opt.trace(k)` attaches a recorder: at every step, the optimizer hands it each quantity of its
# formula, under the docstring's names, for the first k elements of every parameter. Here θ has
# two elements (x, y) on the quadratic, so the columns are x and y. Read a table top to bottom:
# it *is* the algorithm, with numbers.

# %%
def traced(make_optimizer, steps=2, start=(-5.0, -2.0)):
    theta = to.Tensor(np.array(start), requires_grad=True, dtype=np.float64)
    opt = make_optimizer([theta])
    with opt.trace(k=2) as trace:
        for _ in range(steps):
            opt.zero_grad()
            quadratic(theta[0], theta[1]).backward()
            opt.step()
    return trace


traces = {
    "GD": traced(lambda ps: optim.GD(ps, lr=0.4)),
    "SGD (momentum, Nesterov)": traced(lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True)),
    "Adagrad": traced(lambda ps: optim.Adagrad(ps, lr=0.5)),
    "RMSprop (centered, momentum)": traced(lambda ps: optim.RMSprop(ps, lr=0.05, centered=True, momentum=0.5)),
    "Adam": traced(lambda ps: optim.Adam(ps, lr=0.1)),
    "AdamW": traced(lambda ps: optim.AdamW(ps, lr=0.1, weight_decay=0.1)),
}
for name, trace in traces.items():
    print(f"\n### {name}")
    print(trace.table())

# %% [markdown]
# ### Checking one step by hand
#
# Adam's first step, from θ₀ = (−5, −2), with γ = 0.1, β₁ = 0.9, β₂ = 0.999, ε = 1e-8:
# g₁ = ∇f = (0.2·(−5), 4·(−2)) = (−1, −8); m₁ = 0.1 g₁; v₁ = 0.001 g₁²; the bias corrections
# undo exactly those factors, so m̂₁ = g₁ and v̂₁ = g₁², and the step is
# −γ g₁ / (|g₁| + ε) ≈ +0.1 in *both* coordinates, although the gradients differ 8×. That is the
# point of Adam's per-element learning rate γ / (√v̂ + ε), printed as γ_eff.

# %%
g1 = np.array([0.2 * -5.0, 4 * -2.0])
m1, v1 = 0.1 * g1, 0.001 * g1**2
m_hat, v_hat = m1 / (1 - 0.9), v1 / (1 - 0.999)
step_by_hand = -0.1 * m_hat / (np.sqrt(v_hat) + 1e-8)
first = traces["Adam"].steps(0)[0].quantities
for name, by_hand in [("g", g1), ("m", m1), ("v", v1), ("m_hat", m_hat), ("v_hat", v_hat), ("update", step_by_hand)]:
    err = rel_error(first[name], by_hand)
    print(f"{name:7s} trace {first[name]}  by hand {by_hand}  rel. error {err:.1e}")
    assert err < 1e-12, name
assert np.allclose(first["update"], 0.1, rtol=1e-6)

# %% [markdown]
# ### Exercise: the update on plain arrays
#
# The two updates this lesson uses most, written on NumPy arrays (no Tensor, no class): fill in the
# code between the markers. `tinyopt check 01` grades them against `optim.Adam` and `optim.SGD`
# for 20 random gradients and names the term that differs (the student version of this lesson,
# from `tinyopt course build --student`, has stubs there).
#
#     Adam:     m_t ← β₁ m_{t−1} + (1 − β₁) g_t;   v_t ← β₂ v_{t−1} + (1 − β₂) g_t²
#               θ_t ← θ_{t−1} − γ m̂_t / (√v̂_t + ε),   m̂_t = m_t / (1 − β₁ᵗ),   v̂_t = v_t / (1 − β₂ᵗ)
#     momentum: b_1 = g_1;   b_t ← μ b_{t−1} + g_t;   θ_t ← θ_{t−1} − γ b_t      (torch's convention)

# %%
def adam_update(theta, g, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    """One Adam step; t counts from 1. Returns the new (θ, m, v)."""
    # BEGIN SOLUTION adam_update
    beta1, beta2 = betas
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
    # END SOLUTION
    return theta, m, v


def momentum_update(theta, g, b, lr, momentum):
    """One step of SGD with momentum; b is None before the first step. Returns the new (θ, b)."""
    # BEGIN SOLUTION momentum_update
    b = g.copy() if b is None else momentum * b + g
    theta = theta - lr * b
    # END SOLUTION
    return theta, b


# Both against the library, on the quadratic's gradient, for a few steps:
theta_a, m_a, v_a = np.array([-5.0, -2.0]), np.zeros(2), np.zeros(2)
theta_b, buf = np.array([-5.0, -2.0]), None
for t in range(1, 4):
    g = np.array([0.2 * theta_a[0], 4 * theta_a[1]])
    theta_a, m_a, v_a = adam_update(theta_a, g, m_a, v_a, t, lr=0.1)
    theta_b, buf = momentum_update(theta_b, np.array([0.2 * theta_b[0], 4 * theta_b[1]]), buf, lr=0.05, momentum=0.9)
path_adam = run(lambda ps: optim.Adam(ps, lr=0.1), quadratic, (-5.0, -2.0), 3)
path_momentum = run(lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9), quadratic, (-5.0, -2.0), 3)
print("adam_update    rel. error after 3 steps", rel_error(theta_a, path_adam[-1]))
print("momentum_update rel. error after 3 steps", rel_error(theta_b, path_momentum[-1]))
assert rel_error(theta_a, path_adam[-1]) < 1e-12 and rel_error(theta_b, path_momentum[-1]) < 1e-12

# %% [markdown]
# ### And a whole path against PyTorch
#
# When PyTorch is installed, the same optimizer with the same arguments on the same function
# must give the same path. (`tinyopt verify` runs this for every optimizer and option.)

# %%
try:
    import torch
except ImportError:
    torch = None
if torch is not None:
    def torch_path(make, f, start, steps):
        theta = torch.tensor(start, dtype=torch.float64, requires_grad=True)
        opt = make([theta])

        def closure():
            opt.zero_grad()
            loss = f(theta[0], theta[1])
            loss.backward()
            return loss

        path = [theta.detach().numpy().copy()]
        for _ in range(steps):
            opt.step(closure)
            path.append(theta.detach().numpy().copy())
        return np.array(path)

    for name, ours, theirs in [
        ("Adam", factory("Adam", lr=0.02), lambda ps: torch.optim.Adam(ps, lr=0.02)),
        ("Nesterov", factory("Nesterov", lr=1e-3),
         lambda ps: torch.optim.SGD(ps, lr=1e-3, momentum=0.9, nesterov=True)),
        ("RMSprop", factory("RMSprop", lr=1e-3), lambda ps: torch.optim.RMSprop(ps, lr=1e-3)),
    ]:
        err = rel_error(run(ours, rosenbrock, (-1.2, 1.0), 300), torch_path(theirs, rosenbrock, (-1.2, 1.0), 300))
        print(f"{name}: 300 Rosenbrock steps, tinyopt vs torch.optim, max rel. error {err:.1e}")
        assert err < 1e-9, name
else:
    print("torch is not installed: skipping the comparison")

# %% [markdown]
# ## 5. The articles' variants vs PyTorch's conventions
#
# ### Adam without bias correction
#
# Many articles (including this course's sources) write Adam as θ ← θ − α m_t / (√v_t + ε),
# without m̂, v̂. Since m₀ = v₀ = 0, m_t and v_t start near zero and grow to their running
# averages over ~1/(1 − β) steps. At t = 1, m₁ = (1 − β₁) g and √v₁ = √(1 − β₂) |g|, so the first
# step is γ (1 − β₁)/√(1 − β₂) = 3.16 γ with the default betas, instead of γ. On a long run the
# difference fades; on a short one (or with β₂ = 0.9999) it does not.

# %%
variants = {
    "bias-corrected (torch)": lambda ps: optim.Adam(ps, lr=0.05),
    "no bias correction (articles)": lambda ps: optim.Adam(ps, lr=0.05, bias_correction=False),
    "Keras ε placement, ε = 1e-3": lambda ps: optim.Adam(ps, lr=0.05, eps=1e-3, eps_placement="keras"),
    "torch ε placement, ε = 1e-3": lambda ps: optim.Adam(ps, lr=0.05, eps=1e-3),
}
STEPS_V = 200 if FAST else 500
paths_v = {name: run(make, rosenbrock, (-1.2, 1.0), STEPS_V) for name, make in variants.items()}
first_steps = {name: np.linalg.norm(p[1] - p[0]) / math.sqrt(2) for name, p in paths_v.items()}
for name, size in first_steps.items():
    print(f"{name:32s} first step per coordinate {size:.4f}   f(θ_{STEPS_V}) = {rosenbrock(*paths_v[name][-1]):.3e}")
plot.optimizer_paths(rosenbrock, paths_v, xlim=(-1.6, 1.6), ylim=(-0.5, 1.8), minimum=(1, 1),
                     title="Adam variants", save=OUT / "adam_variants.png", close=True)

expected_ratio = (1 - 0.9) / math.sqrt(1 - 0.999)
ratio = first_steps["no bias correction (articles)"] / first_steps["bias-corrected (torch)"]
print(f"first-step ratio without/with bias correction: {ratio:.4f} (formula: {expected_ratio:.4f})")
assert abs(ratio - expected_ratio) < 1e-6

# %% [markdown]
# ### Keras' ε
#
# Keras adds ε to the *uncorrected* √v_t: θ ← θ − γ √(1 − β₂ᵗ)/(1 − β₁ᵗ) · m_t / (√v_t + ε).
# Written with v̂, that is ε / √(1 − β₂ᵗ) next to √v̂_t: 31.6 ε at t = 1, shrinking to ε. With ε = 1e-8
# nobody notices; with the large ε some recipes use (1e-3, 1e-1), the early steps are damped.
# The first step with ε = 1e-3 on Rosenbrock (gradient ≈ (−215.6, −88) at the start) shows it:

# %%
g0 = np.array([-2 * (1 - -1.2) - 400 * -1.2 * (1.0 - 1.44), 200 * (1.0 - 1.44)])
torch_first = 0.05 * np.abs(g0) / (np.abs(g0) + 1e-3)
keras_first = 0.05 * np.abs(g0) / (np.abs(g0) + 1e-3 / math.sqrt(1 - 0.999))
ours_torch = np.abs(paths_v["torch ε placement, ε = 1e-3"][1] - paths_v["torch ε placement, ε = 1e-3"][0])
ours_keras = np.abs(paths_v["Keras ε placement, ε = 1e-3"][1] - paths_v["Keras ε placement, ε = 1e-3"][0])
print("first step, torch ε:", ours_torch, " by hand:", torch_first)
print("first step, Keras ε:", ours_keras, " by hand:", keras_first)
assert rel_error(ours_torch, torch_first) < 1e-10 and rel_error(ours_keras, keras_first) < 1e-10
assert np.all(ours_keras < ours_torch)

# %% [markdown]
# ### Momentum: v ← βv + γg (Sutskever) vs PyTorch's b ← μb + g, θ ← θ − γb
#
# The two are the same algorithm while γ is constant (v_t = γ b_t). They differ when γ changes:
# PyTorch multiplies the *whole* buffer by the new γ at the next step; the Sutskever form applies
# the new γ to new gradients only, and the old velocity keeps its old scale. Below, γ drops 10×
# at step 20 (what a `StepLR` does): PyTorch's path brakes at once, Sutskever's coasts.

# %%
def momentum_run(style, steps=60, drop_at=20):
    theta = to.Tensor(np.array([-5.0, -2.0]), requires_grad=True, dtype=np.float64)
    opt = optim.SGD([theta], lr=0.05, momentum=0.9, momentum_style=style)
    path = [theta.data.copy()]
    for t in range(steps):
        if t == drop_at:
            opt.param_groups[0]["lr"] = 0.005
        opt.zero_grad()
        quadratic(theta[0], theta[1]).backward()
        opt.step()
        path.append(theta.data.copy())
    return np.array(path)


pytorch_style, sutskever_style = momentum_run("pytorch"), momentum_run("sutskever")
gap = np.linalg.norm(pytorch_style - sutskever_style, axis=1)
print("distance between the two paths at steps 0, 10, 20, 21, 30, 60:", gap[[0, 10, 20, 21, 30, 60]])
plot.optimizer_paths(quadratic, {"pytorch style": pytorch_style, "sutskever style": sutskever_style},
                     xlim=(-5.5, 1.5), ylim=(-2.5, 2.5), minimum=(0, 0), title="lr ÷ 10 at step 20",
                     save=OUT / "momentum_styles.png", close=True)
step_after_drop = {name: np.linalg.norm(p[21] - p[20]) for name, p in
                   [("pytorch", pytorch_style), ("sutskever", sutskever_style)]}
print("size of step 21 (first after the drop):", step_after_drop)
assert gap[:21].max() < 1e-12  # identical while γ is constant
assert gap[21] > 1e-3  # different as soon as γ changes
assert step_after_drop["sutskever"] > 5 * step_after_drop["pytorch"]  # the old velocity coasts on

# %% [markdown]
# ## 6. The rest of the family
#
# `tinyopt.optim` has every optimizer of `torch.optim` and two that torch lacks. Each docstring
# is its algorithm; here they run on the same three problems, in two groups.
#
# **Adam's relatives** keep Adam's two moments and change one thing: Adamax replaces √v by an
# infinity norm u_t = max(β₂u, |g|); NAdam looks one step ahead (Nesterov) with a momentum
# schedule μ_t; RAdam rectifies the variance of the adaptive learning rate, and while that
# variance is intractable (ρ_t ≤ 5: the first five steps with β₂ = 0.999) it takes plain
# momentum-SGD steps; LAMB rescales each layer's Adam step to γ‖θ‖ (a trust ratio); Adafactor
# stores the second moment of a matrix as a row and a column factor and scales its steps by the
# parameter's RMS.
#
# **Other ideas**: Adadelta needs no learning rate (its step has the units of θ: RMS of past
# steps over RMS of past gradients); Rprop uses only the *sign* of the gradient and adapts a step
# size per element; ASGD averages the iterates; Lion steps by exactly ±γ per element in the
# direction of sign(β₁m + (1−β₁)g); Muon orthogonalises its momentum matrix (all singular values
# ≈ 1), so on a 1×2 matrix its step has a fixed length; L-BFGS builds a quasi-Newton direction
# from the last gradient differences and takes a strong-Wolfe line-search step along it (one
# iteration per `step` here, `max_iter=1`).

# %%
FAMILY = {  # name → (class, options, {problem: learning rate}, parameter shape)
    "Adam": (optim.Adam, {}, {"quadratic": 0.1, "rosenbrock": 0.05, "beale": 0.05}, (2,)),
    "Adamax": (optim.Adamax, {}, {"quadratic": 0.3, "rosenbrock": 0.3, "beale": 0.3}, (2,)),
    "NAdam": (optim.NAdam, {}, {"quadratic": 0.3, "rosenbrock": 0.03, "beale": 0.1}, (2,)),
    "RAdam": (optim.RAdam, {}, {"quadratic": 0.3, "rosenbrock": 3e-3, "beale": 0.01}, (2,)),
    "LAMB": (optim.LAMB, {}, {"quadratic": 0.3, "rosenbrock": 0.03, "beale": 0.01}, (2,)),
    "Adafactor": (optim.Adafactor, {}, {"quadratic": 0.3, "rosenbrock": 0.03, "beale": 0.01}, (2,)),
    "Adadelta": (optim.Adadelta, {}, {"quadratic": 1.0, "rosenbrock": 0.3, "beale": 1.0}, (2,)),
    "Rprop": (optim.Rprop, {}, {"quadratic": 0.1, "rosenbrock": 0.03, "beale": 3e-3}, (2,)),
    "ASGD": (optim.ASGD, {}, {"quadratic": 0.3, "rosenbrock": 1e-3, "beale": 0.03}, (2,)),
    "Lion": (optim.Lion, {}, {"quadratic": 0.1, "rosenbrock": 3e-3, "beale": 0.01}, (2,)),
    "Muon": (optim.Muon, {"weight_decay": 0.0}, {"quadratic": 0.3, "rosenbrock": 0.01, "beale": 0.01}, (1, 2)),
    "L-BFGS": (optim.LBFGS, {"max_iter": 1, "max_eval": 25, "line_search_fn": "strong_wolfe"},
               {"quadratic": 1.0, "rosenbrock": 1.0, "beale": 1.0}, (2,)),
}
GROUPS = {"adam_family": ["Adam", "Adamax", "NAdam", "RAdam", "LAMB", "Adafactor"],
          "other_ideas": ["Adadelta", "Rprop", "ASGD", "Lion", "Muon", "L-BFGS"]}
PROBLEMS = {  # name → (f, start, steps, limits, minimum)
    "quadratic": (quadratic, (-5.0, -2.0), STEPS_Q, ((-5.5, 1.5), (-3.0, 3.0)), (0, 0)),
    "rosenbrock": (rosenbrock, (-1.2, 1.0), STEPS_R, ((-1.6, 1.6), (-0.5, 1.8)), (1, 1)),
    "beale": (beale, (1.0, 1.5), STEPS_B, ((-0.5, 4.0), (-1.0, 2.0)), (3, 0.5)),
}


def family_run(name, problem, steps=None):
    cls, options, lrs, shape = FAMILY[name]
    f, start, default_steps, _, _ = PROBLEMS[problem]
    return run(lambda ps: cls(ps, lr=lrs[problem], **options), f, start, steps or default_steps, shape)


family_paths = {problem: {name: family_run(name, problem) for name in FAMILY} for problem in PROBLEMS}
print(f"{'':10s}" + "".join(f"{p:>14s}" for p in PROBLEMS) + "   (f at the last step)")
for name in FAMILY:
    print(f"{name:10s}" + "".join(f"{PROBLEMS[p][0](*family_paths[p][name][-1]):>14.2e}" for p in PROBLEMS))
for problem, (f, _, _, (xlim, ylim), minimum) in PROBLEMS.items():
    for group, names in GROUPS.items():
        plot.optimizer_paths(f, {n: family_paths[problem][n] for n in names}, xlim=xlim, ylim=ylim, minimum=minimum,
                             title=f"{problem}: {group.replace('_', ' ')}",
                             save=OUT / f"family_{problem}_{group}.png", close=True)

# %% [markdown]
# What makes each of them different, checked on these paths:
#
# - **Lion** moves every coordinate by exactly γ per step (sign of c_t, no weight decay here).
# - **RAdam**'s first step is momentum SGD's, θ₁ = θ₀ − γ g₁ (m̂₁ = g₁, no division by √v̂):
#   its size follows the gradient's scale, unlike Adam's first step of ≈ γ per coordinate.
# - **Muon** on a 1×2 matrix: the orthogonalised momentum has one singular value, mapped by the
#   Newton–Schulz polynomial into [0.5, 1.5], so every step has length in [0.5γ, 1.5γ].
# - **Rprop** and **L-BFGS** (deterministic, full-gradient methods) reach Beale's and Rosenbrock's
#   minima almost exactly; L-BFGS needs far fewer iterations on Rosenbrock than Adam's thousands.

# %%
lion_steps = np.abs(np.diff(family_paths["quadratic"]["Lion"][:20], axis=0))
print("Lion |Δθ| per coordinate, first steps:", lion_steps[:3].tolist())
assert np.allclose(lion_steps, FAMILY["Lion"][2]["quadratic"], rtol=1e-12)

g1 = np.array([0.2 * -5.0, 4 * -2.0])
radam_first = family_paths["quadratic"]["RAdam"][1] - family_paths["quadratic"]["RAdam"][0]
adam_first = family_paths["quadratic"]["Adam"][1] - family_paths["quadratic"]["Adam"][0]
print("first step: RAdam", radam_first, " (−γ g₁ =", -0.3 * g1, ")  Adam", adam_first)
assert rel_error(radam_first, -0.3 * g1) < 1e-12 and np.allclose(np.abs(adam_first), 0.1, rtol=1e-6)

muon_lengths = np.linalg.norm(np.diff(family_paths["beale"]["Muon"], axis=0), axis=1) / FAMILY["Muon"][2]["beale"]
print(f"Muon step lengths / γ on Beale: min {muon_lengths.min():.3f}, max {muon_lengths.max():.3f}")
assert 0.5 <= muon_lengths.min() and muon_lengths.max() <= 1.5

lbfgs_r = family_paths["rosenbrock"]["L-BFGS"]
lbfgs_iterations = int(np.argmax([rosenbrock(*p) < 1e-8 for p in lbfgs_r]))
adam_iterations = int(np.argmax([rosenbrock(*p) < 1e-8 for p in family_paths["rosenbrock"]["Adam"]] + [True]))
print(f"iterations to f < 1e-8 on Rosenbrock: L-BFGS {lbfgs_iterations}, Adam > {adam_iterations - 1}")
assert 0 < lbfgs_iterations < 100 and lbfgs_iterations < adam_iterations
assert beale(*family_paths["beale"]["Rprop"][-1]) < 1e-8 and beale(*family_paths["beale"]["L-BFGS"][-1]) < 1e-8

# %% [markdown]
# And the same paths against `torch.optim` (when installed), 300 steps on Rosenbrock. torch keeps
# NAdam's μ product and ASGD's step size as scalar tensors of its default dtype, so this runs with
# `torch.set_default_dtype(torch.float64)`; Lion and LAMB are not in torch (`tinyopt verify`
# checks them by hand against their papers), Muon runs its Newton–Schulz iteration in bfloat16 in
# both libraries (equal to bfloat16 precision, checked in tests/test_optim_family.py).

# %%
if torch is not None:
    previous_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    for name in ["Adamax", "NAdam", "RAdam", "Adafactor", "Adadelta", "Rprop", "ASGD", "L-BFGS"]:
        cls, options, lrs, _ = FAMILY[name]
        torch_cls = getattr(torch.optim, cls.__name__)
        ours = family_run(name, "rosenbrock", 300)
        theirs = torch_path(lambda ps: torch_cls(ps, lr=lrs["rosenbrock"], **options), rosenbrock, (-1.2, 1.0), 300)
        err = rel_error(ours, theirs)
        print(f"{name:9s} 300 Rosenbrock steps, tinyopt vs torch.optim, max rel. error {err:.1e}")
        assert err < 1e-9, name
    torch.set_default_dtype(previous_dtype)


# %% [markdown]
# ## What this lesson showed, checked
#
# - On the ill-conditioned quadratic, GD diverges above γ = 2/λ_max and crawls along the flat
#   direction below it; momentum (with a μ suited to the conditioning) gets orders of magnitude
#   further along that direction in the same number of steps.
# - Every optimizer gets close to Rosenbrock's minimum with enough steps; Adam and momentum
#   get there first. On Beale, Adam ends closer to the minimum than GD.
# - The trace's numbers are the formula's (checked by hand for Adam's first step), and whole
#   paths match `torch.optim` to 1e-9.
# - Adam without bias correction makes a first step 3.16× too large; Keras' ε damps early steps
#   when ε is large; Sutskever's momentum equals PyTorch's until the learning rate changes.
# - The rest of the family differs where its docstring says: Lion's steps are ±γ, RAdam starts as
#   momentum SGD, Muon's steps have a fixed length, L-BFGS needs a few dozen iterations on
#   Rosenbrock; and each matches `torch.optim` where torch has it.

# %%
assert rosenbrock(*paths_r["Adam"][-1]) < 1e-3
assert rosenbrock(*paths_r["momentum"][-1]) < 1e-3
assert rosenbrock(*paths_r["GD"][-1]) < rosenbrock(*paths_r["GD"][0])
assert beale(*paths_b["Adam"][-1]) < 1e-2 and beale(*paths_b["Adam"][-1]) < beale(*paths_b["GD"][-1])
for name in ("quadratic", "rosenbrock", "beale", "adam_variants", "momentum_styles") + tuple(
        f"family_{problem}_{group}" for problem in PROBLEMS for group in GROUPS):
    assert (OUT / f"{name}.png").stat().st_size > 1000, name
print("all checks passed")
