"""Mask-based pruning with torch.nn.utils.prune's API and semantics.

Pruning `module.<name>` re-parametrises it (torch's scheme, the same state_dict keys):

    <name>_orig   the Parameter that is trained (the original tensor, same object as before);
    <name>_mask   a buffer (a Tensor of 0/1 in the parameter's dtype, as torch);
    <name>        = <name>_orig ⊙ <name>_mask, recomputed by a forward pre-hook before every forward,

so the gradient reaching `<name>_orig` is ∂L/∂<name> ⊙ mask: pruned weights receive zero gradient
and stay pruned while training (their stored value in `_orig` is kept until `remove`).

`amount` is a fraction in [0, 1] (float; round(amount · n) units, Python's round, as torch) or a
count (int) of the units *not yet pruned*: a second call prunes among the survivors of the first,
through a `PruningContainer`, so sparsities compound (0.5 then 0.5 leaves 25 %).

Ranking. L1Unstructured prunes the k entries with the smallest |importance| (importance is the
tensor itself unless `importance_scores=` is given); LnStructured keeps the channels along `dim`
with the largest ‖·‖_n over the other axes. Ties: torch uses `torch.topk`, whose order among equal
values is unspecified; tinyopt sorts stably (`np.argsort(kind="stable")`), so among equal scores
the lowest flat index is pruned first (unstructured) and, for structured pruning, the lowest channel
index is kept first. Masks equal torch's whenever the scores have no ties at the cut.

Random methods take `generator=` (a NumPy Generator, `tinyopt.Generator` or int seed); torch draws
from its global generator instead, so random masks have torch's distribution, not its values.

Difference from torch, by design: `compute_mask(t, default_mask)` receives and returns ndarrays
(tinyopt's buffers are ndarrays), and hooks live in tinyopt's list of forward pre-hooks.
"""
from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from collections.abc import Iterable

import numpy as np

from tinyopt.random import resolve
from tinyopt.tensor import Tensor

__all__ = [
    "BasePruningMethod", "CustomFromMask", "Identity", "L1Unstructured", "LnStructured", "PruningContainer",
    "RandomStructured", "RandomUnstructured", "custom_from_mask", "global_unstructured", "identity", "is_pruned",
    "l1_unstructured", "ln_structured", "random_structured", "random_unstructured", "remove",
]


def _array(x) -> np.ndarray:
    return x.data if isinstance(x, Tensor) else np.asarray(x)


class BasePruningMethod(ABC):
    """A pruning method: `compute_mask(t, default_mask)` returns the new 0/1 mask (ndarrays), and the
    instance is the forward pre-hook that recomputes `module.<name> = <name>_orig ⊙ <name>_mask`."""

    _tensor_name: str | None = None
    PRUNING_TYPE: str = "unstructured"

    def __call__(self, module, inputs):
        setattr(module, self._tensor_name, self.apply_mask(module))

    @abstractmethod
    def compute_mask(self, t: np.ndarray, default_mask: np.ndarray) -> np.ndarray:
        """The mask for importance scores `t`, starting from `default_mask` (pruned entries stay 0)."""

    def apply_mask(self, module) -> Tensor:
        """<name>_orig ⊙ <name>_mask, a Tensor in the graph of <name>_orig."""
        if self._tensor_name is None:
            raise RuntimeError(f"Module {type(module).__name__} has to be pruned (apply was not called)")
        mask = getattr(module, self._tensor_name + "_mask")
        orig = getattr(module, self._tensor_name + "_orig")
        return orig * Tensor(np.asarray(mask.data, dtype=orig.dtype))

    @classmethod
    def apply(cls, module, name, *args, importance_scores=None, **kwargs):
        """Prune `module.<name>` with `cls(*args, **kwargs)`, on top of earlier pruning (a container)."""
        _check_target(module, name)
        method, old = _composite_method(cls, module, name, *args, **kwargs)
        orig = getattr(module, name)
        if importance_scores is not None:
            importance_scores = _array(importance_scores)
            if tuple(importance_scores.shape) != tuple(orig.shape):
                raise ValueError(f"importance_scores should have the same shape as parameter {name} of "
                                 f"{type(module).__name__}, got {tuple(importance_scores.shape)} vs {tuple(orig.shape)}")
        else:
            importance_scores = orig.data
        first_time = not isinstance(method, PruningContainer)
        if first_time:
            default_mask = np.ones(orig.shape, dtype=orig.dtype)
        else:
            default_mask = np.array(getattr(module, name + "_mask"), copy=True)
        # Compute first, then re-parametrise: a raise (bad amount, bad dim) leaves the module as it was.
        try:
            mask = np.asarray(method.compute_mask(np.asarray(importance_scores), default_mask=default_mask))
        except Exception:
            if isinstance(old, PruningContainer) and method is old:
                old._pruning_methods = old._pruning_methods[:-1]
            raise
        if old is not None:
            module._forward_pre_hooks.remove(old)
        if first_time:
            module.register_parameter(name + "_orig", orig)
            module._parameters.pop(name, None)
        module.register_buffer(name + "_mask", mask.astype(getattr(module, name + "_orig").dtype, copy=False))
        setattr(module, name, method.apply_mask(module))
        module.register_forward_pre_hook(method)
        return method

    def prune(self, t, default_mask=None, importance_scores=None):
        """t ⊙ compute_mask(importance_scores or t, default_mask), without touching any module."""
        t_arr = _array(t)
        scores = t_arr if importance_scores is None else _array(importance_scores)
        if scores.shape != t_arr.shape:
            raise ValueError(f"importance_scores should have the same shape as tensor t, got {scores.shape} vs {t_arr.shape}")
        default_mask = np.ones_like(t_arr) if default_mask is None else _array(default_mask)
        mask = self.compute_mask(scores, default_mask=default_mask)
        return t * Tensor(mask.astype(t_arr.dtype)) if isinstance(t, Tensor) else t_arr * mask

    def remove(self, module) -> None:
        """Make the pruning permanent: <name> becomes a Parameter holding <name>_orig ⊙ mask (the
        same Parameter object as <name>_orig, so an optimizer holding it keeps working)."""
        if self._tensor_name is None:
            raise RuntimeError(f"Module {type(module).__name__} has to be pruned before pruning can be removed")
        name = self._tensor_name
        weight = self.apply_mask(module)
        if name in module.__dict__:
            object.__delattr__(module, name)
        orig = module._parameters[name + "_orig"]
        orig.data = weight.data
        del module._parameters[name + "_orig"]
        object.__delattr__(module, name + "_orig")
        del module._buffers[name + "_mask"]
        object.__delattr__(module, name + "_mask")
        setattr(module, name, orig)


def _check_target(module, name) -> None:
    from tinyopt.nn.module import Module

    if not isinstance(module, Module):
        raise TypeError(f"pruning takes a Module and the name of one of its parameters, got {type(module).__name__} "
                        "(torch's signature: prune.l1_unstructured(module, name='weight', amount=0.3))")
    if not isinstance(name, str):
        raise TypeError(f"name must be a parameter name (str), got {type(name).__name__}")
    if name not in module._parameters and name + "_orig" not in module._parameters:
        raise AttributeError(f"{type(module).__name__} has no parameter {name!r}; "
                             f"its parameters are {sorted(k for k, v in module._parameters.items() if v is not None)}")
    if name in module._parameters and module._parameters[name] is None:
        raise AttributeError(f"{type(module).__name__}.{name} is None (nothing to prune)")


def _composite_method(cls, module, name, *args, **kwargs):
    """(method, old hook): the new method, combined in a container with the one already pruning
    module.<name> (if any)."""
    found = [h for h in module._forward_pre_hooks if isinstance(h, BasePruningMethod) and h._tensor_name == name]
    if len(found) > 1:
        raise RuntimeError(f"Avoid adding multiple pruning hooks to the same tensor {name} of module "
                           f"{type(module).__name__}. Use a PruningContainer.")
    method = cls(*args, **kwargs)  # validates amount before anything is changed
    method._tensor_name = name
    if not found:
        return method, None
    old = found[0]  # unhooked by the caller once the new mask is computed
    if isinstance(old, PruningContainer):
        old.add_pruning_method(method)
        return old, old
    container = PruningContainer(old)
    container.add_pruning_method(method)
    return container, old


class PruningContainer(BasePruningMethod):
    """A sequence of pruning methods applied to one tensor; the last one is computed on the part the
    earlier ones left: the unpruned entries (unstructured), the channels along `dim` not yet all
    zero (structured), or the whole tensor ("global", e.g. custom_from_mask)."""

    def __init__(self, *args) -> None:
        self._pruning_methods: tuple = ()
        if len(args) == 1:
            self._tensor_name = args[0]._tensor_name
            self.add_pruning_method(args[0])
        else:
            for method in args:
                self.add_pruning_method(method)

    def add_pruning_method(self, method) -> None:
        if method is not None and not isinstance(method, BasePruningMethod):
            raise TypeError(f"{type(method)} is not a BasePruningMethod subclass")
        if method is not None and self._tensor_name != method._tensor_name:
            raise ValueError(f"Can only add pruning methods acting on the parameter named '{self._tensor_name}' "
                             f"to PruningContainer {self}. Found '{method._tensor_name}'")
        self._pruning_methods += (method,)

    def __len__(self) -> int:
        return len(self._pruning_methods)

    def __iter__(self):
        return iter(self._pruning_methods)

    def __getitem__(self, idx):
        return self._pruning_methods[idx]

    def compute_mask(self, t, default_mask):
        method = self._pruning_methods[-1]
        t = np.asarray(t)
        mask = np.asarray(default_mask)
        new_mask = mask.astype(t.dtype, copy=True)
        if method.PRUNING_TYPE == "unstructured":
            slc = mask == 1
        elif method.PRUNING_TYPE == "structured":
            if not hasattr(method, "dim"):
                raise AttributeError('Pruning methods of PRUNING_TYPE "structured" need to have the attribute `dim` defined.')
            dim = method.dim + t.ndim if method.dim < 0 else method.dim
            if not 0 <= dim < t.ndim:
                raise IndexError(f"Index {method.dim} is out of bounds for tensor with {t.ndim} dimensions")
            keep_channel = mask.sum(axis=tuple(d for d in range(t.ndim) if d != dim)) != 0
            slc = [slice(None)] * t.ndim
            slc[dim] = keep_channel
            slc = tuple(slc)
        elif method.PRUNING_TYPE == "global":
            slc = (slice(None),) * t.ndim
        else:
            raise ValueError(f"Unrecognized PRUNING_TYPE {method.PRUNING_TYPE}")
        partial = method.compute_mask(t[slc], default_mask=mask[slc])
        new_mask[slc] = np.asarray(partial, dtype=new_mask.dtype)
        return new_mask


class Identity(BasePruningMethod):
    """Prunes nothing (mask of ones): the re-parametrisation alone."""

    PRUNING_TYPE = "unstructured"

    def compute_mask(self, t, default_mask):
        return default_mask

    @classmethod
    def apply(cls, module, name):  # noqa: D102 - torch's signature
        return super().apply(module, name)


class RandomUnstructured(BasePruningMethod):
    """Zero k = round(amount·n) (or amount, if int) entries drawn uniformly without replacement."""

    PRUNING_TYPE = "unstructured"

    def __init__(self, amount, generator=None) -> None:
        _validate_pruning_amount_init(amount)
        self.amount = amount
        self.generator = generator

    def compute_mask(self, t, default_mask):
        k = _compute_nparams_toprune(self.amount, t.size)
        _validate_pruning_amount(k, t.size)
        mask = np.array(default_mask, copy=True)
        if k:
            prob = resolve(self.generator).random(t.size)
            mask.reshape(-1)[np.argsort(-prob, kind="stable")[:k]] = 0
        return mask

    @classmethod
    def apply(cls, module, name, amount, generator=None):  # noqa: D102
        return super().apply(module, name, amount=amount, generator=generator)


class L1Unstructured(BasePruningMethod):
    """Zero the k entries with the smallest |s| (s = importance scores, default the tensor itself),
    k = round(amount·n) for a float amount, amount for an int."""

    PRUNING_TYPE = "unstructured"

    def __init__(self, amount) -> None:
        _validate_pruning_amount_init(amount)
        self.amount = amount

    def compute_mask(self, t, default_mask):
        k = _compute_nparams_toprune(self.amount, t.size)
        _validate_pruning_amount(k, t.size)
        mask = np.array(default_mask, copy=True)
        if k:
            order = np.argsort(np.abs(t).reshape(-1), kind="stable")  # stable: ties → lowest index pruned first
            mask.reshape(-1)[order[:k]] = 0
        return mask

    @classmethod
    def apply(cls, module, name, amount, importance_scores=None):  # noqa: D102
        return super().apply(module, name, amount=amount, importance_scores=importance_scores)


class RandomStructured(BasePruningMethod):
    """Zero k whole channels along `dim`, chosen uniformly at random."""

    PRUNING_TYPE = "structured"

    def __init__(self, amount, dim=-1, generator=None) -> None:
        _validate_pruning_amount_init(amount)
        self.amount = amount
        self.dim = dim
        self.generator = generator

    def compute_mask(self, t, default_mask):
        _validate_structured_pruning(t)
        _validate_pruning_dim(t, self.dim)
        n = t.shape[self.dim]
        k = _compute_nparams_toprune(self.amount, n)
        _validate_pruning_amount(k, n)
        if k == 0:
            return default_mask
        prob = resolve(self.generator).random(n)
        channel_mask = np.ones(n, dtype=bool)
        channel_mask[np.argsort(prob, kind="stable")[:k]] = False
        return _channel_mask(t, self.dim, channel_mask) * np.asarray(default_mask, dtype=t.dtype)

    @classmethod
    def apply(cls, module, name, amount, dim=-1, generator=None):  # noqa: D102
        return super().apply(module, name, amount=amount, dim=dim, generator=generator)


class LnStructured(BasePruningMethod):
    """Keep the n_keep = C − k channels c along `dim` with the largest ‖s_c‖_n (the L_n norm over all
    other axes; n = 1, 2, …, np.inf, −np.inf, or 'fro' = 2), zero the rest."""

    PRUNING_TYPE = "structured"

    def __init__(self, amount, n, dim=-1) -> None:
        _validate_pruning_amount_init(amount)
        self.amount = amount
        self.n = n
        self.dim = dim

    def compute_mask(self, t, default_mask):
        _validate_structured_pruning(t)
        _validate_pruning_dim(t, self.dim)
        size = t.shape[self.dim]
        k = _compute_nparams_toprune(self.amount, size)
        _validate_pruning_amount(k, size)
        if k == 0:
            return default_mask
        norm = _compute_norm(t, self.n, self.dim)
        keep = np.argsort(-norm, kind="stable")[:size - k]  # stable: ties → lowest channel index kept
        channel_mask = np.zeros(size, dtype=bool)
        channel_mask[keep] = True
        return _channel_mask(t, self.dim, channel_mask) * np.asarray(default_mask, dtype=t.dtype)

    @classmethod
    def apply(cls, module, name, amount, n, dim, importance_scores=None):  # noqa: D102
        return super().apply(module, name, amount=amount, n=n, dim=dim, importance_scores=importance_scores)


class CustomFromMask(BasePruningMethod):
    """mask = default_mask ⊙ the given mask."""

    PRUNING_TYPE = "global"

    def __init__(self, mask) -> None:
        self.mask = _array(mask)

    def compute_mask(self, t, default_mask):
        if default_mask.shape != self.mask.shape:
            raise ValueError(f"default_mask shape {default_mask.shape} must match mask shape {self.mask.shape}")
        return default_mask * self.mask.astype(default_mask.dtype)

    @classmethod
    def apply(cls, module, name, mask):  # noqa: D102
        return super().apply(module, name, mask=mask)


# ---------------------------------------------------------------------- functional front end
def identity(module, name):
    """Re-parametrise module.<name> with a mask of ones; returns the module (pruned in place)."""
    Identity.apply(module, name)
    return module


def random_unstructured(module, name, amount, generator=None):
    """Prune `amount` random entries of module.<name> in place; returns the module."""
    RandomUnstructured.apply(module, name, amount, generator=generator)
    return module


def l1_unstructured(module, name, amount, importance_scores=None):
    """Prune the `amount` entries of module.<name> with the smallest |importance| in place; returns
    the module (the same object: torch's API prunes in place, it does not build a new network)."""
    L1Unstructured.apply(module, name, amount=amount, importance_scores=importance_scores)
    return module


def random_structured(module, name, amount, dim, generator=None):
    """Prune `amount` random channels along `dim` of module.<name> in place; returns the module."""
    RandomStructured.apply(module, name, amount, dim, generator=generator)
    return module


def ln_structured(module, name, amount, n, dim, importance_scores=None):
    """Prune the `amount` channels along `dim` with the smallest L_n norm in place; returns the module."""
    LnStructured.apply(module, name, amount, n, dim, importance_scores=importance_scores)
    return module


def global_unstructured(parameters, pruning_method, importance_scores=None, **kwargs) -> None:
    """Prune several tensors together: rank all their (unpruned) entries as one vector with
    `pruning_method(**kwargs)` (an unstructured class, e.g. L1Unstructured, amount=0.2), then give
    each (module, name) its slice of the mask via custom_from_mask.

    `parameters` is an iterable of (module, name) pairs (not a model); `importance_scores` an
    optional dict {(module, name): scores}.
    """
    from tinyopt.nn.module import Module

    if isinstance(parameters, Module) or not isinstance(parameters, Iterable):
        raise TypeError("global_unstructured(): parameters must be an iterable of (module, name) pairs, e.g. "
                        "[(model.fc1, 'weight'), (model.fc2, 'weight')], not a model")
    parameters = list(parameters)
    for pair in parameters:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise TypeError(f"global_unstructured(): each entry must be a (module, name) pair, got {pair!r}")
        _check_target(*pair)
    if not (isinstance(pruning_method, type) and issubclass(pruning_method, BasePruningMethod)):
        raise TypeError(f"global_unstructured(): pruning_method must be a BasePruningMethod class such as "
                        f"prune.L1Unstructured, got {pruning_method!r}")
    importance_scores = {} if importance_scores is None else importance_scores
    if not isinstance(importance_scores, dict):
        raise TypeError("global_unstructured(): importance_scores must be of type dict")

    def current(module, name):
        return getattr(module, name)

    scores = np.concatenate([
        _array(importance_scores.get((m, n), current(m, n))).reshape(-1) for m, n in parameters])
    default_mask = np.concatenate([
        np.asarray(getattr(m, n + "_mask", np.ones(current(m, n).shape, dtype=current(m, n).dtype))).reshape(-1)
        for m, n in parameters]).astype(scores.dtype)
    container = PruningContainer()
    container._tensor_name = "temp"
    method = pruning_method(**kwargs)
    method._tensor_name = "temp"
    if method.PRUNING_TYPE != "unstructured":
        raise TypeError(f'Only "unstructured" PRUNING_TYPE supported for the `pruning_method`. Found method '
                        f"{pruning_method} of type {method.PRUNING_TYPE}")
    container.add_pruning_method(method)
    final_mask = container.compute_mask(scores, default_mask)
    pointer = 0
    for module, name in parameters:
        shape = current(module, name).shape
        size = int(np.prod(shape))
        custom_from_mask(module, name, mask=final_mask[pointer:pointer + size].reshape(shape))
        pointer += size


def custom_from_mask(module, name, mask):
    """Prune module.<name> with an explicit 0/1 mask (combined with any earlier mask); returns the module."""
    CustomFromMask.apply(module, name, mask)
    return module


def remove(module, name):
    """Make the pruning of module.<name> permanent: drop <name>_orig, <name>_mask and the hook;
    <name> becomes a Parameter with the pruned values. Returns the module."""
    for hook in list(module._forward_pre_hooks):
        if isinstance(hook, BasePruningMethod) and hook._tensor_name == name:
            hook.remove(module)
            module._forward_pre_hooks.remove(hook)
            return module
    raise ValueError(f"Parameter '{name}' of module {type(module).__name__} has to be pruned before pruning can be removed")


def is_pruned(module) -> bool:
    """True if `module` or one of its submodules has a pruning hook."""
    return any(isinstance(h, BasePruningMethod) for m in module.modules() for h in m._forward_pre_hooks)


# ---------------------------------------------------------------------- validation (torch's messages)
def _validate_pruning_amount_init(amount) -> None:
    if isinstance(amount, bool) or not isinstance(amount, numbers.Real):
        raise TypeError(f"Invalid type for amount: {amount!r}. Must be int or float.")
    if (isinstance(amount, numbers.Integral) and amount < 0) or (
            not isinstance(amount, numbers.Integral) and not 0.0 <= float(amount) <= 1.0):
        raise ValueError(f"amount={amount} should either be a float in the range [0, 1] or a non-negative integer")


def _validate_pruning_amount(amount, tensor_size) -> None:
    if isinstance(amount, numbers.Integral) and amount > tensor_size:
        raise ValueError(f"amount={amount} should be smaller than the number of parameters to prune={tensor_size}")


def _validate_structured_pruning(t) -> None:
    if t.ndim <= 1:
        raise ValueError("Structured pruning can only be applied to multidimensional tensors. Found tensor of shape "
                         f"{tuple(t.shape)} with {t.ndim} dims")


def _compute_nparams_toprune(amount, tensor_size) -> int:
    if isinstance(amount, numbers.Integral):
        return int(amount)
    return round(amount * tensor_size)


def _validate_pruning_dim(t, dim) -> None:
    if dim >= t.ndim or dim < -t.ndim:
        raise IndexError(f"Invalid index {dim} for tensor of size {tuple(t.shape)}")


def _compute_norm(t, n, dim) -> np.ndarray:
    """‖t_c‖_n over every axis but `dim` (torch.norm(t, p=n, dim=others)): a vector norm of the
    flattened channel."""
    dim = dim % t.ndim
    flat = np.moveaxis(t, dim, 0).reshape(t.shape[dim], -1)
    if n == "fro":
        n = 2
    return np.linalg.norm(flat, ord=n, axis=1)


def _channel_mask(t, dim, channel_mask) -> np.ndarray:
    """A mask of t's shape that is 1 on the channels where channel_mask (along `dim`) is True."""
    shape = [1] * t.ndim
    shape[dim] = t.shape[dim]
    return np.broadcast_to(channel_mask.reshape(shape), t.shape).astype(t.dtype)
