"""`Optimizer`: the base class, with torch.optim.Optimizer's interface.

Parameters are held in `param_groups` (a list of dicts: 'params' plus that group's
hyperparameters); per-parameter state (momentum buffers, moment estimates) lives in `state`,
keyed by the parameter. `step()` reads each parameter's `.grad` and updates `.data` in place.
"""
from __future__ import annotations

import copy

import numpy as np


class Optimizer:
    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.state: dict = {}
        self.param_groups: list = []
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict) -> None:
        group = dict(param_group)
        params = group["params"]
        group["params"] = [params] if not isinstance(params, (list, tuple)) else list(params)
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in existing for p in group["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad[...] = 0

    def step(self, closure=None):  # pragma: no cover - interface
        raise NotImplementedError

    def _params_with_grad(self, group):
        return [p for p in group["params"] if p.grad is not None]

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """{'state': {index: {name: value}}, 'param_groups': [{..., 'params': [indices]}]}, with
        parameters replaced by their position across groups (torch's layout)."""
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {index[id(p)]: copy.deepcopy(s) for p, s in self._state_items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"loaded state has {len(groups)} parameter groups, this optimizer has {len(self.param_groups)}")
        params = [p for g in self.param_groups for p in g["params"]]
        for saved, group in zip(groups, self.param_groups):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError("loaded state's parameter groups differ in size from this optimizer's")
            for k, v in saved.items():
                if k != "params":
                    group[k] = v
        self.state = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            self.state[p] = {k: (np.array(v, dtype=p.dtype, copy=True) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else copy.deepcopy(v)) for k, v in s.items()}

    def _state_items(self):
        return list(self.state.items())

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(group):
                if k != "params":
                    lines.append(f"    {k}: {group[k]}")
        return "\n".join(lines) + "\n)"
