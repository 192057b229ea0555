"""Optimizers, with torch.optim's names, defaults and semantics, and a step-through trace.

Each optimizer's docstring is its algorithm (input / initialize / for t = 1, ... / return) with
the symbols its code and its trace use; `opt.trace(k)` records every intermediate quantity.
"""
from tinyopt.optim.optimizer import Optimizer
from tinyopt.optim.gd import GD
from tinyopt.optim.sgd import SGD
from tinyopt.optim.adagrad import Adagrad
from tinyopt.optim.rmsprop import RMSprop
from tinyopt.optim.adam import Adam
from tinyopt.optim.adamw import AdamW
from tinyopt.optim.trace import StepRecord, Trace
from tinyopt.optim import lr_scheduler

__all__ = ["GD", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "Optimizer", "StepRecord", "Trace", "lr_scheduler"]
