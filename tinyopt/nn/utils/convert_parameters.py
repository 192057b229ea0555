"""Flatten parameters into one vector and back (torch.nn.utils.parameters_to_vector /
vector_to_parameters): handy for line searches, second-order methods and plotting loss
landscapes along a direction."""
from __future__ import annotations

import numpy as np

from tinyopt.functions import cat as concatenate
from tinyopt.tensor import Tensor


def parameters_to_vector(parameters) -> Tensor:
    """Concatenate the flattened parameters into one 1-d Tensor θ = (vec(θ⁽¹⁾), …, vec(θ⁽ᵏ⁾)).

    The result is part of the autograd graph (reshape + concatenate), so a loss computed from it
    backpropagates into the parameters, as in PyTorch.
    """
    parameters = list(parameters)
    if not parameters:
        raise ValueError("parameters_to_vector() got no parameters")
    return concatenate([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec, parameters) -> None:
    """Copy consecutive slices of the 1-d `vec` into the parameters' data, in order (the
    inverse of `parameters_to_vector`).

    Unlike PyTorch, which makes each parameter a view into `vec`, tinyopt copies the values
    into each parameter's existing array: later changes to `vec` do not leak into the model.
    Raises ValueError unless `vec` has exactly as many elements as the parameters together.
    """
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected a tinyopt Tensor, but got: {type(vec).__name__}")
    parameters = list(parameters)
    values = np.ravel(vec.data)
    expected = sum(p.numel() for p in parameters)
    if vec.ndim != 1 or values.size != expected:
        raise ValueError(
            f"vector_to_parameters: vec has shape {vec.shape} but the parameters have {expected} elements in all "
            f"(shapes {[p.shape for p in parameters]})")
    pointer = 0
    for p in parameters:
        n = p.numel()
        p.data[...] = values[pointer:pointer + n].reshape(p.shape)
        pointer += n
