"""Learning-rate schedules, with torch.optim.lr_scheduler's names, arguments and semantics.

    optimizer = tinyopt.optim.SGD(model.parameters(), lr=0.1)
    scheduler = tinyopt.optim.lr_scheduler.StepLR(optimizer, step_size=30, gamma=0.1)
    for epoch in range(100):
        train_one_epoch(model, optimizer)        # calls optimizer.step()
        scheduler.step()                          # after optimizer.step()
        print(scheduler.get_last_lr())

Every scheduler's docstring gives its closed form η_t = f(t, η₀) and the recursive form that
`step()` computes; see `base.py` for the vocabulary (epoch t = `last_epoch`, η₀ = `base_lrs`).
"""
from tinyopt.optim.lr_scheduler.base import LRScheduler
from tinyopt.optim.lr_scheduler.composite import ChainedScheduler, SequentialLR
from tinyopt.optim.lr_scheduler.cosine import CosineAnnealingLR, CosineAnnealingWarmRestarts
from tinyopt.optim.lr_scheduler.cyclic import CyclicLR, OneCycleLR
from tinyopt.optim.lr_scheduler.decay import (
    ConstantLR, ExponentialLR, LambdaLR, LinearLR, MultiplicativeLR, MultiStepLR, PolynomialLR, StepLR,
)
from tinyopt.optim.lr_scheduler.plateau import ReduceLROnPlateau

__all__ = [
    "ChainedScheduler", "ConstantLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "CyclicLR", "ExponentialLR",
    "LRScheduler", "LambdaLR", "LinearLR", "MultiStepLR", "MultiplicativeLR", "OneCycleLR", "PolynomialLR",
    "ReduceLROnPlateau", "SequentialLR", "StepLR",
]
