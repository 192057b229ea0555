"""Numba kernels for the hot loops, each beside its readable NumPy reference twin.

Installed as `tinyopt.kernels`; plain functions on NumPy arrays that never import tinyopt.
`TINYOPT_KERNELS=reference` (or `set_backend("reference")`) routes every op to the references.
"""
from .backend import backend, dispatch, get_backend, set_backend

__all__ = ["backend", "dispatch", "get_backend", "set_backend"]
