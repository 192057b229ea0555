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
# # Lesson 12: the loss landscape optimizers move on
#
# A network with P parameters has a loss surface in P + 1 dimensions; we can only look at slices.
# This lesson
#
# 1. draws 1-D and 2-D slices of the loss around a trained network along random
#    **filter-normalised** directions (Li et al. 2018, "Visualizing the Loss Landscape of Neural
#    Nets");
# 2. measures the **sharpness**, the largest eigenvalue λ_max of the Hessian, by power iteration
#    on Hessian-vector products, and checks it against the slices;
# 3. runs the **edge-of-stability** experiment (Cohen et al. 2021): full-batch gradient descent
#    at learning rate η raises λ_max until it reaches 2/η, and then keeps it hovering there;
# 4. runs SGD, momentum, Adam, Lion and LBFGS from the same start and draws their paths on one
#    plane of the landscape (the plane of the paths' principal components).
#
# Everything uses `tinyopt.landscape` (read its docstring for the formulas) and a small slice of
# Fashion-MNIST. Set `TINYOPT_FAST=1` (the test suite does) for fewer images and steps.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import tinyopt as to
from tinyopt import landscape, nn, optim, plot

FAST = bool(os.environ.get("CI") or os.environ.get("TINYOPT_FAST"))
OUT = Path(os.environ.get("TINYOPT_OUTPUT_DIR", "runs/tutorials")) / "12_loss_landscape"
OUT.mkdir(parents=True, exist_ok=True)
N_TRAIN = 500 if FAST else 2000

# %% [markdown]
# ## The data, the network, the loss
#
# The first N Fashion-MNIST training images, averaged down to 14×14 = 196 pixels and centred;
# a tanh network 196 → 64 → 64 → 10 in float64 (the Hessian measurements below take finite
# differences of gradients, which need the precision); the square loss on one-hot targets,
# L(θ) = (1/2N) Σₙ ‖f_θ(xₙ) − yₙ‖², as in Cohen et al. Every loss in this lesson is the
# full-batch loss on these N images: one landscape, fixed.

# %%
(x_all, y_all), _ = to.datasets.fashion_mnist.load_data()
images = x_all[:N_TRAIN].astype(np.float64) / 255.0
x = images.reshape(N_TRAIN, 14, 2, 14, 2).mean(axis=(2, 4)).reshape(N_TRAIN, -1)
x = x - x.mean(axis=0)
targets = np.eye(10)[y_all[:N_TRAIN]]
X, Y = to.tensor(x), to.tensor(targets)


def make_model(seed: int = 0):
    rng = np.random.default_rng(seed)
    return nn.Sequential(nn.Linear(196, 64, dtype=np.float64, rng=rng), nn.Tanh(),
                         nn.Linear(64, 64, dtype=np.float64, rng=rng), nn.Tanh(),
                         nn.Linear(64, 10, dtype=np.float64, rng=rng))


def loss_of(model):
    """The full-batch loss as a function of no arguments, at the model's current parameters."""
    return lambda: 0.5 * ((model(X) - Y) ** 2).sum(axis=1).mean()


def train(model, opt, steps, every=None, measure=None):
    """Full-batch training: returns the loss before each step (and `measure(step)` every `every` steps)."""
    loss_fn, losses, measured = loss_of(model), [], []
    for t in range(steps):
        if every and t % every == 0:
            measured.append(measure(t))

        def closure():
            opt.zero_grad()
            loss = loss_fn()
            loss.backward()
            return loss

        # torch's convention: step(closure) evaluates the closure (LBFGS more than once) and
        # returns the loss before the step
        losses.append(opt.step(closure).item())
    return np.array(losses), measured


# %% [markdown]
# ## 1. Slices around a trained network, along filter-normalised directions
#
# Pick a random Gaussian direction δ in parameter space and plot f(α) = L(θ* + α δ). A raw δ
# says little: a tanh (or ReLU) network computes almost the same function when one layer's
# weights are scaled up and the next one's down, so a step of a given size means different things
# for layers of different scales. Li et al. rescale each *filter* (here: each neuron's row of
# incoming weights) of δ to the norm of the same filter of θ*:
#
#     δ_{i,j} ← δ_{i,j} / ‖δ_{i,j}‖ · ‖θ*_{i,j}‖,
#
# and set δ = 0 for biases. Then α = 1 means "a step as large as the weights themselves", in every
# layer alike, and slices of different networks can be compared.

# %%
model = make_model(seed=0)
trained_losses, _ = train(model, optim.Adam(model.parameters(), lr=3e-3), 200 if FAST else 600)
loss_fn = loss_of(model)
theta_star = landscape.snapshot(model)
print(f"trained with Adam: loss {trained_losses[0]:.4f} → {float(loss_fn().data):.4f}")

rng = np.random.default_rng(12)
directions = [landscape.random_direction(model, rng) for _ in range(3)]
for (name, p), d in zip(model.named_parameters(), directions[0]):
    if p.ndim > 1:  # per neuron (row), ‖δ‖ = ‖θ*‖; hence also per layer
        row_ratio = np.linalg.norm(d, axis=1) / np.linalg.norm(p.data, axis=1)
        print(f"{name:9s} ‖δ‖/‖θ‖ per row: min {row_ratio.min():.6f} max {row_ratio.max():.6f}; "
              f"layer: {np.linalg.norm(d) / np.linalg.norm(p.data):.6f}")
        assert np.allclose(row_ratio, 1.0)
    else:
        assert not d.any()  # biases are not moved

alphas = np.linspace(-1.0, 1.0, 21 if FAST else 41)
curves = {f"direction {k + 1}": landscape.surface_1d(loss_fn, model, d, alphas) for k, d in enumerate(directions)}
plot.loss_surface_1d(alphas, curves, title="L(θ* + α δ), three filter-normalised directions",
                     save=OUT / "surface_1d.png", close=True)
grid = np.linspace(-1.0, 1.0, 11 if FAST else 25)
z = landscape.surface_2d(loss_fn, model, directions[0], directions[1], grid, grid)
plot.loss_surface_2d(grid, grid, z, xlabel="α (direction 1)", ylabel="β (direction 2)",
                     title="L(θ* + α δ + β η)", save=OUT / "surface_2d.png", close=True)
center = len(alphas) // 2
for name, c in curves.items():
    print(f"{name}: L(α=−1) = {c[0]:.3f}, L(0) = {c[center]:.4f}, L(1) = {c[-1]:.3f}")
    assert abs(c[center] - float(loss_fn().data)) < 1e-12  # α = 0 is θ* itself
    assert c[center] == min(c)  # θ* is the lowest point of each slice …
assert abs(z[len(grid) // 2, len(grid) // 2] - float(loss_fn().data)) < 1e-12
for p, saved in zip(model.parameters(), theta_star):
    assert np.array_equal(p.data, saved)  # … and the slices put the parameters back

# %% [markdown]
# ## 2. Sharpness: the largest eigenvalue of the Hessian
#
# The curvature of a slice at α = 0 along a unit vector u is uᵀ H u, the Hessian's quadratic form;
# its largest value over all u is λ_max, reached along the top eigenvector. tinyopt's autograd has
# no second-order backward, so `landscape.top_hessian_eigenvalue` multiplies by H with central
# differences of gradients, H v ≈ (∇L(θ + h v) − ∇L(θ − h v)) / 2h, and finds λ_max by power
# iteration (v ← H v / ‖H v‖). Two checks on the trained network:
#
# - along the eigenvector, the slice's second difference (L(h) − 2 L(0) + L(−h)) / h² is λ_max;
# - along every other direction it is smaller (the Rayleigh quotient uᵀHu ≤ λ_max).

# %%
top = landscape.top_hessian_eigenvalue(loss_fn, model, rng=np.random.default_rng(0), iters=300, tol=1e-8)
print(f"λ_max = {top.value:.5f} ({top.iterations} power iterations, converged: {top.converged})")


def curvature(direction, h=1e-3):
    norm = np.sqrt(sum((d * d).sum() for d in direction))
    unit = [d / norm for d in direction]
    minus, zero, plus = landscape.surface_1d(loss_fn, model, unit, [-h, 0.0, h])
    return (plus - 2 * zero + minus) / h**2


along_top = curvature(top.vector)
along_random = [curvature(d) for d in directions]
print(f"curvature along the top eigenvector: {along_top:.5f}")
print("curvature along the random directions:", np.round(along_random, 5))
assert abs(along_top - top.value) < 1e-3 * top.value
assert all(c < top.value for c in along_random)

# %% [markdown]
# ## 3. The edge of stability
#
# On a quadratic with Hessian H, a gradient-descent step θ ← θ − η H θ multiplies the component
# of θ along each eigenvector by (1 − η λ). Along an eigenvector with λ > 2/η that factor is
# below −1: the iterate oscillates with growing amplitude and GD diverges. Classical analyses
# therefore assume η < 2/λ_max. Cohen et al. (2021, "Gradient Descent on Neural Networks
# Typically Occurs at the Edge of Stability") measured λ_max along full-batch GD on networks and
# found two phases:
#
# 1. **progressive sharpening**: λ_max rises steadily while the loss falls smoothly;
# 2. **edge of stability**: once λ_max reaches 2/η it stops rising and hovers at (or just
#    above) 2/η; the loss keeps decreasing over the long run, but no longer monotonically.
#
# Below: GD from the same start at two learning rates. λ_max is measured every few steps by
# power iteration, warm-started from the previous eigenvector (a few iterations each).

# %%
LRS = (0.4, 0.6)
EOS_STEPS = 400 if FAST else 800
EVERY = 10 if FAST else 5
eos = {}
for lr in LRS:
    net = make_model(seed=0)
    net_loss = loss_of(net)
    state = {"v": None}
    meas_rng = np.random.default_rng(1)

    def measure(t, net=net, net_loss=net_loss, state=state, meas_rng=meas_rng):
        e = landscape.top_hessian_eigenvalue(net_loss, net, rng=meas_rng, v0=state["v"], iters=30, tol=1e-3)
        state["v"] = e.vector
        return e.value

    losses, sharp = train(net, optim.SGD(net.parameters(), lr=lr), EOS_STEPS, every=EVERY, measure=measure)
    eos[lr] = dict(losses=losses, sharpness=np.array(sharp), steps=np.arange(0, EOS_STEPS, EVERY))

labels = {lr: f"GD, η = {lr}" for lr in LRS}
plot.sharpness_history(eos[LRS[0]]["steps"], {labels[lr]: eos[lr]["sharpness"] for lr in LRS},
                       {labels[lr]: lr for lr in LRS}, losses={labels[lr]: eos[lr]["losses"] for lr in LRS},
                       title="full-batch GD: λ_max rises to 2/η and stays", save=OUT / "edge_of_stability.png",
                       close=True)

summary = {}
for lr in LRS:
    s, losses, threshold = eos[lr]["sharpness"], eos[lr]["losses"], 2 / lr
    reached = int(np.argmax(s >= threshold))  # first measurement at or above 2/η
    reached_step = reached * EVERY
    late = s[-len(s) * 2 // 5:]  # the last 40 % of the run: past the first overshoot
    increases_before = np.mean(np.diff(losses[:reached_step]) > 0)
    increases_after = np.mean(np.diff(losses[reached_step:]) > 0)
    summary[lr] = dict(start=s[0] / threshold, reached=reached_step, late_median=np.median(late) / threshold,
                       late_min=late.min() / threshold, late_max=late.max() / threshold,
                       before=increases_before, after=increases_after, loss=(losses[0], losses[-1]))
    print(f"η = {lr}: 2/η = {threshold:.2f}; λ_max/(2/η) starts at {s[0] / threshold:.2f}, reaches 1 at step "
          f"{reached_step}; last 40 % of the run: median {np.median(late) / threshold:.2f}, range "
          f"[{late.min() / threshold:.2f}, {late.max() / threshold:.2f}]. Loss {losses[0]:.3f} → {losses[-1]:.3f}; "
          f"steps where the loss went up: {100 * increases_before:.0f} % before, {100 * increases_after:.0f} % after")

# %% [markdown]
# What the numbers say: each run starts well below its threshold and sharpens until λ_max
# reaches 2/η. It overshoots for a while (the unstable oscillation along the top eigenvector
# starts tiny and needs some steps at |1 − ηλ| > 1 to grow), then falls back, and from then on
# λ_max stays within a band around 2/η (slightly above it, as Cohen et al. observed for the
# square loss). The larger learning rate stops at the lower sharpness: the
# plateau is set by η, not by the network or the data. Before the edge the loss falls at every
# step; at the edge it goes up at a good fraction of steps, while still decreasing overall.
# (Why GD does not diverge at λ_max > 2/η is a property of the non-quadratic loss: the
# oscillation along the top eigenvector itself lowers λ_max again, "self-stabilisation"; Damian,
# Nichani & Lee 2023.)

# %%
for lr in LRS:
    r = summary[lr]
    assert r["start"] < 0.8  # starts well below 2/η …
    assert r["reached"] > 0  # … sharpens up to it …
    assert 0.95 < r["late_median"] < 1.3 and 0.85 < r["late_min"] and r["late_max"] < 1.5  # … and hovers there
    assert r["before"] == 0.0 and r["after"] > 0.05  # monotone before the edge, not after
    assert r["loss"][1] < 0.5 * r["loss"][0]  # and still learns
plateau_ratio = np.median(eos[LRS[0]]["sharpness"][-10:]) / np.median(eos[LRS[1]]["sharpness"][-10:])
print(f"plateau ratio {plateau_ratio:.2f}, ratio of 2/η: {LRS[1] / LRS[0]:.2f}")
assert abs(plateau_ratio / (LRS[1] / LRS[0]) - 1) < 0.2

# %% [markdown]
# ## 4. Five optimizers on one landscape
#
# All optimizers start from the same θ₀ and minimise the same full-batch loss. To draw their
# paths together we need a plane that holds them: random directions would not (in many
# dimensions, a random direction is nearly orthogonal to any path). Following Li et al. §7, we
# take the principal components of all the checkpoints θ_t − θ₀ of all runs and draw the loss on
# the plane through θ₀ spanned by the first two; each checkpoint is projected onto it. What the
# projection loses is stated as the explained variance.
#
# Five optimizers: SGD, momentum, Adam, Lion (Chen et al. 2023: the sign of a momentum, so every
# step has length γ per coordinate) and L-BFGS (a quasi-Newton method with a strong-Wolfe line
# search; it uses the closure that `train` passes to every `step`).

# %%
def optimizer_factories():
    """(name, params → optimizer) for the comparison; the learning rates suit this problem."""
    return [
        ("SGD", lambda ps: optim.SGD(ps, lr=0.3)),
        ("momentum", lambda ps: optim.SGD(ps, lr=0.03, momentum=0.9)),
        ("Adam", lambda ps: optim.Adam(ps, lr=3e-3)),
        ("Lion", lambda ps: optim.Lion(ps, lr=3e-4)),
        ("LBFGS", lambda ps: optim.LBFGS(ps, lr=1.0, max_iter=1, history_size=10, line_search_fn="strong_wolfe")),
    ]


COMPARE_STEPS = 60 if FAST else 200
theta0_model = make_model(seed=1)
theta0 = landscape.snapshot(theta0_model)
runs = {}
for name, make_optimizer in optimizer_factories():
    net = make_model(seed=1)
    checkpoints = [landscape.snapshot(net)]
    opt = make_optimizer(net.parameters())
    losses = []
    for t in range(COMPARE_STEPS):
        step_losses, _ = train(net, opt, 1)
        losses.append(step_losses[0])
        checkpoints.append(landscape.snapshot(net))
    losses.append(float(loss_of(net)().data))
    final_sharpness = landscape.sharpness(loss_of(net), net, rng=np.random.default_rng(2), iters=100, tol=1e-4)
    runs[name] = dict(checkpoints=checkpoints, losses=np.array(losses), sharpness=final_sharpness)

plane = landscape.pca_directions([ck for r in runs.values() for ck in r["checkpoints"]], center=theta0)
paths = {name: plane.coordinates(r["checkpoints"]) for name, r in runs.items()}
every_point = np.concatenate(list(paths.values()))
pad = 0.15 * (every_point.max(axis=0) - every_point.min(axis=0))
alphas_p = np.linspace(every_point[:, 0].min() - pad[0], every_point[:, 0].max() + pad[0], 15 if FAST else 31)
betas_p = np.linspace(every_point[:, 1].min() - pad[1], every_point[:, 1].max() + pad[1], 15 if FAST else 31)
z_plane = plane.surface(loss_of(theta0_model), theta0_model, alphas_p, betas_p)
ratio = plane.explained_variance_ratio
plot.loss_surface_2d(alphas_p, betas_p, z_plane, paths, xlabel=f"PC 1 ({100 * ratio[0]:.0f} % of the variance)",
                     ylabel=f"PC 2 ({100 * ratio[1]:.0f} %)", title=f"{len(runs)} optimizers from the same θ₀",
                     save=OUT / "optimizer_paths.png", close=True)

fig, ax = plt.subplots(figsize=(6, 3.8))
for name, r in runs.items():
    ax.plot(r["losses"], label=name)
ax.set_yscale("log")
ax.set_xlabel("step")
ax.set_ylabel("full-batch loss")
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig(OUT / "optimizer_losses.png", dpi=100)
plt.close(fig)

print(f"plane: {100 * ratio.sum():.1f} % of the paths' variance")
print(f"{'optimizer':10s} {'loss start':>10s} {'loss end':>9s} {'distance':>9s} {'λ_max at end':>13s}")
for name, r in runs.items():
    distance = np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(r["checkpoints"][-1], theta0)))
    r["distance"] = distance
    print(f"{name:10s} {r['losses'][0]:10.4f} {r['losses'][-1]:9.4f} {distance:9.3f} {r['sharpness']:13.3f}")

# %% [markdown]
# Reading the table and the plot: every method leaves θ₀ downhill, but not in the same
# direction and not as far. Adam divides each weight's step by that weight's gradient scale,
# and Lion steps by the *sign* of a momentum, the same size for every weight: both move weights
# with small gradients as fast as the others. GD can only settle where λ_max stays near or
# below 2/η (here 2/0.3 ≈ 6.7); Adam is not held to that bound (its step is preconditioned, so
# the limit applies to the preconditioned Hessian; Cohen et al. 2022, "Adaptive Gradient
# Methods at the Edge of Stability"), and here it ends in a sharper region than GD. A step size
# is also a choice of how sharp a region the optimizer can live in.

# %%
names = [name for name, _ in optimizer_factories()]
assert list(runs) == names and {"SGD", "momentum", "Adam"} <= set(names)
for name, r in runs.items():
    assert np.isfinite(r["losses"]).all() and r["losses"][-1] < r["losses"][0], name
    assert np.allclose(paths[name][0], 0.0, atol=1e-9), name  # every path starts at θ₀ = the plane's origin
assert 0.0 < ratio.sum() <= 1.0 + 1e-12
assert runs["SGD"]["sharpness"] < 1.5 * 2 / 0.3  # GD cannot settle where λ_max ≫ 2/η
assert runs["Adam"]["losses"][-1] < runs["SGD"]["losses"][-1]
assert runs["Adam"]["distance"] > runs["SGD"]["distance"] and runs["Adam"]["sharpness"] > runs["SGD"]["sharpness"]
for name in ("surface_1d", "surface_2d", "edge_of_stability", "optimizer_paths", "optimizer_losses"):
    assert (OUT / f"{name}.png").stat().st_size > 1000, name
print("optimizers compared:", ", ".join(names))
print("all checks passed")

# %% [markdown]
# ## Exercises (graded by `tinyopt check 12`)
#
# Li et al.'s filter normalisation (each filter of the random direction rescaled to the norm of the
# same filter of the weights, d_i ← d_i / ‖d_i‖ · ‖w_i‖; biases and other 1-D parameters set to 0),
# and power iteration for the largest-magnitude eigenvalue of a symmetric operator.

# %%
from tinyopt import landscape  # noqa: E402

def filter_normalize_direction(direction, weights):
    """Li et al. 2018's filter-normalised copy of `direction` (lists of arrays shaped like the weights)."""
    # BEGIN SOLUTION filter_normalize_direction
    out = []
    for d, w in zip(direction, weights):
        if w.ndim <= 1:
            out.append(np.zeros_like(d))
            continue
        d2, w2 = d.reshape(len(d), -1), w.reshape(len(w), -1)
        scale = np.linalg.norm(w2, axis=1) / (np.linalg.norm(d2, axis=1) + 1e-10)
        out.append((d2 * scale[:, None]).reshape(d.shape))
    return out
    # END SOLUTION


def power_iteration(matvec, v, iters=100):
    """The eigenvalue of largest magnitude of the symmetric operator `matvec`, from start vector v."""
    # BEGIN SOLUTION power_iteration
    v = v / np.linalg.norm(v)
    lam = 0.0
    for _ in range(iters):
        w = matvec(v)
        lam = float(v @ w)
        v = w / np.linalg.norm(w)
    return lam
    # END SOLUTION


_ws = [np.random.default_rng(5).standard_normal((4, 3, 2, 2)), np.random.default_rng(6).standard_normal(4)]
_ds_ = [np.random.default_rng(7).standard_normal((4, 3, 2, 2)), np.random.default_rng(8).standard_normal(4)]
_lib = landscape.filter_normalize(_ds_, _ws)
assert all(np.allclose(a, np.asarray(b), atol=1e-8) for a, b in zip(filter_normalize_direction(_ds_, _ws), _lib))
_A = np.diag([3.0, -1.0, 0.5])
assert abs(power_iteration(lambda x: _A @ x, np.ones(3), 200) - 3.0) < 1e-6
