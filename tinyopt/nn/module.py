"""`Module`: the base class of layers and models, with torch.nn.Module's interface.

Assigning a `Parameter` or a `Module` to an attribute registers it (in assignment order, which
makes `named_parameters()` and `state_dict()` keys stable); `register_buffer` registers state
that is saved but not trained (BatchNorm's running statistics), kept as a Tensor (requires_grad False),
as in torch; an ndarray given is wrapped without a copy (`from_numpy`: the memory is shared).

Calling a module runs, in order: its forward pre-hooks (`hook(module, args)`, which may return
new args), `forward`, its forward hooks (`hook(module, args, output)`, which may return a new
output) — torch's hooks, which pruning and data-parallel training build on.
"""
from __future__ import annotations

import collections
from collections import OrderedDict

import numpy as np

from tinyopt import dtypes
from tinyopt.autograd.graph import RemovableHandle
from tinyopt.device import check_device, device
from tinyopt.errors import ShapeError
from tinyopt.nn.parameter import Parameter
from tinyopt.tensor import Tensor

# What load_state_dict returns (torch's `_IncompatibleKeys`).
IncompatibleKeys = collections.namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers_set", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", [])
        object.__setattr__(self, "_forward_hooks", [])
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() before assigning {name!r}")
        if name in self._buffers and not isinstance(value, (Parameter, Module)):
            # A buffer reassigned (e.g. running_mean) stays a buffer: torch replaces it by the new Tensor.
            object.__setattr__(self, name, _as_buffer(value, name))
            return
        # Replacing a module (or parameter) by another keeps its place in registration order, as in
        # torch: Sequential runs its layers in that order, so `seq.0 = new_layer` must stay first.
        if isinstance(value, Module) and name in self._modules:
            self._modules[name] = value
            object.__setattr__(self, name, value)
            return
        if isinstance(value, Parameter) and name in self._parameters:
            self._parameters[name] = value
            object.__setattr__(self, name, value)
            return
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        self._non_persistent_buffers_set.discard(name)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        self._non_persistent_buffers_set.discard(name)
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param) -> None:
        if param is None:
            object.__setattr__(self, name, None)
            self._parameters.pop(name, None)
        else:
            setattr(self, name, param)

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """Register a Tensor that belongs to the module's state but is not trained (torch's
        register_buffer). A Tensor is kept as given (the same object); an ndarray (or NumPy scalar) is
        wrapped without a copy, sharing its memory as `from_numpy` does; `None` registers an empty slot.
        Non-persistent buffers are in `named_buffers()` but stay out of `state_dict()`."""
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"buffer name must be a non-empty string without '.', got {name!r}")
        if hasattr(self, name) and name not in self._buffers and name not in self._parameters \
                and name not in self._modules:
            raise KeyError(f"attribute {name!r} already exists")
        if isinstance(tensor, Parameter):
            raise TypeError(f"cannot register a Parameter as buffer {name!r}; use register_parameter")
        value = _as_buffer(tensor, name)
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__setattr__(self, name, value)
        self._buffers[name] = None  # the value lives in the attribute; looked up by name
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module) -> None:
        setattr(self, name, module)

    # ------------------------------------------------------------------ calling
    def forward(self, *args, **kwargs):  # pragma: no cover - interface
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        if not (self._forward_pre_hooks or self._forward_hooks):
            return self.forward(*args, **kwargs)
        for hook in list(self._forward_pre_hooks):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    def register_forward_pre_hook(self, hook) -> RemovableHandle:
        """`hook(module, args) -> None | new args`, run before every forward (torch's API)."""
        self._forward_pre_hooks.append(hook)
        return RemovableHandle(self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook) -> RemovableHandle:
        """`hook(module, args, output) -> None | new output`, run after every forward (torch's API)."""
        self._forward_hooks.append(hook)
        return RemovableHandle(self._forward_hooks, hook)

    # ------------------------------------------------------------------ traversal
    def children(self):
        return iter(self._modules.values())

    def named_children(self):
        return iter(self._modules.items())

    def named_modules(self, prefix: str = ""):
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def get_submodule(self, target: str) -> "Module":
        """The module at dotted path `target` ("" is self), as torch."""
        module = self
        for part in target.split(".") if target else []:
            if part not in module._modules:
                raise AttributeError(f"{type(module).__name__} has no submodule {part!r} (looking up {target!r})")
            module = module._modules[part]
        return module

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        """(name, Parameter) pairs in registration order, each parameter once."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, p in module._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{module_name}.{name}" if module_name else name), p

    def parameters(self, recurse: bool = True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = ""):
        """(dotted name, Tensor) for every buffer that is not None, persistent or not (as torch)."""
        return self._named_buffers(prefix)

    def _named_buffers(self, prefix: str = "", persistent_only: bool = False):
        for module_name, module in self.named_modules(prefix):
            for name in module._buffers:
                if persistent_only and name in module._non_persistent_buffers_set:
                    continue
                value = getattr(module, name)
                if value is not None:
                    yield (f"{module_name}.{name}" if module_name else name), value

    def buffers(self):
        for _, b in self.named_buffers():
            yield b

    # ------------------------------------------------------------------ modes and grads
    def train(self, mode: bool = True):
        if not isinstance(mode, (bool, np.bool_)):
            raise ValueError(f"training mode is expected to be boolean, got {type(mode).__name__} {mode!r}")
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.data[...] = 0

    # ------------------------------------------------------------------ device and dtype
    def to(self, *args, **kwargs):
        """to(device), to(dtype), to(device, dtype), with keywords too. The only device is the CPU; a
        floating-point dtype converts every floating-point parameter and buffer in place (so an
        optimizer built on them keeps working), as torch does."""
        dtype = kwargs.pop("dtype", None)
        kwargs.pop("non_blocking", None)
        if "device" in kwargs:
            check_device(kwargs.pop("device"))
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, Tensor):
                dtype = a.dtype
            elif isinstance(a, device) or (isinstance(a, str) and not dtypes.is_dtype_name(a)):
                check_device(a)
            else:
                dtype = a
        if dtype is None:
            return self
        dtype = dtypes.as_dtype(dtype)
        if not dtypes.is_floating_point(dtype):
            raise TypeError(f"nn.Module.to only accepts floating point dtypes, but got desired dtype={dtype}")
        return self._apply_dtype(dtype)

    def _apply_dtype(self, dtype):
        for p in self.parameters():
            if dtypes.is_floating_point(p.dtype) and p.dtype != dtype:
                p.data = p.data.astype(dtype)
                if p.grad is not None:
                    p.grad = np.asarray(p.grad).astype(dtype)
        for module in self.modules():
            for name in module._buffers:
                value = getattr(module, name)
                if value is not None and dtypes.is_floating_point(value.dtype) and value.dtype != dtype:
                    value.data = value.data.astype(dtype)  # the same Tensor, as for parameters
        return self

    def float(self):
        return self._apply_dtype(np.dtype(np.float32))

    def double(self):
        return self._apply_dtype(np.dtype(np.float64))

    def half(self):
        return self._apply_dtype(np.dtype(np.float16))

    def bfloat16(self):
        return self._apply_dtype(np.dtype(dtypes.bfloat16))

    def cpu(self):
        return self

    def cuda(self, device=None):
        check_device("cuda")

    def requires_grad_(self, requires_grad: bool = True):
        """Freeze (False) or unfreeze every parameter: frozen ones get no `.grad` in backward."""
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def apply(self, fn):
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Copies of every parameter and persistent buffer, by dotted name, as ndarrays (buffers
        the same way as parameters; torch gives detached Tensors, which `np.asarray` also reads)."""
        state = OrderedDict()
        for name, p in self.named_parameters():
            state[name] = p.data.copy()
        for name, b in self._named_buffers(persistent_only=True):
            state[name] = b.data.copy()
        return state

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Copy values (ndarrays, Tensors or nested lists) into the existing arrays, so optimizers
        holding the parameters keep working.

        Everything is checked before anything is written: with `strict=True`, missing keys and
        unexpected keys, and in any case shape mismatches and values that cannot be cast to the
        parameter's dtype, raise one `RuntimeError` that lists them all, and nothing is changed.
        Returns `IncompatibleKeys(missing_keys, unexpected_keys)` (torch's named tuple).
        """
        if assign:
            raise NotImplementedError("load_state_dict(assign=True) is not supported; values are copied in place")
        if not isinstance(state_dict, collections.abc.Mapping):
            raise TypeError(f"expected a dict of name -> array (model.state_dict()), got {type(state_dict).__name__}; "
                            "to load a checkpoint file use to.load(path) first")
        state_dict = {k: (v.data if isinstance(v, Tensor) else v) for k, v in state_dict.items()}
        own = self._state_targets()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched_keys = [k for k in own if k in state_dict and tuple(np.shape(state_dict[k])) != tuple(np.shape(own[k][0]()))]
        mismatched = [f"{k}: checkpoint {tuple(np.shape(state_dict[k]))} vs model {tuple(np.shape(own[k][0]()))}"
                      for k in mismatched_keys]
        problems = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if mismatched:
            problems.append("shape mismatches: " + "; ".join(mismatched))
        values = {}
        for k, (get, _) in own.items():
            if k not in state_dict or k in mismatched_keys:
                continue
            value = np.asarray(state_dict[k])
            target = np.asarray(get()).dtype
            if value.dtype == object or not np.can_cast(value.dtype, target, casting="same_kind"):
                problems.append(f"{k}: a {value.dtype} value cannot be loaded into a {target} tensor")
            else:
                values[k] = value
        if problems:
            raise RuntimeError(f"error loading state_dict into {type(self).__name__}:\n  " + "\n  ".join(problems))
        for k, value in values.items():
            own[k][1](value)
        return IncompatibleKeys(missing, unexpected)

    def _state_targets(self):
        """name → (getter, setter) for every entry of state_dict()."""
        targets = OrderedDict()
        for name, p in self.named_parameters():
            targets[name] = (lambda p=p: p.data, lambda v, p=p: np.copyto(p.data, v, casting="same_kind"))
        for module_name, module in self.named_modules():
            for bname in module._buffers:
                if bname in module._non_persistent_buffers_set or getattr(module, bname) is None:
                    continue
                key = f"{module_name}.{bname}" if module_name else bname

                def setter(v, m=module, n=bname):
                    # Into the buffer's own memory (as torch's copy_), so a reference kept to it sees the
                    # loaded values; the version counter records the in-place write.
                    current = getattr(m, n)
                    np.copyto(current.data, v, casting="same_kind")
                    current._version.value += 1

                targets[key] = (lambda m=module, n=bname: getattr(m, n).data, setter)
        return targets

    # ------------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        children = list(self._modules.items())
        if not children:
            return lines[0] + ")"
        for name, child in children:
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        return "\n".join(lines) + "\n)"


def _as_buffer(value, name: str):
    """What a buffer slot holds: None, or a Tensor that requires no grad. A Tensor is kept as it is
    (torch keeps the object); an ndarray or NumPy scalar is wrapped without a copy (from_numpy)."""
    if value is None:
        return None
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (np.ndarray, np.generic)):
        return Tensor._wrap(value if isinstance(value, np.ndarray) else np.asarray(value))
    raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' (Tensor, ndarray or None expected)")


def check_last_dim(module: Module, x: Tensor, expected: int, what: str = "features") -> None:
    if x.ndim == 0 or x.shape[-1] != expected:
        raise ShapeError(
            f"{module!r} expects input of shape (*, {expected}) ({expected} {what}), "
            f"got input of shape {tuple(x.shape)}"
        )
