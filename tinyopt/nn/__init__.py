"""Neural-network layers, losses and initialisation, with torch.nn's names."""
from tinyopt.nn import functional, init, utils
from tinyopt.nn.activation import (
    ELU, GELU, Hardtanh, LeakyReLU, LogSoftmax, ReLU, ReLU6, SiLU, Sigmoid, Softmax, Softplus, Tanh,
)
from tinyopt.nn.batchnorm import BatchNorm1d, BatchNorm2d
from tinyopt.nn.container import ModuleDict, ModuleList, Sequential
from tinyopt.nn.conv import Conv2d
from tinyopt.nn.dropout import Dropout
from tinyopt.nn.linear import Flatten, Identity, Linear, Unflatten
from tinyopt.nn.loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss, SmoothL1Loss
from tinyopt.nn.module import Module, ShapeError
from tinyopt.nn.normalization import LayerNorm
from tinyopt.nn.parameter import Parameter
from tinyopt.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

__all__ = [
    "AdaptiveAvgPool2d", "AvgPool2d", "BCELoss", "BCEWithLogitsLoss", "BatchNorm1d", "BatchNorm2d", "Conv2d",
    "CrossEntropyLoss", "Dropout", "ELU", "Flatten", "GELU", "Hardtanh", "Identity", "L1Loss", "LayerNorm",
    "LeakyReLU", "Linear", "LogSoftmax", "MSELoss", "MaxPool2d", "Module", "ModuleDict", "ModuleList", "NLLLoss",
    "Parameter", "ReLU", "ReLU6", "Sequential", "ShapeError", "SiLU", "Sigmoid", "SmoothL1Loss", "Softmax",
    "Softplus", "Tanh", "Unflatten", "functional", "init", "utils",
]
from tinyopt.nn.sync_batchnorm import SyncBatchNorm  # noqa: E402
from tinyopt.nn import parallel  # noqa: E402

__all__ += ["SyncBatchNorm", "parallel"]
from tinyopt.nn.loss import KLDivLoss  # noqa: E402

__all__ += ["KLDivLoss"]

from tinyopt.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase  # noqa: E402
from tinyopt.nn.sparse import Embedding  # noqa: E402

__all__ += ["Embedding", "GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNBase", "RNNCell", "RNNCellBase"]
