"""CNN92: the small batch-normalised CNN of the "92.5 % on Fashion-MNIST in ten minutes" recipe
(benchmarks/train_cnn.py `--recipe cnn92`, `tinyopt train --model cnn92`). Returns logits.

    (N, 1, 28, 28) → [Conv 32@3×3 pad 1 → BatchNorm → ReLU → MaxPool 2] → (N, 32, 14, 14)
                   → [Conv 64@3×3 pad 1 → BatchNorm → ReLU → MaxPool 2] → (N, 64, 7, 7)
                   → [Conv 128@3×3 pad 1 → BatchNorm → ReLU → MaxPool 2] → (N, 128, 3, 3)
                   → Flatten 1152 → Dropout(p) → Linear 128 → ReLU → Linear 10

241,770 parameters. The convolutions have no bias (the BatchNorm after each one has its own shift β,
so a bias would be redundant: BN subtracts the batch mean, which removes any constant added before it).
Why this shape: each block halves the resolution and doubles the channels, so the three convolutions
cost about the same (≈ 0.2 M, 3.6 M and 3.6 M multiply-adds per image, 7.5 M in all, 2.7× the Keras
CNN's 2.8 M), and BatchNorm lets a high one-cycle learning rate train it in a few epochs.
"""
from __future__ import annotations

from tinyopt.models.cnn import _as_nchw
from tinyopt.nn.activation import ReLU
from tinyopt.nn.batchnorm import BatchNorm2d
from tinyopt.nn.container import Sequential
from tinyopt.nn.conv import Conv2d
from tinyopt.nn.dropout import Dropout
from tinyopt.nn.linear import Flatten, Linear
from tinyopt.nn.module import Module
from tinyopt.nn.pooling import MaxPool2d
from tinyopt.random import resolve
from tinyopt.tensor import Tensor


class CNN92(Module):
    def __init__(self, num_classes: int = 10, dropout: float = 0.3, rng=None):
        super().__init__()
        rng = resolve(rng)

        def block(c_in: int, c_out: int):
            return [Conv2d(c_in, c_out, 3, padding=1, bias=False, rng=rng), BatchNorm2d(c_out), ReLU(), MaxPool2d(2)]

        self.features = Sequential(*block(1, 32), *block(32, 64), *block(64, 128))
        self.classifier = Sequential(
            Flatten(), Dropout(dropout, generator=rng), Linear(128 * 3 * 3, 128, rng=rng), ReLU(),
            Linear(128, num_classes, rng=rng),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(_as_nchw(self, x)))
