"""float32 master weights for a model whose parameters are float16/bfloat16 (Micikevicius et al. 2018, §3.1).

Why: an update Δw smaller than half the spacing of the numbers around w is rounded away,

    fp16(w + Δw) = w    when |Δw| < ½·ulp(w),    ulp(1) = 2⁻¹⁰ ≈ 0.001 in float16 (2⁻⁷ in bfloat16)

so with lr·g ≈ 1e-4 a float16 weight near 1 never moves, however many steps are taken. The paper
keeps a float32 copy m of every weight, updates m, and rounds it into the 16-bit weight used by the
forward pass:

    g32 = float32(g16);   m ← optimizer_step(m, g32);   w16 ← round_16(m)

`master_weights(optimizer)` does that for an optimizer built on 16-bit parameters (before its first
step): its parameter groups then hold float32 masters, each 16-bit parameter's gradient is copied to
its master as soon as backward accumulates it (so `GradScaler.unscale_`/`step` see float32
gradients), and `step()` rounds the updated masters back into the model. torch has no such helper
(apex's O2 mode did this); with autocast the parameters are float32 already and none is needed.
"""
from __future__ import annotations

import numpy as np

from tinyopt.autograd import no_grad
from tinyopt.dtypes import is_floating_point


def _low(p) -> bool:
    return is_floating_point(p.dtype) and p.dtype.itemsize == 2


class MasterWeights:
    """An optimizer over float32 copies of the 16-bit parameters of `optimizer` (see the module docstring)."""

    def __init__(self, optimizer):
        from tinyopt.tensor import Tensor

        if optimizer.state:
            raise ValueError("master_weights needs an optimizer that has not stepped yet (its state would "
                             "belong to the 16-bit parameters)")
        self.optimizer = optimizer
        self.pairs = []           # (16-bit model parameter, float32 master)
        plan = [(group, i, p) for group in optimizer.param_groups for i, p in enumerate(group["params"]) if _low(p)]
        if not plan:
            raise ValueError("master_weights: the optimizer has no float16/bfloat16 parameters")
        for group, i, p in plan:
            master = Tensor(p.data.astype(np.float32), requires_grad=True)
            group["params"][i] = master
            p.register_post_accumulate_grad_hook(self._copy_grad(master))
            self.pairs.append((p, master))

    @staticmethod
    def _copy_grad(master):
        def hook(param):
            master.grad = param.grad.data.astype(np.float32)
        return hook

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    @property
    def state(self):
        return self.optimizer.state

    @property
    def defaults(self):
        return self.optimizer.defaults

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none)
        for p, _ in self.pairs:
            p.grad = None

    def step(self, closure=None):
        result = self.optimizer.step(closure) if closure is not None else self.optimizer.step()
        with no_grad():
            for p, master in self.pairs:
                p.copy_(master)           # rounds to the parameter's 16-bit dtype
        return result

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict) -> None:
        self.optimizer.load_state_dict(state_dict)
        self.sync_from_model()

    def sync_from_model(self) -> None:
        """Reset each master to its 16-bit parameter (after loading 16-bit weights into the model)."""
        with no_grad():
            for p, master in self.pairs:
                master.copy_(p)


def master_weights(optimizer) -> MasterWeights:
    return MasterWeights(optimizer)


__all__ = ["MasterWeights", "master_weights"]
