"""`GradScaler`: dynamic loss scaling (Micikevicius et al. 2018, §3.2), torch.amp.GradScaler's semantics.

Why: float16's smallest subnormal is 2⁻²⁴ ≈ 6·10⁻⁸ and its smallest normal 2⁻¹⁴ ≈ 6·10⁻⁵. Gradients of a
loss are often smaller, so computed in float16 they flush to zero (or lose their digits). Multiplying
the loss by S multiplies every gradient by S (backward is linear in its incoming gradient), moving them
into float16's range; dividing the float32 gradients by S before the step undoes it exactly when S is a
power of two. Too large an S overflows to ±∞, and the step is then skipped. bfloat16 has float32's
exponent range and needs no scaler.

The algorithm (S the scale, t the count of unskipped steps since the last change, all as torch):

    scale(loss)      = loss · S                         (S starts at init_scale)
    unscale_(opt)    g ← g · float32(1 / float64(S)) for every .grad of opt;
                     found_inf ← any g was ±∞ or NaN before unscaling
    step(opt)        unscale_(opt) unless already done; opt.step() only if not found_inf
    update()         found_inf (of any optimizer):  S ← S · backoff_factor,  t ← 0
                     else t ← t + 1; if t = growth_interval: S ← S · growth_factor (kept only if finite), t ← 0
    update(new_scale) S ← new_scale

S is a float32 (torch keeps it in a float32 tensor), so its products round to float32 as torch's do.
Calling unscale_ twice, or unscale_/step after step, before update() raises torch's RuntimeErrors.

tinyopt adds `history`: one record per update() (the scale used, whether the step was skipped, and
the first parameter, as "group g param i", whose gradient was not finite), for plots and traces.
"""
from __future__ import annotations

import numpy as np

from tinyopt import dtypes
from tinyopt.device import check_device

_READY, _UNSCALED, _STEPPED = "READY", "UNSCALED", "STEPPED"
_FIX = "This may indicate your script did not use scaler.scale(loss or outputs) earlier in the iteration."


def _fresh_state() -> dict:
    return {"stage": _READY, "found_inf": None, "first_nonfinite": None}


class GradScaler:
    def __init__(self, device: str = "cpu", init_scale: float = 2.0**16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, enabled: bool = True):
        check_device(device)
        self._device = device
        self._enabled = bool(enabled)
        self.history: list[dict] = []
        if self._enabled:
            if not growth_factor > 1.0:
                raise ValueError(f"The growth factor must be > 1.0, got {growth_factor}")
            if not backoff_factor < 1.0:
                raise ValueError(f"The backoff factor must be < 1.0, got {backoff_factor}")
            if not (isinstance(growth_interval, (int, np.integer)) and growth_interval >= 1):
                raise ValueError(f"growth_interval must be a positive int, got {growth_interval!r}")
            if not (np.isfinite(init_scale) and init_scale > 0):
                raise ValueError(f"init_scale must be a positive finite number, got {init_scale}")
            self._init_scale = float(init_scale)
            self._scale = None                 # float32 scalar, created by the first scale()
            self._growth_factor = float(growth_factor)
            self._backoff_factor = float(backoff_factor)
            self._growth_interval = int(growth_interval)
            self._init_growth_tracker = 0
            self._growth_tracker = None
            self._per_optimizer_states: dict = {}

    # ------------------------------------------------------------------ the loop

    def _lazy_init(self) -> None:
        self._scale = np.float32(self._init_scale)
        self._growth_tracker = int(self._init_growth_tracker)

    def _check(self, funcname: str) -> None:
        if self._scale is None:
            raise AssertionError(f"Attempted {funcname} but _scale is None.  " + _FIX)

    def _state(self, optimizer) -> dict:
        return self._per_optimizer_states.setdefault(id(optimizer), _fresh_state())

    def scale(self, outputs):
        """outputs · S, for a Tensor or a (nested) list/tuple of Tensors, multiplied in float32 (as torch).
        A 0-d 16-bit output (a loss) stays float32, so S · loss cannot overflow float16; others keep
        their dtype (torch's promotion of a tensor by a 0-d float32 tensor)."""
        from tinyopt.tensor import Tensor

        if not self._enabled:
            return outputs
        if isinstance(outputs, Tensor):
            if self._scale is None:
                self._lazy_init()
            scale = Tensor(np.asarray(self._scale, dtype=np.float32))
            if dtypes.is_floating_point(outputs.dtype) and outputs.dtype.itemsize < 4:
                # torch multiplies in float32; only a 0-d output is promoted to float32
                scaled = outputs.float() * scale
                return scaled if outputs.ndim == 0 else scaled.to(outputs.dtype)
            return outputs * scale.to(outputs.dtype)
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        raise ValueError("outputs must be a Tensor or an iterable of Tensors")

    def unscale_(self, optimizer) -> None:
        """Divide the optimizer's gradients by S in place and note whether any was inf/NaN."""
        if not self._enabled:
            return
        self._check("unscale_")
        state = self._state(optimizer)
        if state["stage"] == _UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if state["stage"] == _STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        grads = []
        for g_index, group in enumerate(optimizer.param_groups):
            for p_index, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                if p.grad.dtype == np.float16:
                    raise ValueError("Attempting to unscale FP16 gradients.")
                grads.append((f"group {g_index} param {p_index}", p.grad.data))
        inv_scale = np.float32(1.0 / np.float64(self._scale))
        found_inf, first = False, None
        for where, g in grads:      # validate (look for inf/NaN) first, then write
            if not np.all(np.isfinite(g.astype(np.float32) if g.dtype.itemsize < 4 else g)):
                found_inf = True
                first = first or where
        with np.errstate(over="ignore", invalid="ignore"):
            for _, g in grads:
                if g.dtype == np.float32 or g.dtype == np.float64:
                    np.multiply(g, g.dtype.type(inv_scale), out=g)
                else:   # bfloat16: multiply in float32, round once (torch's opmath)
                    g[...] = (g.astype(np.float32) * inv_scale).astype(g.dtype)
        state["found_inf"] = found_inf if grads else None
        state["first_nonfinite"] = first
        state["stage"] = _UNSCALED

    def step(self, optimizer, *args, **kwargs):
        """unscale_ (unless done), then optimizer.step(*args, **kwargs) unless a gradient was inf/NaN.
        Returns what optimizer.step returns (None when skipped)."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        self._check("step")
        state = self._state(optimizer)
        if state["stage"] == _STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] == _READY:
            self.unscale_(optimizer)
        if state["found_inf"] is None:
            raise AssertionError("No inf checks were recorded for this optimizer.")
        retval = None
        if not state["found_inf"]:
            retval = optimizer.step(*args, **kwargs)
        state["stage"] = _STEPPED
        return retval

    def update(self, new_scale=None) -> None:
        """Back off on inf/NaN, grow after growth_interval clean steps, or set S = new_scale."""
        from tinyopt.tensor import Tensor

        if not self._enabled:
            return
        self._check("update")
        used = float(self._scale)
        checked = [s for s in self._per_optimizer_states.values() if s["found_inf"] is not None]
        found_inf = any(s["found_inf"] for s in checked)
        if new_scale is not None:
            if isinstance(new_scale, float):
                self._scale = np.float32(new_scale)
            else:
                reason = ("new_scale should be a float or a 1-element tensor with requires_grad=False.")
                if not isinstance(new_scale, Tensor) or new_scale.numel() != 1 or new_scale.requires_grad:
                    raise AssertionError(reason)
                self._scale = np.float32(new_scale.data.reshape(()))
        else:
            if not checked:
                raise AssertionError("No inf checks were recorded prior to update.")
            if found_inf:
                self._scale = np.float32(float(self._scale) * self._backoff_factor)
                self._growth_tracker = 0
            else:
                successful = self._growth_tracker + 1
                if successful == self._growth_interval:
                    with np.errstate(over="ignore"):
                        grown = np.float32(float(self._scale) * self._growth_factor)
                    if np.isfinite(grown):
                        self._scale = grown
                    self._growth_tracker = 0
                else:
                    self._growth_tracker = successful
        first = next((s["first_nonfinite"] for s in checked if s["first_nonfinite"]), None)
        self.history.append({"step": len(self.history), "scale": used, "skipped": found_inf,
                             "first_nonfinite": first, "new_scale": float(self._scale)})
        self._per_optimizer_states = {}

    # ------------------------------------------------------------------ state

    def get_scale(self) -> float:
        if self._enabled:
            return self._init_scale if self._scale is None else float(self._scale)
        return 1.0

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        self._growth_factor = new_factor

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        self._backoff_factor = new_factor

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        self._growth_interval = new_interval

    def _get_growth_tracker(self) -> int:
        if self._enabled:
            return self._init_growth_tracker if self._growth_tracker is None else int(self._growth_tracker)
        return 0

    def is_enabled(self) -> bool:
        return self._enabled

    def state_dict(self) -> dict:
        """torch's five keys (empty when disabled); save it after update()."""
        if self._enabled:
            return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                    "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                    "_growth_tracker": self._get_growth_tracker()}
        return {}

    def load_state_dict(self, state_dict: dict) -> None:
        """Validated as a whole first (a bad dict changes nothing), then applied."""
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved "
                               "from a disabled instance of GradScaler.")
        keys = ("scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker")
        missing = [k for k in keys if k not in state_dict]
        if missing:
            raise KeyError(f"GradScaler state dict is missing {missing}")
        scale = float(state_dict["scale"])
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"GradScaler state dict has scale {scale}; it must be positive and finite")
        self._init_scale = scale
        if self._scale is not None:
            self._scale = np.float32(scale)
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._init_growth_tracker = int(state_dict["_growth_tracker"])
        if self._growth_tracker is not None:
            self._growth_tracker = self._init_growth_tracker


__all__ = ["GradScaler"]
