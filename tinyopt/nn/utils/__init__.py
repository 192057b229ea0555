"""Gradient and parameter utilities, with torch.nn.utils' names: gradient clipping, flattening
parameters to one vector, and L1/L2 penalty terms for the loss."""
from tinyopt.nn.utils.clip_grad import (
    clip_grad_norm, clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm,
)
from tinyopt.nn.utils.convert_parameters import parameters_to_vector, vector_to_parameters
from tinyopt.nn.utils.regularization import l1_penalty, l2_penalty

__all__ = [
    "clip_grad_norm", "clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm",
    "l1_penalty", "l2_penalty", "parameters_to_vector", "vector_to_parameters",
]
from tinyopt.nn.utils import prune  # noqa: E402 - torch.nn.utils.prune

from tinyopt.nn.utils import rnn  # noqa: E402 - nn.utils.rnn: pad / pack / unpack variable-length batches

__all__ += ["rnn"]
