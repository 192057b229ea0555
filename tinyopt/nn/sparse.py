"""Embedding: a lookup table of learnable vectors (torch's nn.Embedding)."""
from __future__ import annotations

import numpy as np

from tinyopt.nn import functional as F
from tinyopt.nn import init
from tinyopt.nn.module import Module
from tinyopt.nn.parameter import Parameter
from tinyopt.random import resolve


class Embedding(Module):
    """out[…, :] = W[idx[…], :] with W (num_embeddings, embedding_dim), torch's layout.

    Initialisation as torch's: W ~ N(0, 1), drawn from `generator` (or `rng=`), then the row
    `padding_idx` (if given) set to 0; that row never receives a gradient, so it stays 0 in training.
    `max_norm` renormalises looked-up rows in place (see F.embedding); `sparse=True` is refused.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx=None, max_norm=None,
                 norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False, _weight=None,
                 _freeze: bool = False, device=None, dtype=None, *, generator=None, rng=None):
        super().__init__()
        if num_embeddings <= 0 or embedding_dim <= 0:
            raise ValueError(f"Embedding needs positive sizes, got num_embeddings={num_embeddings}, "
                             f"embedding_dim={embedding_dim}")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Padding_idx must be within num_embeddings ({num_embeddings}), got {padding_idx}")
            padding_idx = padding_idx + num_embeddings if padding_idx < 0 else padding_idx
        if sparse:
            raise NotImplementedError("Embedding(sparse=True): tinyopt has no sparse gradients; use sparse=False")
        if device not in (None, "cpu"):
            raise ValueError(f"tinyopt runs on the CPU only, got device={device!r}")
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.max_norm, self.norm_type, self.scale_grad_by_freq, self.sparse = max_norm, norm_type, scale_grad_by_freq, sparse
        dtype = np.float32 if dtype is None else dtype
        if _weight is None:
            self.weight = Parameter(np.zeros((num_embeddings, embedding_dim), dtype=dtype))
            source = generator if generator is not None else rng
            init.normal_(self.weight, 0.0, 1.0, generator=resolve(source))
            if padding_idx is not None:
                self.weight.data[padding_idx] = 0
        else:
            weight = np.asarray(getattr(_weight, "data", _weight))
            if weight.shape != (num_embeddings, embedding_dim):
                raise ValueError(f"Shape of weight {weight.shape} does not match num_embeddings and embedding_dim "
                                 f"{(num_embeddings, embedding_dim)}")
            self.weight = Parameter(np.array(weight, dtype=weight.dtype if dtype is None else dtype))
        self.weight.requires_grad = not _freeze

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx=None, max_norm=None, norm_type: float = 2.0,
                        scale_grad_by_freq: bool = False, sparse: bool = False) -> "Embedding":
        """An Embedding holding `embeddings` (2-D), frozen unless freeze=False."""
        weight = np.asarray(getattr(embeddings, "data", embeddings))
        if weight.ndim != 2:
            raise ValueError("Embeddings parameter is expected to be 2-dimensional")
        return cls(weight.shape[0], weight.shape[1], padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=weight, _freeze=freeze, dtype=weight.dtype)

    def forward(self, input):  # noqa: A002
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                           self.scale_grad_by_freq, self.sparse)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        return s
