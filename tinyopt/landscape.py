"""The loss landscape an optimizer moves on: surfaces along directions, trajectories, sharpness.

Everything here takes `loss_fn`, a function of no arguments that returns the loss (a Tensor or a
number) at the parameters' *current* values, and `params`, a Module or a list of parameter
Tensors. The functions move the parameters to the points they evaluate and always put them back
(values and `.grad`), also when `loss_fn` raises.

**Surfaces** (Li, Xu, Taylor, Studer, Goldstein, "Visualizing the Loss Landscape of Neural Nets",
NeurIPS 2018). Around a point θ*, plot

    f(α) = L(θ* + α δ)               (1-D, `surface_1d`)
    f(α, β) = L(θ* + α δ + β η)      (2-D, `surface_2d`)

along random Gaussian directions δ, η. A network's loss does not change when a ReLU layer's filter
is scaled by c and the next layer's by 1/c, so a raw random direction means different things for
filters of different norms; Li et al. therefore *filter-normalise* it (`random_direction`):

    δ_{i,j} ← δ_{i,j} / ‖δ_{i,j}‖ · ‖θ_{i,j}‖     for filter j of layer i

(a filter is one slice along the first axis: a Conv2d output channel, a Linear output row; so the
normalised direction has each filter's norm, hence each layer's norm, of the weights). One-
dimensional parameters (biases, BatchNorm's γ and β) get δ = 0 by default, as in the paper's code
(`ignore="biasbn"`); `ignore=None` gives them δ = θ instead (their code's other choice).

**Trajectories** (Li et al. §7). Random directions in a space of many dimensions are nearly
orthogonal to the path an optimizer takes, so a path projected on them looks like noise.
`pca_directions(checkpoints)` instead takes the matrix of θ_i − θ_center over the checkpoints
θ_0, ..., θ_n of a run (θ_center = θ_n by default, as in the paper; no further mean-centring) and
uses its two leading principal directions; `coordinates` projects any checkpoints on them (the
part of a step off that plane is not shown; `explained_variance_ratio` says how much of the path
the plane holds).

**Sharpness** (Cohen, Kaur, Li, Kolter, Talwalkar, "Gradient Descent on Neural Networks
Typically Occurs at the Edge of Stability", ICLR 2021): the largest eigenvalue λ_max of the
Hessian ∇²L(θ). `top_hessian_eigenvalue` finds it by power iteration on Hessian-vector products,
and the products are **finite differences of gradients** (tinyopt's autograd has no second-order
backward):

    H v ≈ (∇L(θ + h v̂) − ∇L(θ − h v̂)) / (2h) · ‖v‖,     v̂ = v / ‖v‖

central differences, exact for a quadratic and O(h²) off otherwise; the default step is
h = ε_mach^{1/3} · (1 + rms(θ)) (≈ 6e-6 in float64; rms(θ) = ‖θ‖/√P over the P parameters),
which balances that error against the rounding of the two gradients. Use float64 parameters for
these measurements (float32 gradients leave ~1e-7 relative noise, amplified by 1/h).
Power iteration converges to the eigenvalue of largest *magnitude*; when that one is negative
(a saddle), the iteration is repeated on H − λ I, whose largest-magnitude eigenvalue is then
λ_max − λ, so the result is always the largest (algebraic) eigenvalue.

Gradient descent on a quadratic with Hessian H, θ ← θ − η H θ, multiplies the component along
each eigenvector by (1 − η λ): it diverges along any direction with λ > 2/η. Cohen et al. found
that full-batch GD on a network first raises λ_max ("progressive sharpening") until it reaches
2/η and then keeps it hovering there while the loss still decreases, non-monotonically: the
"edge of stability". Lesson 12 (tutorials/12_loss_landscape.py) reproduces it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tinyopt.autograd import enable_grad, no_grad
from tinyopt.dtypes import finfo, is_floating_point
from tinyopt.tensor import Tensor

IGNORE_CHOICES = ("biasbn", None)
NORM_CHOICES = ("filter", "layer", None)


# ============================================================================ parameters as vectors
def _params(model_or_params) -> list:
    params = list(model_or_params.parameters()) if hasattr(model_or_params, "parameters") else list(model_or_params)
    if not params:
        raise ValueError("no parameters given")
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(f"expected a Module or a list of Tensors, got an element of type {type(p).__name__}")
    return params


def _array(x) -> np.ndarray:
    return np.asarray(x.data) if isinstance(x, Tensor) else np.asarray(x)


def snapshot(model_or_params) -> list:
    """Copies of the parameters' current values (one checkpoint of a trajectory)."""
    return [np.array(p.data, copy=True) for p in _params(model_or_params)]


def _check_like(params, arrays, what: str) -> list:
    arrays = [np.asarray(a) for a in arrays]
    if len(arrays) != len(params):
        raise ValueError(f"{what} has {len(arrays)} arrays, the model has {len(params)} parameters")
    for i, (p, a) in enumerate(zip(params, arrays)):
        if a.shape != p.shape:
            raise ValueError(f"{what}[{i}] has shape {a.shape}, parameter {i} has shape {p.shape}")
    return arrays


def _flatten(arrays) -> np.ndarray:
    return np.concatenate([np.ravel(a).astype(np.float64) for a in arrays])


def _unflatten(vector, like) -> list:
    out, start = [], 0
    for a in like:
        size = int(np.prod(a.shape))
        out.append(vector[start:start + size].reshape(a.shape))
        start += size
    return out


class _Restore:
    """Context manager: put every parameter's value and gradient back on exit."""

    def __init__(self, params):
        self.params = params

    def __enter__(self):
        self.saved = [(np.array(p.data, copy=True), p.grad) for p in self.params]
        return self

    def __exit__(self, *exc):
        for p, (data, grad) in zip(self.params, self.saved):
            p.data[...] = data
            p.grad = grad


def _set(params, center, directions, coefficients) -> None:
    for i, p in enumerate(params):
        value = np.array(center[i], dtype=np.float64)
        for d, c in zip(directions, coefficients):
            value = value + c * d[i]
        p.data[...] = value


def _loss_value(loss_fn) -> float:
    with no_grad():
        loss = loss_fn()
    return float(_array(loss))


# ============================================================================ directions
def filter_normalize(direction, weights, norm: str | None = "filter", ignore: str | None = "biasbn") -> list:
    """Rescale `direction` (a list of arrays shaped like `weights`) as Li et al. do.

    norm="filter": each filter (slice along axis 0) of a ≥2-D parameter gets the norm of the same
    filter of the weights; "layer": each whole parameter gets the weights' norm; None: unchanged.
    ignore="biasbn": 1-D parameters (biases, BatchNorm) get 0; None: they get the weights
    themselves (δ = θ). Returns new arrays."""
    if norm not in NORM_CHOICES:
        raise ValueError(f"norm must be one of {NORM_CHOICES}, got {norm!r}")
    if ignore not in IGNORE_CHOICES:
        raise ValueError(f"ignore must be one of {IGNORE_CHOICES}, got {ignore!r}")
    weights = [np.asarray(_array(w), dtype=np.float64) for w in weights]
    direction = [np.asarray(d, dtype=np.float64) for d in direction]
    if len(direction) != len(weights):
        raise ValueError(f"direction has {len(direction)} arrays, weights {len(weights)}")
    out = []
    for i, (d, w) in enumerate(zip(direction, weights)):
        if d.shape != w.shape:
            raise ValueError(f"direction[{i}] has shape {d.shape}, weight {i} has shape {w.shape}")
        if w.ndim <= 1:
            out.append(np.zeros_like(w) if ignore == "biasbn" else w.copy())
        elif norm == "filter":
            axes = tuple(range(1, d.ndim))
            d_norm = np.sqrt((d * d).sum(axis=axes, keepdims=True))
            w_norm = np.sqrt((w * w).sum(axis=axes, keepdims=True))
            out.append(d * (w_norm / np.maximum(d_norm, 1e-10)))
        elif norm == "layer":
            out.append(d * (np.linalg.norm(w) / max(np.linalg.norm(d), 1e-10)))
        else:
            out.append(d.copy())
    return out


def random_direction(model_or_params, rng: np.random.Generator, norm: str | None = "filter",
                     ignore: str | None = "biasbn") -> list:
    """A Gaussian direction δ ~ N(0, I) shaped like the parameters, drawn from `rng` and
    `filter_normalize`d against their current values (Li et al. 2018)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be an np.random.Generator, got {type(rng).__name__}")
    params = _params(model_or_params)
    raw = [rng.standard_normal(p.shape) for p in params]
    return filter_normalize(raw, [p.data for p in params], norm=norm, ignore=ignore)


# ============================================================================ surfaces
def surface_1d(loss_fn, model_or_params, direction, alphas, center=None) -> np.ndarray:
    """f(α) = L(center + α δ) for each α in `alphas` (center: the current parameters)."""
    params = _params(model_or_params)
    direction = _check_like(params, direction, "direction")
    alphas = np.asarray(alphas, dtype=np.float64).ravel()
    with _Restore(params) as saved:
        center = [d for d, _ in saved.saved] if center is None else _check_like(params, center, "center")
        out = np.empty(len(alphas))
        for k, a in enumerate(alphas):
            _set(params, center, [direction], [a])
            out[k] = _loss_value(loss_fn)
    return out


def surface_2d(loss_fn, model_or_params, d1, d2, alphas, betas, center=None) -> np.ndarray:
    """Z[j, i] = L(center + α_i d1 + β_j d2): rows follow `betas`, columns `alphas` (matplotlib's
    contour(alphas, betas, Z) convention). center: the current parameters by default."""
    params = _params(model_or_params)
    d1, d2 = _check_like(params, d1, "d1"), _check_like(params, d2, "d2")
    alphas = np.asarray(alphas, dtype=np.float64).ravel()
    betas = np.asarray(betas, dtype=np.float64).ravel()
    with _Restore(params) as saved:
        center = [d for d, _ in saved.saved] if center is None else _check_like(params, center, "center")
        z = np.empty((len(betas), len(alphas)))
        for j, b in enumerate(betas):
            for i, a in enumerate(alphas):
                _set(params, center, [d1, d2], [a, b])
                z[j, i] = _loss_value(loss_fn)
    return z


# ============================================================================ trajectories
@dataclass
class Plane:
    """A 2-D plane in parameter space: `center` + α d1 + β d2 (lists of arrays, parameter-shaped).

    `explained_variance_ratio`: for a PCA plane, the share of Σ‖θ_i − center‖² along d1 and d2."""

    center: list
    d1: list
    d2: list
    explained_variance_ratio: np.ndarray | None = None

    def coordinates(self, checkpoints) -> np.ndarray:
        """(α, β) of each checkpoint: the least-squares solution of θ_i − center ≈ α d1 + β d2
        (an orthogonal projection; for orthonormal d1, d2 simply the dot products). Shape (T, 2)."""
        basis = np.stack([_flatten(self.d1), _flatten(self.d2)], axis=1)
        c = _flatten(self.center)
        rows = np.stack([_flatten(_check_like(self.center, ck, f"checkpoint {i}")) - c
                         for i, ck in enumerate(checkpoints)])
        coords, *_ = np.linalg.lstsq(basis, rows.T, rcond=None)
        return coords.T

    def surface(self, loss_fn, model_or_params, alphas, betas) -> np.ndarray:
        """`surface_2d` on this plane."""
        return surface_2d(loss_fn, model_or_params, self.d1, self.d2, alphas, betas, center=self.center)


def pca_directions(checkpoints, center=None) -> Plane:
    """The plane through `center` (default: the last checkpoint, as Li et al.) spanned by the two
    leading principal directions of θ_i − center over `checkpoints` (lists of parameter arrays,
    e.g. from `snapshot`; several runs' checkpoints may be concatenated to put them on one plane).
    d1 and d2 are orthonormal in the flattened parameter space."""
    checkpoints = list(checkpoints)
    if len(checkpoints) < 3:
        raise ValueError(f"need at least 3 checkpoints for two principal directions, got {len(checkpoints)}")
    like = [np.asarray(a, dtype=np.float64) for a in checkpoints[-1]]
    center = like if center is None else [np.asarray(a, dtype=np.float64) for a in _check_like(like, center, "center")]
    c = _flatten(center)
    m = np.stack([_flatten(_check_like(like, ck, f"checkpoint {i}")) - c for i, ck in enumerate(checkpoints)])
    _, s, vt = np.linalg.svd(m, full_matrices=False)
    total = float((s**2).sum())
    if total == 0.0:
        raise ValueError("all checkpoints equal the center: the trajectory did not move")
    ratio = (s[:2] ** 2) / total
    return Plane(center=[a.copy() for a in center], d1=_unflatten(vt[0], like), d2=_unflatten(vt[1], like),
                 explained_variance_ratio=ratio)


# ============================================================================ sharpness
def gradient(loss_fn, model_or_params) -> tuple:
    """(loss, [∂L/∂θ_i as float64 arrays]) at the current parameters; `.grad` is left as it was."""
    params = _params(model_or_params)
    with _Restore(params):
        return _gradient(loss_fn, params)


def _gradient(loss_fn, params):
    for p in params:
        p.grad = None
    with enable_grad():
        loss = loss_fn()
        loss.backward()
    grads = [np.zeros(p.shape) if p.grad is None else np.array(_array(p.grad), dtype=np.float64) for p in params]
    return float(_array(loss)), grads


def _default_step(params) -> float:
    theta = _flatten([p.data for p in params])
    dtype = np.result_type(*[p.data.dtype for p in params])
    eps = float(finfo(dtype).eps) if is_floating_point(dtype) else np.finfo(np.float64).eps
    return float(eps ** (1 / 3) * (1 + np.linalg.norm(theta) / math.sqrt(theta.size)))


def hessian_vector_product(loss_fn, model_or_params, v, h: float | None = None) -> list:
    """H v by central differences of gradients: (∇L(θ + h v̂) − ∇L(θ − h v̂)) / (2h) · ‖v‖ (see the
    module docstring for h). `v` is a list of parameter-shaped arrays; returns the same."""
    params = _params(model_or_params)
    v = _check_like(params, v, "v")
    with _Restore(params) as saved:
        return _hvp(loss_fn, params, [d for d, _ in saved.saved], v, h)


def _hvp(loss_fn, params, center, v, h):
    norm = float(np.linalg.norm(_flatten(v)))
    if norm == 0.0:
        return [np.zeros(p.shape) for p in params]
    h = _default_step(params) if h is None else float(h)
    unit = [a / norm for a in v]
    _set(params, center, [unit], [h])
    _, g_plus = _gradient(loss_fn, params)
    _set(params, center, [unit], [-h])
    _, g_minus = _gradient(loss_fn, params)
    _set(params, center, [], [])
    return [(gp - gm) * (norm / (2 * h)) for gp, gm in zip(g_plus, g_minus)]


def _power_iteration(apply, v, iters, tol):
    """Largest-magnitude eigenvalue of the symmetric operator `apply` (on flat vectors), from v."""
    v = v / np.linalg.norm(v)
    eigenvalue, converged = 0.0, False
    for k in range(iters):
        w = apply(v)
        new = float(v @ w)  # Rayleigh quotient (‖v‖ = 1)
        norm = float(np.linalg.norm(w))
        if norm == 0.0:
            return 0.0, v, k + 1, True
        v = w / norm
        if k > 0 and abs(new - eigenvalue) <= tol * max(abs(new), 1e-30):
            eigenvalue, converged = new, True
            break
        eigenvalue = new
    return eigenvalue, v, k + 1, converged


@dataclass
class Eigenpair:
    """λ_max of the Hessian, its eigenvector (parameter-shaped arrays), and how it was found."""

    value: float
    vector: list
    iterations: int
    converged: bool

    def __float__(self) -> float:
        return self.value


def top_hessian_eigenvalue(loss_fn, model_or_params, iters: int = 100, tol: float = 1e-5,
                           rng: np.random.Generator | None = None, v0=None, h: float | None = None) -> Eigenpair:
    """The largest eigenvalue of ∇²L at the current parameters, by power iteration on finite-
    difference Hessian-vector products (module docstring). Start from `v0` (e.g. the previous
    eigenvector, to track λ_max along a run cheaply) or from a Gaussian vector drawn from `rng`
    (required when v0 is None). Stops when the Rayleigh quotient changes by ≤ tol relatively."""
    params = _params(model_or_params)
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    if v0 is None:
        if not isinstance(rng, np.random.Generator):
            raise TypeError("top_hessian_eigenvalue needs rng=np.random.Generator (or a start vector v0)")
        start = rng.standard_normal(sum(int(np.prod(p.shape)) for p in params))
    else:
        start = _flatten(_check_like(params, v0, "v0"))
    like = [p.data for p in params]
    with _Restore(params) as saved:
        center = [d for d, _ in saved.saved]

        def hv(x):
            return _flatten(_hvp(loss_fn, params, center, _unflatten(x, like), h))

        value, vector, used, converged = _power_iteration(hv, start, iters, tol)
        if value < 0:  # a negative eigenvalue dominates: shift it to 0 and find λ_max − value
            shifted, vector, more, converged = _power_iteration(lambda x: hv(x) - value * x, start, iters, tol)
            value, used = shifted + value, used + more
    return Eigenpair(value, _unflatten(vector, like), used, converged)


def sharpness(loss_fn, model_or_params, **kwargs) -> float:
    """λ_max(∇²L) at the current parameters (`top_hessian_eigenvalue(...).value`)."""
    return top_hessian_eigenvalue(loss_fn, model_or_params, **kwargs).value


__all__ = ["Eigenpair", "Plane", "filter_normalize", "gradient", "hessian_vector_product", "pca_directions",
           "random_direction", "sharpness", "snapshot", "surface_1d", "surface_2d", "top_hessian_eigenvalue"]
