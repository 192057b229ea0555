"""Pruning end to end: criteria, schedules, sensitivity analysis, physical shrinking, sparse
inference and compressed storage. torch's mask API is `tinyopt.nn.utils.prune`; this package builds
on it. See tutorials/06_pruning.py."""
from tinyopt.prune.criteria import (
    activation_entropy, apoz, bn_scale, bypass_scores, bypassed, channel_norm, default_targets, gradient_scores,
    han_threshold, magnitude, prune_channels, remove_blocks, threshold_prune,
)
from tinyopt.prune.schedule import AGP, AGPCallback, agp_sparsity, iterative_pruning, prune_to, sparsity
from tinyopt.prune.sensitivity import choose_sparsities, format_table, plot_sensitivity, sensitivity_analysis
from tinyopt.prune.shrink import (
    count_parameters, dead_channels, make_permanent, prune_bias_with_channels, shrink, trace_chain,
)
from tinyopt.prune.sparse import SparseConv2d, SparseLinear, to_sparse
from tinyopt.prune.compression import compressed_size, load_compressed, save_compressed

__all__ = [
    "AGP", "AGPCallback", "SparseConv2d", "SparseLinear", "activation_entropy", "agp_sparsity", "apoz",
    "bn_scale", "bypass_scores", "bypassed", "channel_norm", "choose_sparsities", "compressed_size",
    "count_parameters", "dead_channels", "default_targets", "format_table", "gradient_scores", "han_threshold",
    "iterative_pruning", "load_compressed", "magnitude", "make_permanent", "plot_sensitivity",
    "prune_bias_with_channels", "prune_channels", "prune_to", "remove_blocks", "save_compressed",
    "sensitivity_analysis", "shrink", "sparsity", "threshold_prune", "to_sparse", "trace_chain",
]
