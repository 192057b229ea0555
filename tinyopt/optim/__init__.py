"""Optimizers, with torch.optim's names, defaults and semantics, and a step-through trace.

Each optimizer's docstring is its algorithm (input / initialize / for t = 1, ... / return) with
the symbols its code and its trace use; `opt.trace(k)` records every intermediate quantity.

Where the math lives: the classes hold the state and compute each step's scalars (bias
corrections, step sizes); the element-wise formulas are functions in `kernels/optim_update.py`,
once in NumPy (the readable twin, which the trace records) and once in Numba, and
`Optimizer._update` chooses between them. Muon (its step is matrix products, BLAS) and LBFGS (dot
products, axpy updates and closure evaluations) have no Numba twin and keep their NumPy formula in
their own module. Hyperparameters are checked
by the shared helpers of `tinyopt.optim.validation`.

torch.optim's family: GD (plain full-batch descent), SGD, Adagrad, RMSprop, Adam, AdamW, Adamax,
NAdam, RAdam, Adadelta, Rprop, ASGD, LBFGS, Adafactor, Muon; and two torch does not have: Lion
and LAMB.
"""
from tinyopt.optim.optimizer import Optimizer
from tinyopt.optim.gd import GD
from tinyopt.optim.sgd import SGD
from tinyopt.optim.adagrad import Adagrad
from tinyopt.optim.rmsprop import RMSprop
from tinyopt.optim.adam import Adam
from tinyopt.optim.adamw import AdamW
from tinyopt.optim.adamax import Adamax
from tinyopt.optim.nadam import NAdam
from tinyopt.optim.radam import RAdam
from tinyopt.optim.adadelta import Adadelta
from tinyopt.optim.rprop import Rprop
from tinyopt.optim.asgd import ASGD
from tinyopt.optim.lbfgs import LBFGS
from tinyopt.optim.adafactor import Adafactor
from tinyopt.optim.muon import Muon
from tinyopt.optim.lion import Lion
from tinyopt.optim.lamb import LAMB
from tinyopt.optim.trace import StepRecord, Trace
from tinyopt.optim import lr_scheduler

__all__ = ["GD", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "Adadelta", "Rprop",
           "ASGD", "LBFGS", "Adafactor", "Muon", "Lion", "LAMB", "Optimizer", "StepRecord", "Trace", "lr_scheduler"]
