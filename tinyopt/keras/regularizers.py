"""Keras weight regularizers: `l2(λ)` adds λ Σ w², `l1(λ)` adds λ Σ |w| to the training loss."""
from tinyopt.keras.layers import L1, L2, l1, l2

__all__ = ["L1", "L2", "l1", "l2"]
