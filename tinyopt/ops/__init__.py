"""Every differentiable op of tinyopt: `Function` subclasses whose forward and backward stand next
to each other and work on NumPy arrays (hot loops call `tinyopt.kernels`).

Users call them through `Tensor` methods and `tinyopt.nn.functional`, never directly.

    elementwise  arithmetic, unary functions, activations, clamp, where, cast
    linalg       matmul
    reduce       sum, mean, amax, prod, cumsum, gather, 2-norm
    shape        reshape, permute, indexing (read and write), cat, expand, repeat, pad
    nn           softmax, log-softmax, linear, cross-entropy (fused)
    conv_pool    conv2d, max/avg/adaptive pooling, and their geometry checks
    resample     interpolate (nearest, bilinear)
    dims         the one dim-normalising helper every dim argument goes through
    quant        fake quantization (straight-through estimator) for quantization-aware training
    distributed  differentiable collectives (all-reduce, tensor-parallel copy/reduce/gather/scatter)
    recurrent    RNN / LSTM / GRU layers (one direction, all steps in one node, explicit BPTT)
    embedding    embedding lookup (row gather, scatter-add backward)
    batchnorm    batch normalisation in training mode (one kernel forward, one backward)
"""
from tinyopt.ops import conv_pool, dims, elementwise, linalg, nn, reduce, resample, shape
from tinyopt.ops import quant

__all__ = ["conv_pool", "dims", "elementwise", "linalg", "nn", "reduce", "resample", "shape", "quant"]
from tinyopt.ops import distributed  # noqa: E402

__all__ += ["distributed"]
from tinyopt.ops import embedding, recurrent  # noqa: E402

__all__ += ["embedding", "recurrent"]
from tinyopt.ops import batchnorm  # noqa: E402

__all__ += ["batchnorm"]
