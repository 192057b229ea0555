r"""Gradient clipping, with torch.nn.utils' names, arguments and semantics.

Clipping by norm (`clip_grad_norm_`) treats the gradients of all parameters as one long vector
g = (g⁽¹⁾, …, g⁽ᵏ⁾) and rescales it when its p-norm exceeds `max_norm`:

    ‖g‖_p = ‖(‖g⁽¹⁾‖_p, …, ‖g⁽ᵏ⁾‖_p)‖_p                 (the norm of the per-parameter norms)
    c = min(max_norm / (‖g‖_p + 10⁻⁶), 1)
    g⁽ʲ⁾ ← c · g⁽ʲ⁾   for every j                         (the direction is kept)

with ‖x‖_p = (Σ_i |x_i|^p)^{1/p}, ‖x‖_∞ = max_i |x_i|, ‖x‖_{−∞} = min_i |x_i|, and ‖x‖_0 = the
number of non-zero x_i (so with p = 0 the total, a norm of norms, counts the parameters whose
gradient is not all zero — PyTorch's semantics). The 10⁻⁶ (PyTorch's) keeps c finite when every gradient is zero; it
also makes the clipped norm slightly below `max_norm`.

Clipping by value (`clip_grad_value_`) clamps every element: g_i ← min(max(g_i, −v), v); it
changes the direction of g.

Both modify `.grad` in place (the same arrays the optimizer will read) and ignore parameters
whose `.grad` is None. The `foreach` argument is accepted for PyTorch compatibility and ignored
(NumPy has one CPU implementation).
"""
from __future__ import annotations

import math
import types
import warnings

import numpy as np

from tinyopt.tensor import Tensor


def _as_list(tensors) -> list:
    if isinstance(tensors, Tensor):
        return [tensors]
    is_generator = isinstance(tensors, types.GeneratorType)
    tensors = list(tensors)
    if is_generator and not tensors:
        warnings.warn("`parameters` is an empty generator, no gradient clipping will occur.", stacklevel=3)
    return tensors


def _vector_norm(x: np.ndarray, p: float):
    """‖x‖_p of the flattened array, in x's dtype (a NumPy scalar)."""
    x = np.ravel(x)
    if p == 2:
        return np.sqrt(np.dot(x, x))  # no |x| needed: saves a pass over memory on the common path
    a = np.abs(x)
    if p == math.inf:
        return a.max(initial=0).astype(a.dtype)
    if p == -math.inf:
        if a.size == 0:
            raise RuntimeError("the -inf norm of an empty gradient is undefined")
        return a.min()
    if p == 0:
        return a.dtype.type(np.count_nonzero(a))
    if p == 1:
        return a.sum(dtype=a.dtype)
    return np.power(np.sum(np.power(a, p)), 1.0 / p).astype(a.dtype)


def get_total_norm(tensors, norm_type: float = 2.0, error_if_nonfinite: bool = False, foreach=None) -> Tensor:
    r"""‖(‖t⁽¹⁾‖_p, …, ‖t⁽ᵏ⁾‖_p)‖_p for ndarrays (or Tensors) t⁽ʲ⁾: the p-norm of all of them
    viewed as one vector. Returns a 0-d Tensor (0.0 for no tensors).

    Raises RuntimeError when the norm is nan or ±inf and `error_if_nonfinite` is True.
    """
    arrays = [t.data if isinstance(t, Tensor) else np.asarray(t) for t in _as_list(tensors)]
    p = float(norm_type)
    if not arrays:
        return Tensor(np.array(0.0, dtype=np.float32))
    dtype = np.result_type(*arrays)
    norms = np.array([_vector_norm(a, p) for a in arrays], dtype=dtype)
    total = _vector_norm(norms, p)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {p} for gradients from `parameters` is non-finite, so it cannot be clipped. "
            "To disable this error and scale the gradients by the non-finite norm anyway, "
            "set `error_if_nonfinite=False`")
    return Tensor(np.asarray(total, dtype=dtype))


def clip_grads_with_norm_(parameters, max_norm: float, total_norm, foreach=None) -> None:
    r"""Scale every `.grad` by c = min(max_norm / (total_norm + 10⁻⁶), 1), given the total norm
    (e.g. from `get_total_norm`, possibly reduced across workers). In place."""
    grads = [np.asarray(p.grad) for p in _as_list(parameters) if p.grad is not None]
    if not grads:
        return
    total = np.asarray(total_norm.data if isinstance(total_norm, Tensor) else total_norm)
    c = np.minimum(float(max_norm) / (total + 1e-6), 1.0).astype(total.dtype)
    for g in grads:
        np.multiply(g, c.astype(g.dtype), out=g)


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach=None) -> Tensor:
    r"""Rescale the gradients so that their total p-norm is at most `max_norm` (see the module
    docstring for the formula); returns the total norm *before* clipping, as a 0-d Tensor.

    Args:
        parameters: a Tensor or an iterable of Tensors (e.g. `model.parameters()`).
        max_norm: the largest allowed total norm.
        norm_type: p (default 2.0; `math.inf` for the max-norm).
        error_if_nonfinite: raise RuntimeError if the total norm is nan or ±inf (otherwise the
            gradients are scaled by the non-finite norm, as in PyTorch, and become nan/0).
    """
    parameters = _as_list(parameters)
    grads = [p.grad for p in parameters if p.grad is not None]
    total_norm = get_total_norm(grads, norm_type, error_if_nonfinite)
    clip_grads_with_norm_(parameters, max_norm, total_norm)
    return total_norm


def clip_grad_norm(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                   foreach=None) -> Tensor:
    """Deprecated alias of `clip_grad_norm_` (as in PyTorch)."""
    warnings.warn("`clip_grad_norm` is now deprecated in favor of `clip_grad_norm_`.", FutureWarning, stacklevel=2)
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite)


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    r"""Clamp every gradient element to [−clip_value, clip_value], in place: g_i ← min(max(g_i, −v), v)."""
    v = float(clip_value)
    for p in _as_list(parameters):
        if p.grad is not None:
            g = np.asarray(p.grad)
            np.clip(g, -v, v, out=g)
