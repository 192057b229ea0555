"""`Optimizer`: the base class, with torch.optim.Optimizer's interface.

Parameters are held in `param_groups` (a list of dicts: 'params' plus that group's
hyperparameters, filled in from `defaults`); per-parameter state (momentum buffers, moment
estimates, the step count) lives in `state`, a dict keyed by the parameter Tensor. `step()` reads
each parameter's `.grad` and updates `.data` in place.

What a subclass writes: `__init__` (validate hyperparameters exactly where torch does, then call
`super().__init__(params, defaults)`) and `step(closure=None)`. Inside `step`, a subclass that
wants to be traced calls `self._record(p, group, quantities, scalars)` with its formula's
intermediate quantities under the names its docstring uses; `tinyopt.optim.trace.Trace` collects
them (see there). Nothing is recorded, and nothing is copied, unless a Trace is attached.

`state_dict()` uses torch's layout: parameters are replaced by their position across all groups,
`{'state': {index: {name: value}}, 'param_groups': [{..., 'params': [indices]}]}`, and the step
count is a Python int. `load_state_dict` copies everything, so a resumed run continues bit for bit
like the uninterrupted one (tested in tests/test_optim_state.py).
"""
from __future__ import annotations

import copy

import numpy as np

from tinyopt.autograd import enable_grad
from tinyopt.tensor import Tensor


class Optimizer:
    def __init__(self, params, defaults: dict):
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or dicts, "
                f"but got {type(params).__name__} (wrap a single parameter in a list)"
            )
        if isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, not a set")
        self.defaults = dict(defaults)
        self.state: dict = {}
        self.param_groups: list = []
        self._tracer = None  # a tinyopt.optim.trace.Trace while one is attached
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own hyperparameters (missing ones come from `defaults`).

        Like torch: used to unfreeze layers during fine-tuning, or to give a new head its own lr.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, not a set")
        else:
            params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        group["params"] = params
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in existing for p in params) or len({id(p) for p in params}) != len(params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's gradient: to None (the default, like torch) or to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad.data[...] = 0

    def step(self, closure=None):  # pragma: no cover - interface
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers for subclasses
    def _evaluate_closure(self, closure):
        """torch's convention: the closure re-evaluates the loss with gradients on and returns it."""
        if closure is None:
            return None
        with enable_grad():
            return closure()

    @staticmethod
    def _params_with_grad(group):
        return [p for p in group["params"] if p.grad is not None]

    def _param_index(self, p) -> int:
        """Position of `p` across all groups: the key `state_dict()` and the trace use."""
        i = 0
        for group in self.param_groups:
            for q in group["params"]:
                if q is p:
                    return i
                i += 1
        raise KeyError("parameter is not in this optimizer")

    def _record(self, p, group, quantities: dict, scalars: dict | None = None) -> None:
        """Hand this step's intermediate quantities of `p` to the attached Trace, if any."""
        if self._tracer is not None:
            self._tracer._collect(self, p, group, quantities, scalars or {})

    @property
    def tracing(self) -> bool:
        return self._tracer is not None

    def trace(self, k: int = 4, params=None):
        """Attach and return a `Trace` that records every step's formula quantities (see trace.py).

        Use as a context manager, `with opt.trace(k=4) as tr: ...; print(tr.table())`, or keep the
        object and call `tr.detach()` when done.
        """
        from tinyopt.optim.trace import Trace

        return Trace(self, k=k, params=params)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """{'state': {index: {name: value}}, 'param_groups': [{..., 'params': [indices]}]}, with
        parameters replaced by their position across groups (torch's layout); arrays are copies."""
        index: dict = {}
        groups = []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {index[id(p)]: copy.deepcopy(s) for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a `state_dict()`: hyperparameters per group, and per-parameter state (copied, cast to
        each parameter's dtype), so that training continues exactly where it was saved."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(groups)} parameter groups, this optimizer has {len(self.param_groups)}"
            )
        for i, (saved, group) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"loaded state dict's parameter group {i} has {len(saved['params'])} parameters, "
                    f"this optimizer's has {len(group['params'])}"
                )
        params = [p for g in self.param_groups for p in g["params"]]
        for saved, group in zip(groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    group[k] = copy.deepcopy(v)
        self.state = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            restored = {}
            for k, v in s.items():
                if isinstance(v, np.ndarray) and v.dtype.kind == "f":
                    if v.shape != p.shape and v.ndim > 0:
                        raise ValueError(
                            f"state {k!r} of parameter {i} has shape {v.shape}, the parameter has shape {p.shape}"
                        )
                    restored[k] = np.array(v, dtype=p.dtype, copy=True)
                elif k == "step":
                    restored[k] = int(np.asarray(v).item())
                else:
                    restored[k] = copy.deepcopy(v)
            self.state[p] = restored

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(group):
                if k != "params":
                    lines.append(f"    {k}: {group[k]}")
        return "\n".join(lines) + "\n)"


def check_nonnegative(name: str, value, what: str | None = None) -> None:
    """torch's `if not 0.0 <= value: raise ValueError(f"Invalid {what}: {value}")`."""
    if not 0.0 <= value:
        raise ValueError(f"Invalid {what or name + ' value'}: {value}")
