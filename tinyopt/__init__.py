"""tinyopt: a small deep-learning engine for learning, teaching and verifying neural-network optimization.

`import tinyopt as to` gives torch's top-level names: tensors and their factories (`to.tensor`,
`to.randn`, `to.zeros`, ...), dtypes (`to.float32`, ...), the `to.<op>` functions, grad modes
(`to.no_grad`), `to.save`/`to.load`, `to.manual_seed`, and the subpackages `nn`, `optim`,
`utils.data`. Importing has no process-wide side effect (see `tune_malloc`).
"""
import importlib

from tinyopt.autograd import (
    Function, enable_grad, gradcheck, inference_mode, is_grad_enabled, no_grad, set_grad_enabled,
)
from tinyopt.tensor import Size, Tensor
from tinyopt.dtypes import (  # noqa: A004 - torch's names shadow builtins inside this namespace only
    bfloat16, bool, double, finfo, float, float16, float32, float64, half, iinfo, int, int8, int16, int32, int64,
    long, short, uint8,
)
from tinyopt.device import device
from tinyopt.random import Generator, default_generator, manual_seed
from tinyopt.creation import (
    arange, as_tensor, empty, empty_like, eye, from_numpy, full, full_like, linspace, normal, ones, ones_like, rand,
    rand_like, randint, randn, randn_like, randperm, tensor, zeros, zeros_like,
)
from tinyopt.functions import *  # noqa: F401,F403 - to.exp, to.sum, to.cat, ... (their list: functions.__all__)
from tinyopt import cuda  # noqa: E402
from tinyopt import nn, optim, data, datasets, utils  # noqa: E402  (subpackages need the names above)
from tinyopt.checkpoint import load, save  # noqa: E402
from tinyopt.warmup import warmup  # noqa: E402
# Opt-in, process-wide: keep freed memory for reuse (fewer page faults per step; kernels/memory.py).
from tinyopt.kernels.memory import tune_malloc  # noqa: E402

__version__ = "0.1.0"

# Heavier subpackages (matplotlib, the Keras layer, quantization, verification) load on first use.
_LAZY = ("keras", "models", "plot", "quant", "verify", "train", "kernels", "amp")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"tinyopt.{name}")
    raise AttributeError(f"module 'tinyopt' has no attribute {name!r}")

# torch.distributed's place: `to.distributed` (MPI, loaded on first use; importing it does not start MPI).
_LAZY += ("distributed",)
# Profiling (time per op type, forward and backward) and the thread count of Numba and BLAS together.
from tinyopt.profiler import profile, record_function  # noqa: E402
from tinyopt.threads import get_num_threads, set_num_threads  # noqa: E402
from tinyopt import transforms  # noqa: E402,F401  (to.transforms: image transforms for the data sets)
