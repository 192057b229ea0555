"""Check analytical gradients against central differences.

For f: inputs → output and a random cotangent v (same shape as the output), autograd gives
∂(v·f)/∂x.  Central differences give, element by element,

    ∂(v·f)/∂x_i ≈ (v·f(x + ε e_i) − v·f(x − ε e_i)) / (2ε).

A random v (not `.sum()`) catches gradients that are wrong only in some output directions.
Inputs must be float64: in float32, ε = 1e-6 is below the rounding error of the forward pass.
"""
from __future__ import annotations

import numpy as np

from tinyopt.autograd.grad_mode import no_grad
from tinyopt.tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when an analytical gradient disagrees with central differences."""


def _as_tensors(inputs):
    if isinstance(inputs, Tensor):
        return (inputs,)
    return tuple(inputs)


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              seed: int = 0, raise_exception: bool = True) -> bool:
    """Compare autograd's gradient of `fn(*inputs)` with central differences.

    Every Tensor in `inputs` with `requires_grad=True` is checked; they must be float64.
    Passes when |analytic − numeric| ≤ atol + rtol·|numeric| for every element.  On failure,
    raises `GradcheckError` naming the input, the worst element, both values and the error
    (or returns False when `raise_exception=False`).
    """
    tensors = _as_tensors(inputs)
    checked = [i for i, t in enumerate(tensors) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")
    for i in checked:
        if tensors[i].dtype != np.float64:
            raise ValueError(
                f"gradcheck: input {i} is {tensors[i].dtype}; use float64 "
                "(to.tensor(x, dtype=np.float64, requires_grad=True)): central differences "
                "with eps=1e-6 drown in float32 rounding"
            )

    rng = np.random.default_rng(seed)
    output = fn(*tensors)
    cotangent = rng.standard_normal(output.shape)

    for t in tensors:
        if isinstance(t, Tensor):
            t.grad = None
    (output * Tensor(cotangent, dtype=np.float64)).sum().backward()
    analytic = {i: (np.asarray(tensors[i].grad) if tensors[i].grad is not None else np.zeros(tensors[i].shape)) for i in checked}

    def projected(values) -> float:
        return float(np.sum(values * cotangent))

    with no_grad():
        for i in checked:
            x = tensors[i].data
            numeric = np.zeros(x.shape)
            # Index element by element (not through a flat view) so non-contiguous inputs,
            # e.g. a transposed array, are perturbed in place too.
            for k in np.ndindex(x.shape):
                original = x[k]
                x[k] = original + eps
                plus = projected(fn(*tensors).data)
                x[k] = original - eps
                minus = projected(fn(*tensors).data)
                x[k] = original
                numeric[k] = (plus - minus) / (2 * eps)
            error = np.abs(analytic[i] - numeric)
            bound = atol + rtol * np.abs(numeric)
            if np.any(error > bound) or not np.all(np.isfinite(analytic[i])):
                worst = np.unravel_index(np.argmax(error - bound), x.shape)
                message = (
                    f"gradcheck failed for input {i} (shape {x.shape}) at element {tuple(int(w) for w in worst)}: "
                    f"analytic {analytic[i][worst]:.10g}, numeric {numeric[worst]:.10g}, "
                    f"|error| {error[worst]:.3g} > atol + rtol·|numeric| = {bound[worst]:.3g} "
                    f"({int(np.sum(error > bound))} of {x.size} elements out of tolerance)"
                )
                if raise_exception:
                    raise GradcheckError(message)
                return False
    return True
