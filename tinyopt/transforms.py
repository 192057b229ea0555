"""Image transforms for the `utils.data` datasets (torchvision.transforms' names and arguments).

Each transform is a callable on a float image array of shape (C, H, W), as `tinyopt.datasets`
returns them, or on a whole batch (N, C, H, W), where every sample gets its own random draw (one
vectorised call per batch instead of N Python calls: the fast way to augment in a training loop).
Every random transform takes an explicit `generator=` (an `np.random.Generator`, a
`tinyopt.Generator` or an int seed; None uses tinyopt's default generator, `to.manual_seed`).

    ToTensor()                     uint8 (H, W) / (H, W, C) / (N, H, W, C) → float32 (…, C, H, W) in [0, 1]
    Normalize(mean, std)           x'_c = (x_c − mean_c) / std_c
    RandomCrop(size, padding=p)    pad by p (zeros, or padding_mode 'edge'/'reflect'), then crop a
                                   size×size window at a uniform offset in [0, H + 2p − size]
    RandomHorizontalFlip(p=0.5)    x'[…, w] = x[…, W − 1 − w] with probability p
    RandomErasing(p=0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0)
                                   with probability p, fill one rectangle with `value`: its area is
                                   A·U(scale), its aspect ratio exp(U(log ratio)), h = round(√(area·r)),
                                   w = round(√(area/r)); up to 10 tries until it fits (torchvision's
                                   algorithm, Zhong et al. 2017)
    Compose([t1, t2, …])           t_k(…t2(t1(x)))

Differences from torchvision: arrays in and out (no PIL, no torch.Tensor); `ToTensor` returns a
float32 NumPy array, since `DataLoader` collates arrays; batches are accepted.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from tinyopt.random import resolve


def _check_image(x, where: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim not in (3, 4):
        raise ValueError(f"{where}: expected an image (C, H, W) or a batch (N, C, H, W), got shape {x.shape}")
    return x


def _rng(generator) -> np.random.Generator:
    return resolve(generator)


def _batched(x: np.ndarray):
    """(view as (N, C, H, W), whether the input was a single image)."""
    return (x[None], True) if x.ndim == 3 else (x, False)


class Compose:
    """Apply `transforms` in order."""

    def __init__(self, transforms):
        transforms = list(transforms)
        for t in transforms:
            if not callable(t):
                raise TypeError(f"Compose: every transform must be callable, got {t!r}")
        self.transforms = transforms

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}" for t in self.transforms)
        return f"Compose({inner}\n)"


class ToTensor:
    """uint8 pixels → float32 in [0, 1], channels first: (H, W) → (1, H, W), (H, W, C) → (C, H, W),
    (N, H, W, C) → (N, C, H, W). A float array is taken as already scaled and channels-first (only
    converted to float32), as torchvision leaves non-uint8 inputs unscaled."""

    def __call__(self, x):
        x = np.asarray(x)
        if x.dtype == np.uint8:
            if x.ndim == 2:
                x = x[None]
            elif x.ndim == 3:
                x = x.transpose(2, 0, 1)
            elif x.ndim == 4:
                x = x.transpose(0, 3, 1, 2)
            else:
                raise ValueError(f"ToTensor: expected (H, W), (H, W, C) or (N, H, W, C) uint8 pixels, got shape {x.shape}")
            return np.ascontiguousarray(x, dtype=np.float32) / np.float32(255)
        if x.dtype.kind not in "fiu":
            raise TypeError(f"ToTensor: expected uint8 pixels or a float array, got {x.dtype}")
        return np.asarray(x, dtype=np.float32)

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """x'_c = (x_c − mean_c) / std_c per channel (a scalar applies to every channel)."""

    def __init__(self, mean, std):
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        if self.mean.ndim != 1 or self.std.ndim != 1 or len(self.mean) != len(self.std):
            raise ValueError(f"Normalize: mean and std must be numbers or sequences of one length, got {mean!r}, {std!r}")
        if np.any(self.std == 0) or not np.all(np.isfinite(self.std)):
            raise ValueError(f"Normalize: std must be finite and non-zero, got {std!r}")

    def __call__(self, x):
        x = _check_image(x, "Normalize")
        c = x.shape[-3]
        if len(self.mean) not in (1, c):
            raise ValueError(f"Normalize: {len(self.mean)} means for an image with {c} channels")
        dtype = x.dtype if x.dtype.kind == "f" else np.float32
        mean = self.mean.astype(dtype).reshape(-1, 1, 1)
        std = self.std.astype(dtype).reshape(-1, 1, 1)
        return (x.astype(dtype, copy=False) - mean) / std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


def _pair(size, name):
    if isinstance(size, numbers.Integral):
        return int(size), int(size)
    pair = tuple(size)
    if len(pair) != 2 or not all(isinstance(s, numbers.Integral) for s in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {size!r}")
    return int(pair[0]), int(pair[1])


class RandomCrop:
    """Pad by `padding` on every side (`padding_mode` 'constant' with `fill`, 'edge' or 'reflect'),
    then crop `size` (an int or (h, w)) at an offset drawn uniformly from all the positions that fit."""

    MODES = ("constant", "edge", "reflect")

    def __init__(self, size, padding=0, fill=0.0, padding_mode: str = "constant", generator=None):
        self.size = _pair(size, "RandomCrop: size")
        if min(self.size) <= 0:
            raise ValueError(f"RandomCrop: size must be positive, got {size!r}")
        if not isinstance(padding, numbers.Integral) or padding < 0:
            raise ValueError(f"RandomCrop: padding must be a non-negative int, got {padding!r}")
        if padding_mode not in self.MODES:
            raise ValueError(f"RandomCrop: padding_mode must be one of {self.MODES}, got {padding_mode!r}")
        self.padding, self.fill, self.padding_mode = int(padding), fill, padding_mode
        self.generator = None if generator is None else resolve(generator)  # None: the default, looked up per call

    def __call__(self, x):
        x = _check_image(x, "RandomCrop")
        batch, single = _batched(x)
        n, c, h, w = batch.shape
        p = self.padding
        th, tw = self.size
        if th > h + 2 * p or tw > w + 2 * p:
            raise ValueError(f"RandomCrop: crop size {self.size} is larger than the padded image {(h + 2 * p, w + 2 * p)}")
        if p:
            width = ((0, 0), (0, 0), (p, p), (p, p))
            kwargs = {"constant_values": self.fill} if self.padding_mode == "constant" else {}
            batch = np.pad(batch, width, mode=self.padding_mode, **kwargs)
        g = _rng(self.generator)
        top = g.integers(0, h + 2 * p - th + 1, size=n)
        left = g.integers(0, w + 2 * p - tw + 1, size=n)
        rows = top[:, None] + np.arange(th)[None, :]          # (N, th)
        cols = left[:, None] + np.arange(tw)[None, :]         # (N, tw)
        out = batch[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None],
                    rows[:, None, :, None], cols[:, None, None, :]]
        return out[0] if single else out

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding}, padding_mode={self.padding_mode!r})"


class RandomHorizontalFlip:
    """Mirror left-right with probability p (each sample of a batch drawn on its own)."""

    def __init__(self, p: float = 0.5, generator=None):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = float(p)
        self.generator = None if generator is None else resolve(generator)  # None: the default, looked up per call

    def __call__(self, x):
        x = _check_image(x, "RandomHorizontalFlip")
        batch, single = _batched(x)
        flip = _rng(self.generator).random(batch.shape[0]) < self.p
        out = batch.copy()
        out[flip] = batch[flip, :, :, ::-1]
        return out[0] if single else out

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomErasing:
    """With probability p, set one random rectangle of the image to `value` (torchvision's
    algorithm; see the module docstring). Applied after ToTensor/Normalize, as in torchvision."""

    def __init__(self, p: float = 0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value: float = 0.0, generator=None):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomErasing: p must be in [0, 1], got {p}")
        scale, ratio = tuple(scale), tuple(ratio)
        if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"RandomErasing: scale must be (min, max) with 0 < min <= max <= 1, got {scale}")
        if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"RandomErasing: ratio must be (min, max) with 0 < min <= max, got {ratio}")
        self.p, self.scale, self.ratio, self.value = float(p), scale, ratio, value
        self.generator = None if generator is None else resolve(generator)  # None: the default, looked up per call

    def _box(self, h: int, w: int):
        g = _rng(self.generator)
        area = h * w
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            erase_area = area * g.uniform(*self.scale)
            r = math.exp(g.uniform(*log_ratio))
            eh, ew = int(round(math.sqrt(erase_area * r))), int(round(math.sqrt(erase_area / r)))
            if 0 < eh < h and 0 < ew < w:
                i, j = int(g.integers(0, h - eh + 1)), int(g.integers(0, w - ew + 1))
                return i, j, eh, ew
        return None

    def __call__(self, x):
        x = _check_image(x, "RandomErasing")
        batch, single = _batched(x)
        out = batch.copy()
        h, w = batch.shape[2:]
        for k in np.flatnonzero(_rng(self.generator).random(batch.shape[0]) < self.p):
            box = self._box(h, w)
            if box is not None:
                i, j, eh, ew = box
                out[k, :, i:i + eh, j:j + ew] = self.value
        return out[0] if single else out

    def __repr__(self) -> str:
        return f"RandomErasing(p={self.p}, scale={self.scale}, ratio={self.ratio}, value={self.value})"


def fashion_mnist_augment(generator=None, erasing: float = 0.0, crop: bool = True) -> Compose:
    """The augmentation of `tinyopt train --augment` and benchmarks/train_cnn.py: a random crop of
    28×28 from the image padded by 2 (unless `crop=False`) and a horizontal flip (clothes are
    left-right symmetric; digits are not, so do not flip MNIST), plus RandomErasing with probability
    `erasing` when > 0.

    Why `crop=False` exists: for the short cnn92 recipe (9 epochs) flips alone gave the better test
    accuracy (README, "Accuracy in a time budget"); the crop's shifts are a harder task that pays
    back only in longer training."""
    if not isinstance(crop, bool):
        raise TypeError(f"fashion_mnist_augment: crop must be True or False, got {crop!r}")
    g = None if generator is None else resolve(generator)
    steps = [RandomCrop(28, padding=2, generator=g)] if crop else []
    steps.append(RandomHorizontalFlip(0.5, generator=g))
    if erasing:
        steps.append(RandomErasing(erasing, generator=g))
    return Compose(steps)


__all__ = ["Compose", "Normalize", "RandomCrop", "RandomErasing", "RandomHorizontalFlip", "ToTensor",
           "fashion_mnist_augment"]
