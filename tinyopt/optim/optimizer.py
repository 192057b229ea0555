"""`Optimizer`: the base class, with torch.optim.Optimizer's interface.

Parameters are held in `param_groups` (a list of dicts: 'params' plus that group's
hyperparameters, filled in from `defaults`); per-parameter state (momentum buffers, moment
estimates, the step count) lives in `state`, a dict keyed by the parameter Tensor. `step()` reads
each parameter's `.grad` and updates `.data` in place.

How a subclass is written (the class manages state; the math lives in functions, as in torch):

- `_check_hyperparameters(h)` (a classmethod): validate, and normalise in place, one dict of
  hyperparameters with the shared checks of `tinyopt.optim.validation`. The base class calls it
  for the defaults, for every param group added later and for every group `load_state_dict` would
  install, before anything is changed.
- `step(closure=None)`: `self._gradients()` reads and checks every gradient of every group first
  (an ndarray or a Tensor's `.data`, a float array of the parameter's shape and dtype), then the
  subclass creates state and calls `self._update(group, p, formula, arrays, hyper, scalars)` once
  per parameter.
- `_update` is the one place that chooses how a formula runs (as torch's `adam()` chooses between
  `_single_tensor_adam` and `_fused_adam`): the readable NumPy formula (recording its quantities)
  while a Trace is attached, the Numba kernel where the formula has one, the arrays can be updated
  in place through flat views and the group does not say `fused=False`, the NumPy formula
  otherwise. `TINYOPT_KERNELS=reference` makes the kernel entry point run the NumPy twin.

`state_dict()` uses torch's layout: parameters are replaced by their position across all groups,
`{'state': {index: {name: value}}, 'param_groups': [{..., 'params': [indices]}]}`, plus
`'type'`: the optimizer's class name. The step count is a Python int. `load_state_dict` checks
everything (the type, the groups, every hyperparameter, every state entry's shape) before it
changes anything, then copies, so a resumed run continues bit for bit like the uninterrupted one
(tests/test_optim_state.py) and a refused load leaves the optimizer as it was.
"""
from __future__ import annotations

import copy

import numpy as np

from tinyopt.autograd import enable_grad
from tinyopt.dtypes import is_floating_point
from tinyopt.kernels import optim_update
from tinyopt.optim import validation
from tinyopt.optim.trace import Trace
from tinyopt.tensor import Tensor

# Keys that schedulers add to param groups (torch's names); they are not an optimizer's hyperparameters.
SCHEDULER_GROUP_KEYS = frozenset({"initial_lr", "max_lr", "min_lr", "base_momentum", "max_momentum"})


def grad_array(grad) -> np.ndarray | None:
    """The ndarray behind a `.grad`: an ndarray itself, or the `.data` of a Tensor (torch's `p.grad`
    is a Tensor without a graph). None for anything else."""
    if isinstance(grad, np.ndarray):
        return grad
    data = getattr(grad, "data", None)
    return data if isinstance(data, np.ndarray) else None


def checked_grad(p, index: int) -> np.ndarray:
    """`p.grad` as an ndarray, after checking that it can update `p`: a float array of `p`'s shape
    and dtype. A mismatched gradient would otherwise be applied in flat order (a (3, 2) gradient
    for a (2, 3) parameter) or, in the fused kernels, read past its end."""
    g = grad_array(p.grad)
    if g is not None and g.shape == p.shape and g.dtype == p.dtype and is_floating_point(g.dtype):
        return g  # the usual case, tested first: this runs for every parameter at every step
    where = f"parameter {index} (shape {tuple(p.shape)}, {p.dtype})"
    if g is None:
        inner = getattr(p.grad, "data", p.grad)
        raise TypeError(f"the gradient of {where} is a {type(inner).__name__}: assign an ndarray or a Tensor to .grad")
    if not is_floating_point(g.dtype):
        raise TypeError(f"the gradient of {where} has dtype {g.dtype}: gradients must be floating-point arrays")
    if g.shape != p.shape:
        raise ValueError(f"the gradient of {where} has shape {g.shape}: it must have the parameter's shape")
    raise TypeError(
        f"the gradient of {where} has dtype {g.dtype}: it must have the parameter's dtype, as in torch "
        f"(which refuses the assignment); cast it, e.g. p.grad = g.astype(np.{p.dtype})")


class Optimizer:
    # Every optimizer class, so a foreign state dict can be named by its hyperparameters (see
    # `_type_of_groups`): torch's state_dict layout has no field for the optimizer's type.
    _classes: list = []

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Optimizer._classes.append(cls)

    def __init__(self, params, defaults: dict):
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or dicts, "
                f"but got {type(params).__name__} (wrap a single parameter in a list)"
            )
        if isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, not a set")
        defaults = dict(defaults)
        self._check_hyperparameters(defaults)
        self.defaults = defaults
        self.state: dict = {}
        self.param_groups: list = []
        self._tracer = None  # a tinyopt.optim.trace.Trace while one is attached
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------------ hyperparameters
    @classmethod
    def _check_hyperparameters(cls, h: dict) -> None:
        """Validate (and normalise in place) one dict of hyperparameters; subclasses extend it.
        The base class knows only the learning rate."""
        if "lr" in h:
            validation.check_lr(h["lr"])

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own hyperparameters (missing ones come from `defaults`).

        Like torch: used to unfreeze layers during fine-tuning, or to give a new head its own lr.
        Unlike torch, the group's hyperparameters are checked like the constructor's.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        group = dict(param_group)
        if "params" not in group:
            raise ValueError("a param group needs a 'params' entry")
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
        self._check_group(group, len(self.param_groups))
        self.param_groups.append(group)

    def _check_group(self, group: dict, index: int) -> None:
        try:
            self._check_hyperparameters(group)
        except (ValueError, TypeError) as e:
            raise type(e)(f"param group {index}: {e}") from None

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's gradient: to None (the default, like torch) or to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                g = grad_array(p.grad)
                if set_to_none or g is None:
                    p.grad = None
                else:
                    g[...] = 0

    def step(self, closure=None):  # pragma: no cover - interface
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers for subclasses
    def _evaluate_closure(self, closure):
        """torch's convention: the closure re-evaluates the loss with gradients on and returns it."""
        if closure is None:
            return None
        with enable_grad():
            return closure()

    def _gradients(self) -> list:
        """[(group, [(p, g), ...]), ...] for the parameters that have a gradient, every gradient read
        (ndarray or Tensor) and checked before anything is updated: a step that raises has changed
        nothing."""
        out, index = [], 0
        for group in self.param_groups:
            pairs = []
            for p in group["params"]:
                if p.grad is not None:
                    pairs.append((p, checked_grad(p, index)))
                index += 1
            out.append((group, pairs))
        return out

    def _param_index(self, p) -> int:
        """Position of `p` across all groups: the key `state_dict()` and the trace use."""
        i = 0
        for group in self.param_groups:
            for q in group["params"]:
                if q is p:
                    return i
                i += 1
        raise KeyError("parameter is not in this optimizer")

    def _update(self, group, p, formula, arrays, hyper: dict, scalars: dict | None = None) -> None:
        """Run one parameter's update: the one place that chooses the implementation.

        `formula` is either a `kernels.dispatch` op (its `.reference` is the readable NumPy
        formula, its `.fast` the Numba kernel) or a plain NumPy function; it is called as
        `formula(*arrays, **hyper)` and updates the arrays (the parameter first) in place.

        - a Trace is attached: the NumPy formula, which fills a dict with its quantities under the
          docstring's names (recorded with θ_{t−1} and θ_t);
        - the formula has a kernel, the group does not say `fused=False`, and every array is
          C-contiguous of one float dtype (so flat views update it in place): the kernel op (the
          Numba twin; the NumPy twin under TINYOPT_KERNELS=reference);
        - otherwise: the NumPy formula, which works on any strides.
        """
        reference = getattr(formula, "reference", formula)
        if self.tracing:
            theta_prev = p.data.copy()
            quantities: dict = {}
            reference(*arrays, **hyper, trace=quantities)
            self._record(p, group, {"theta_prev": theta_prev, **quantities, "theta": p.data}, scalars)
        elif reference is not formula and group.get("fused") is not False and optim_update.fusable(*arrays):
            formula(*arrays, **hyper)
        else:
            reference(*arrays, **hyper)

    def _record(self, p, group, quantities: dict, scalars: dict | None = None) -> None:
        """Hand this step's intermediate quantities of `p` to the attached Trace, if any."""
        if self._tracer is not None:
            self._tracer._collect(self, p, group, quantities, scalars or {})

    @property
    def tracing(self) -> bool:
        return self._tracer is not None

    def trace(self, k: int = 4, params=None) -> Trace:
        """Attach and return a `Trace` that records every step's formula quantities (see trace.py).

        Use as a context manager, `with opt.trace(k=4) as tr: ...; print(tr.table())`, or keep the
        object and call `tr.detach()` when done.
        """
        return Trace(self, k=k, params=params)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """{'state': {index: {name: value}}, 'param_groups': [{..., 'params': [indices]}], 'type': name},
        with parameters replaced by their position across groups (torch's layout); arrays are copies."""
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
        each parameter's dtype), so that training continues exactly where it was saved.

        Everything is checked first (that it is this optimizer type's state, the number of groups
        and parameters, every hyperparameter, every state entry's shape): a load that raises has
        changed nothing."""
        groups, state = self._checked_state_dict(state_dict)
        for group, values in zip(self.param_groups, groups):
            group.update(values)
        self.state = state

    def _checked_state_dict(self, state_dict):
        """(new values per group, new state) from `state_dict`, or a ValueError; changes nothing."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError(f"{name}.load_state_dict expects a dict with 'state' and 'param_groups' "
                             "(what Optimizer.state_dict() returns)")
        saved_groups = state_dict["param_groups"]
        saved_type = self._type_of_groups(saved_groups)
        if saved_type is not None and saved_type != name:
            raise ValueError(f"cannot load a {saved_type} optimizer's state into {name}: "
                             "an optimizer loads only the state of its own type")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved_groups)} parameter groups, this optimizer has {len(self.param_groups)}"
            )
        new_groups = []
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"loaded state dict's parameter group {i} has {len(saved['params'])} parameters, "
                    f"this optimizer's has {len(group['params'])}"
                )
            missing = sorted(set(self.defaults) - set(saved))
            if missing:
                what = f"a {saved_type}" if saved_type else "another optimizer type's"
                raise ValueError(f"cannot load {what} state into {name}: its parameter group {i} lacks "
                                 f"{name}'s hyperparameters {missing}")
            values = {k: copy.deepcopy(v) for k, v in saved.items() if k != "params"}
            merged = {**{k: v for k, v in group.items() if k != "params"}, **values}
            self._check_group(merged, i)
            new_groups.append({k: merged[k] for k in values})
        params = [p for g in self.param_groups for p in g["params"]]
        new_state = {}
        for key, entries in state_dict["state"].items():
            try:
                i = int(key)
            except (TypeError, ValueError):
                raise ValueError(f"state key {key!r} is not a parameter index") from None
            if not 0 <= i < len(params):
                raise ValueError(f"state for parameter {i}, but this optimizer has {len(params)} parameters")
            if not isinstance(entries, dict):
                raise ValueError(f"state of parameter {i} must be a dict, got {type(entries).__name__}")
            p = params[i]
            new_state[p] = {k: self._checked_state_entry(p, i, k, v) for k, v in entries.items()}
        return new_groups, new_state

    def _type_of_groups(self, saved_groups) -> str | None:
        """The name of the optimizer class whose hyperparameters are exactly those of the saved groups
        (this class when they match its own), or None when no single class has them."""
        keys = {k for g in saved_groups if isinstance(g, dict) for k in g if k != "params"}
        if keys == set(self.defaults):
            return type(self).__name__
        probe = [Tensor(np.zeros(1))]
        matches = []
        for cls in Optimizer._classes:
            try:
                defaults = cls(probe).defaults
            except (TypeError, ValueError):
                continue
            if set(defaults) == keys:
                matches.append(cls)
        # AdamW is Adam with another default: the same hyperparameters name the base class
        roots = [c for c in matches if not any(c is not m and issubclass(c, m) for m in matches)]
        return roots[0].__name__ if len(roots) == 1 else None

    def _checked_state_entry(self, p, index: int, key: str, value):
        """One state entry as it will be stored (a copy, float arrays cast to the parameter's dtype),
        or a ValueError. Arrays must have the parameter's shape unless `_state_shape` says otherwise."""
        if isinstance(value, np.ndarray) and is_floating_point(value.dtype):
            expected = self._state_shape(p, key)
            if value.ndim > 0 and expected is not None and value.shape != tuple(expected):
                raise ValueError(
                    f"state {key!r} of parameter {index} has shape {value.shape}, expected {tuple(expected)} "
                    f"(the parameter has shape {tuple(p.shape)})")
            return np.array(value, dtype=p.dtype, copy=True)
        if key == "step":
            step = np.asarray(value)
            if step.size != 1 or not np.isfinite(step).all() or step.item() < 0 or step.item() != int(step.item()):
                raise ValueError(f"state 'step' of parameter {index} must be a count >= 0, got {value!r}")
            return int(step.item())
        return copy.deepcopy(value)

    def _state_shape(self, p, key: str):
        """The shape a float array in `state[p][key]` must have (None: any). Default: the parameter's."""
        return p.shape

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(group):
                if k != "params":
                    lines.append(f"    {k}: {group[k]}")
        return "\n".join(lines) + "\n)"
