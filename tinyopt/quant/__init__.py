"""Quantization: affine int8/low-bit mapping, observers, fake quantization (QAT), and workflows.

See `tinyopt.quant.affine` for the math (r = S (q − Z)), `tinyopt.quant.observer` for how (S, Z)
are chosen, `tinyopt.quant.fake_quantize` for the straight-through estimator, and
`tinyopt.kernels.matmul_int8` / `tinyopt.kernels.requantize` (modules `gemm_int8`, `fixed_point`)
for the integer-only kernels.
"""
from tinyopt.quant.affine import (
    QDTYPES, QDtype, QTensor, as_qdtype, choose_qparams, dequantize, pack_bits, qint2, qint4, qint8, qint32,
    quantize_per_channel, quantize_per_tensor, quint2, quint4, quint8, unpack_bits,
)
from tinyopt.quant.fake_quantize import (
    FakeQuantize, FakeQuantizeFunction, fake_quantize_per_channel_affine, fake_quantize_per_tensor_affine,
)
from tinyopt.quant.modules import (
    ConvReLU2d, DynamicQuantConv2d, DynamicQuantLinear, LinearReLU, QActivation, QuantConv2d, QuantLinear,
    format_steps,
)
from tinyopt.quant.quantize import (
    QConfig, QuantizationError, convert, default_qat_qconfig, default_qconfig, find_fusable, fold_conv_bn,
    fuse_known, fuse_modules, get_default_qat_qconfig, get_default_qconfig, model_size_bytes, prepare, prepare_qat,
    quantize_dynamic, with_args,
)
from tinyopt.quant.reporting import QuantReport, report
from tinyopt.quant.observer import (
    MinMaxObserver, MovingAverageMinMaxObserver, PercentileObserver, PerChannelMinMaxObserver,
    PlaceholderObserver, per_channel_affine, per_channel_symmetric, per_tensor_affine, per_tensor_symmetric,
)

__all__ = [
    "QuantReport", "report",
    "ConvReLU2d", "DynamicQuantConv2d", "DynamicQuantLinear", "LinearReLU", "QActivation", "QConfig",
    "QuantConv2d", "QuantLinear", "QuantizationError", "convert", "default_qat_qconfig", "default_qconfig",
    "find_fusable", "fold_conv_bn", "format_steps", "fuse_known", "fuse_modules", "get_default_qat_qconfig",
    "get_default_qconfig", "model_size_bytes", "prepare", "prepare_qat", "quantize_dynamic", "with_args",
    "FakeQuantize", "FakeQuantizeFunction", "MinMaxObserver", "MovingAverageMinMaxObserver", "PercentileObserver",
    "PerChannelMinMaxObserver", "PlaceholderObserver", "QDTYPES", "QDtype", "QTensor", "as_qdtype",
    "choose_qparams", "dequantize", "fake_quantize_per_channel_affine", "fake_quantize_per_tensor_affine",
    "pack_bits", "per_channel_affine", "per_channel_symmetric", "per_tensor_affine", "per_tensor_symmetric",
    "qint2", "qint4", "qint8", "qint32", "quantize_per_channel", "quantize_per_tensor", "quint2", "quint4",
    "quint8", "unpack_bits",
]
