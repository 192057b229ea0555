"""`Parameter`: a leaf Tensor that a Module registers as learnable (requires_grad=True)."""
from __future__ import annotations

from tinyopt.tensor import Tensor


class Parameter(Tensor):
    def __init__(self, data, requires_grad: bool = True, dtype=None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
