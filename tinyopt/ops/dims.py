"""One place that turns a `dim` argument into axis numbers, refusing out-of-range values.

NumPy raises for an axis out of range and so does torch; a bare `axis % ndim` would silently wrap
(`stack(..., dim=-5)` on 1-D inputs would pick axis 1). Every dim argument in tinyopt goes through
`normalize_dim` / `normalize_dims`.
"""
from __future__ import annotations

import numbers


def normalize_dim(dim, ndim: int, where: str = "") -> int:
    """`dim` in [−ndim, ndim) → [0, ndim); IndexError (torch's message) otherwise. A 0-d tensor
    accepts dim 0 and −1, as torch does."""
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{where + ': ' if where else ''}dim must be an int, got {type(dim).__name__} {dim!r}")
    size = max(ndim, 1)
    if not -size <= dim < size:
        raise IndexError(
            f"{where + ': ' if where else ''}Dimension out of range (expected to be in range of "
            f"[{-size}, {size - 1}], but got {dim})"
        )
    return int(dim) % size if ndim else 0


def normalize_dims(dim, ndim: int, where: str = "") -> tuple:
    """None → every axis; an int or a sequence of ints → sorted, distinct axes in [0, ndim)."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
    axes = tuple(sorted({normalize_dim(d, ndim, where) for d in dims}))
    if len(axes) != len(dims):
        raise RuntimeError(f"{where + ': ' if where else ''}dim {tuple(dims)} appears multiple times in the list of dims")
    return axes if ndim else ()
