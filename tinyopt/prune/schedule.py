"""When to prune: one-shot, iterative prune → fine-tune (Han et al. 2015), and automated gradual
pruning (Zhu & Gupta 2017) as a hook for the PyTorch-style loop and a Keras callback.

AGP (Zhu & Gupta 2017, "To prune, or not to prune", eq. 1): the sparsity at step t is

    s_t = s_f + (s_i − s_f) · (1 − (t − t₀) / (n Δt))³     for t₀ ≤ t ≤ t₀ + n Δt,

s_t = s_i before t₀ and s_f after t₀ + n Δt; the masks are updated every Δt steps. Symbols in the
code: s_i = initial_sparsity, s_f = final_sparsity, t₀ = begin_step, n = n_steps (pruning events),
Δt = frequency. Each event prunes, among the weights still unpruned, just enough to reach s_t
(`prune.l1_unstructured` with an int amount, so masks only grow, as in the paper).
"""
from __future__ import annotations

import numpy as np

from tinyopt.keras.callbacks import Callback
from tinyopt.loop import Hooks
from tinyopt.nn.utils import prune as torch_prune
from tinyopt.prune.criteria import default_targets


def agp_sparsity(step: int, final_sparsity: float, initial_sparsity: float = 0.0, begin_step: int = 0,
                 n_steps: int = 10, frequency: int = 1) -> float:
    """s_t of Zhu & Gupta's cubic schedule (see the module docstring), evaluated at the last pruning
    event t ≤ step (the sparsity is constant between events)."""
    _check_agp(final_sparsity, initial_sparsity, begin_step, n_steps, frequency)
    if step < begin_step:
        return float(initial_sparsity)
    t = begin_step + min((step - begin_step) // frequency, n_steps) * frequency
    progress = (t - begin_step) / (n_steps * frequency)
    return float(final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - progress) ** 3)


def _check_agp(final_sparsity, initial_sparsity, begin_step, n_steps, frequency):
    if not 0.0 <= initial_sparsity <= final_sparsity < 1.0:
        raise ValueError(f"need 0 <= initial_sparsity <= final_sparsity < 1, got {initial_sparsity}, {final_sparsity}")
    if int(n_steps) != n_steps or n_steps < 1 or int(frequency) != frequency or frequency < 1:
        raise ValueError(f"n_steps and frequency must be positive integers, got {n_steps}, {frequency}")
    if begin_step < 0:
        raise ValueError(f"begin_step must be >= 0, got {begin_step}")


def sparsity(module, name: str = "weight") -> float:
    """The fraction of zeros in module.<name> (its mask when pruned, else its values)."""
    mask = getattr(module, name + "_mask", None)
    values = np.asarray(mask if mask is not None else getattr(module, name).data)
    return float(np.mean(values == 0))


def prune_to(targets, target_sparsity: float, scope: str = "layer", importance_scores=None) -> None:
    """Prune each (module, name) in `targets` by magnitude until its sparsity is `target_sparsity`
    (scope="layer"), or all of them together (scope="global", prune.global_unstructured). Only
    unpruned weights are candidates, so calling it with growing sparsities grows the masks."""
    if not 0.0 <= target_sparsity <= 1.0:
        raise ValueError(f"target_sparsity must be in [0, 1], got {target_sparsity}")
    if scope not in ("layer", "global"):
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
    targets = list(targets)
    if scope == "global":
        total = sum(getattr(m, n).data.size for m, n in targets)
        zeros = sum(round(sparsity(m, n) * getattr(m, n).data.size) for m, n in targets)
        k = max(0, round(target_sparsity * total) - zeros)
        torch_prune.global_unstructured(targets, torch_prune.L1Unstructured, importance_scores=importance_scores,
                                        amount=int(k))
        return
    for m, n in targets:
        size = getattr(m, n).data.size
        k = max(0, round(target_sparsity * size) - round(sparsity(m, n) * size))
        scores = None if importance_scores is None else importance_scores.get((m, n))
        torch_prune.l1_unstructured(m, n, amount=int(k), importance_scores=scores)


class AGP(Hooks):
    """Automated gradual pruning as `tinyopt.loop.Hooks`: pass it as `hooks=` to `train_epoch`
    (after every applied update it moves the masks to s_t of the cubic schedule), or wrap it in
    `AGPCallback` for Keras `fit`. `targets`: (module, name) pairs (default every Linear/Conv2d
    weight of `model`); `scope`: "layer" (each layer to s_t) or "global"."""

    def __init__(self, model, final_sparsity: float, initial_sparsity: float = 0.0, begin_step: int = 0,
                 n_steps: int = 10, frequency: int = 1, targets=None, scope: str = "layer"):
        _check_agp(final_sparsity, initial_sparsity, begin_step, n_steps, frequency)
        if scope not in ("layer", "global"):
            raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
        self.model = model
        self.final_sparsity, self.initial_sparsity = float(final_sparsity), float(initial_sparsity)
        self.begin_step, self.n_steps, self.frequency = int(begin_step), int(n_steps), int(frequency)
        self.targets = None if targets is None else list(targets)
        self.scope = scope
        self.steps_done = 0
        self.history = []  # (step, s_t) at each pruning event

    def _targets(self):
        if self.targets is None:
            self.targets = default_targets(self.model)
            if not self.targets:
                raise ValueError(f"{type(self.model).__name__} has no Linear or Conv2d layer to prune; pass targets=")
        return self.targets

    def advance(self) -> None:
        """One training step done: at a pruning event, prune to s_t."""
        t = self.steps_done
        self.steps_done += 1
        end = self.begin_step + self.n_steps * self.frequency
        if t < self.begin_step or t > end or (t - self.begin_step) % self.frequency:
            return
        s_t = agp_sparsity(t, self.final_sparsity, self.initial_sparsity, self.begin_step, self.n_steps, self.frequency)
        prune_to(self._targets(), s_t, scope=self.scope)
        self.history.append((t, s_t))

    def on_step_end(self, step) -> None:
        if step.applied:
            self.advance()


class AGPCallback(Callback):
    """Keras callback: `AGP(keras_model, *args, **kwargs)`, advanced after every training batch of `fit`.
    Its `agp` attribute (created at the start of training) holds the schedule and its history."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        AGP(None, *args, **kwargs)  # validate the schedule now, not when fit starts
        self._args, self._kwargs = args, kwargs
        self.agp = None

    def on_train_begin(self, logs=None):
        if self.agp is None:
            self.agp = AGP(self.model, *self._args, **self._kwargs)

    def on_train_batch_end(self, batch, logs=None):
        self.agp.advance()


def iterative_pruning(targets, sparsities, finetune, scope: str = "layer", callback=None):
    """Han et al. 2015: for each s in `sparsities` (increasing), prune to s, then `finetune()`
    (e.g. one epoch of training; pruned weights stay zero because their gradient is masked).
    `callback(s)` (optional) is called after each round, e.g. to evaluate; its results are returned."""
    sparsities = list(sparsities)
    if any(b < a for a, b in zip(sparsities, sparsities[1:])):
        raise ValueError(f"sparsities must not decrease, got {sparsities}")
    results = []
    targets = list(targets)
    for s in sparsities:
        prune_to(targets, s, scope=scope)
        finetune()
        results.append(None if callback is None else callback(s))
    return results
