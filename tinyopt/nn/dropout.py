"""Dropout layer with an explicit random Generator."""
from __future__ import annotations

from tinyopt.nn import functional as F
from tinyopt.nn.module import Module
from tinyopt.random import resolve


class Dropout(Module):
    """Zeroes each element with probability p in training mode and scales the rest by 1/(1−p);
    identity in eval mode. Masks come from `generator` (or `rng=`: a Generator or a seed; default generator if None)."""

    def __init__(self, p: float = 0.5, inplace: bool = False, rng=None, *, generator=None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace
        source = generator if generator is not None else rng
        self.rng = resolve(source) if source is not None else None

    def forward(self, x):
        return F.dropout(x, self.p, training=self.training, inplace=self.inplace, generator=self.rng)

    def extra_repr(self):
        return f"p={self.p}"
