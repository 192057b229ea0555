"""Numba kernels for the hot loops, each beside its readable NumPy reference twin.

Installed as `tinyopt.kernels`; plain functions on NumPy arrays that never import tinyopt.
`TINYOPT_KERNELS=reference` (or `set_backend("reference")`) routes every op to the references.

The public int8 kernels are importable by name (`from tinyopt.kernels import matmul_int8` is the
function); their modules are `gemm_int8` (exact int8 × int8 GEMM), `gemm_u8s8` (exact u8 × s8
GEMM: vpmaddubsw for 7-bit activations, VNNI), `conv_int8` (int8 convolution and pooling; its
fused convolution + requantize + pool has two more VNNI layouts in `conv_int8_channels` and
`conv_int8_sliding`, and reads its padded uint8 input from `conv_input_u8`), `linear_int8` (the
integer Linear, GEMM and requantization fused) and `fixed_point` (requantization by a
fixed-point multiplier).
"""
from .backend import backend, dispatch, get_backend, set_backend
from .conv_int8 import conv2d_int8, conv2d_int8_acc, max_pool2d_int8, requantize_pool_nchw
from .fixed_point import quantize_multiplier, requantize
from .gemm_int8 import PackedB, int8_kernel_info, matmul_int8, pack_b
from .gemm_u8s8 import PackedU8S8, matmul_u8s8, pack_b_u8s8, u8s8_kernel_info

__all__ = ["backend", "dispatch", "get_backend", "set_backend"]
__all__ += ["PackedB", "conv2d_int8", "conv2d_int8_acc", "int8_kernel_info", "matmul_int8", "max_pool2d_int8",
            "pack_b", "quantize_multiplier", "requantize", "requantize_pool_nchw"]
__all__ += ["PackedU8S8", "matmul_u8s8", "pack_b_u8s8", "u8s8_kernel_info"]
