"""LeNet-5 and the seeds' Keras CNN, for 28×28×1 inputs and 10 classes; both return logits.

Shapes (N = batch):

    LeNet5     (N, 1, 28, 28) → Conv 6@5×5 pad 2 → act → pool 2 → (N, 6, 14, 14)
               → Conv 16@5×5 → act → pool 2 → (N, 16, 5, 5) → Flatten 400 → 120 → act → 84 → act → 10
    KerasCNN   (N, 1, 28, 28) → Conv 32@3×3 ReLU → (N, 32, 26, 26) → MaxPool 2 → (N, 32, 13, 13)
               → Conv 64@3×3 ReLU → (N, 64, 11, 11) → MaxPool 2 → (N, 64, 5, 5)
               → Conv 64@3×3 ReLU → (N, 64, 3, 3) → Flatten 576 → Dense 64 ReLU → Dense 10

LeNet-5 follows LeCun et al. 1998 in its layer sizes (with padding 2 so that 28×28 plays the role of
the original 32×32 input); its activation and pooling default to the modern ReLU and max pooling,
and `activation="tanh", pooling="avg"` gives the original's choices (without its sparse C3
connection table and RBF output layer).

KerasCNN is the TensorFlow tutorial's `Conv2D(32, 3) → MaxPooling2D → Conv2D(64, 3) → MaxPooling2D →
Conv2D(64, 3) → Flatten → Dense(64) → Dense(10)`. Two differences from Keras to know about:
tinyopt is channels-first (NCHW), so `Flatten` orders features (C, H, W) where Keras orders them
(H, W, C) — the same network up to a permutation of the Dense layer's rows, but Keras weights need
that permutation to be loaded; and initialisation is `init="torch"` (each layer's torch default) or
`init="keras"` (glorot_uniform weights, zero biases, Keras' defaults).
"""
from __future__ import annotations

from tinyopt.nn import init as nn_init
from tinyopt.nn.activation import ReLU, Tanh
from tinyopt.nn.container import Sequential
from tinyopt.nn.conv import Conv2d
from tinyopt.nn.linear import Flatten, Linear
from tinyopt.nn.module import Module, ShapeError
from tinyopt.nn.pooling import AvgPool2d, MaxPool2d
from tinyopt.random import resolve
from tinyopt.tensor import Tensor


def _activation(name: str):
    if name == "relu":
        return ReLU()
    if name == "tanh":
        return Tanh()
    raise ValueError(f"activation must be 'relu' or 'tanh', got {name!r}")


def _pool(name: str):
    if name == "max":
        return MaxPool2d(2)
    if name == "avg":
        return AvgPool2d(2)
    raise ValueError(f"pooling must be 'max' or 'avg', got {name!r}")


def _as_nchw(model: Module, x: Tensor) -> Tensor:
    """Accept (N, 1, 28, 28) or (N, 28, 28) (Keras' Fashion-MNIST arrays, channel axis added)."""
    if x.ndim == 3:
        x = x.reshape((x.shape[0], 1) + tuple(x.shape[1:]))
    if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
        raise ShapeError(f"{type(model).__name__} expects input of shape (N, 1, 28, 28) or (N, 28, 28), got {tuple(x.shape)}")
    return x


class LeNet5(Module):
    def __init__(self, num_classes: int = 10, activation: str = "relu", pooling: str = "max", rng=None):
        super().__init__()
        rng = resolve(rng)
        self.features = Sequential(
            Conv2d(1, 6, 5, padding=2, rng=rng), _activation(activation), _pool(pooling),
            Conv2d(6, 16, 5, rng=rng), _activation(activation), _pool(pooling),
        )
        self.classifier = Sequential(
            Flatten(),
            Linear(16 * 5 * 5, 120, rng=rng), _activation(activation),
            Linear(120, 84, rng=rng), _activation(activation),
            Linear(84, num_classes, rng=rng),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(_as_nchw(self, x)))


class KerasCNN(Module):
    def __init__(self, num_classes: int = 10, init: str = "torch", rng=None):
        super().__init__()
        if init not in ("torch", "keras"):
            raise ValueError(f"init must be 'torch' or 'keras', got {init!r}")
        rng = resolve(rng)
        self.features = Sequential(
            Conv2d(1, 32, 3, rng=rng), ReLU(), MaxPool2d(2),
            Conv2d(32, 64, 3, rng=rng), ReLU(), MaxPool2d(2),
            Conv2d(64, 64, 3, rng=rng), ReLU(),
        )
        self.classifier = Sequential(
            Flatten(), Linear(64 * 3 * 3, 64, rng=rng), ReLU(), Linear(64, num_classes, rng=rng),
        )
        if init == "keras":
            for m in self.modules():
                if isinstance(m, (Conv2d, Linear)):
                    nn_init.xavier_uniform_(m.weight, generator=rng)
                    nn_init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(_as_nchw(self, x)))
