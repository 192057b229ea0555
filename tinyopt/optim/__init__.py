"""Optimizers, with torch.optim's names, defaults and semantics."""
from tinyopt.optim.optimizer import Optimizer
from tinyopt.optim.sgd import SGD
from tinyopt.optim import lr_scheduler

__all__ = ["Optimizer", "SGD"]
