"""Neural-network layers, losses and initialisation, with torch.nn's names."""
from tinyopt.nn import functional, init, utils
from tinyopt.nn.activation import LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from tinyopt.nn.container import ModuleList, Sequential
from tinyopt.nn.dropout import Dropout
from tinyopt.nn.linear import Flatten, Identity, Linear
from tinyopt.nn.loss import (
    BCELoss, BCEWithLogitsLoss, CategoricalCrossentropy, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss,
    SparseCategoricalCrossentropy,
)
from tinyopt.nn.module import Module, ShapeError
from tinyopt.nn.parameter import Parameter
from tinyopt.nn.conv import Conv2d
from tinyopt.nn.pooling import AvgPool2d, MaxPool2d
from tinyopt.nn.batchnorm import BatchNorm1d, BatchNorm2d

__all__ = [
    "BCELoss", "BCEWithLogitsLoss", "CategoricalCrossentropy", "CrossEntropyLoss", "Dropout", "Flatten",
    "Identity", "L1Loss", "LeakyReLU", "Linear", "LogSoftmax", "MSELoss", "Module", "ModuleList", "NLLLoss",
    "Parameter", "ReLU", "Sequential", "ShapeError", "Sigmoid", "Softmax", "SparseCategoricalCrossentropy",
    "Tanh", "functional", "init", "utils",
    "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv2d", "MaxPool2d",
]
