"""Pruning criteria: how important is a weight, a neuron, a channel or a layer.

Every criterion returns importance scores (higher = keep), which plug into torch's API through
`importance_scores=` (`prune.l1_unstructured`, `prune.ln_structured`, `prune.global_unstructured`)
or into `prune_channels` below. Units with the lowest scores are pruned.

| criterion | formula (per weight w_i, or per channel c) | function |
|---|---|---|
| magnitude L1 / L2 | s_i = |w_i| or w_i²; per channel s_c = ‖W_c‖₁ or ‖W_c‖₂ | `magnitude`, `channel_norm` |
| threshold (seeds, Han et al. 2015) | w_i ← 0 if |w_i| < θ, θ = s·σ(W) | `han_threshold`, `threshold_prune` |
| gradient | s_i = |G_i| / B, G = Σ_b ∂L_b/∂w over B calibration batches | `gradient_scores(..., kind="gradient")` |
| first-order Taylor | s_i = |w_i · G_i| / B (Molchanov et al. 2017: the loss change if w_i → 0) | `gradient_scores(..., kind="taylor")` |
| activation entropy | s_c = −Σ_k p_k log p_k, p = histogram of channel c's activations | `activation_entropy` |
| APoZ (Hu et al. 2016) | APoZ_c = fraction of zeros in channel c's (ReLU) outputs; s_c = 1 − APoZ_c | `apoz` |
| BatchNorm scale (Liu et al. 2017) | s_c = |γ_c| | `bn_scale` |
| layer bypass | s_ℓ = L(model with block ℓ replaced by identity) − L(model) | `bypass_scores` |

Conventions. The seeds state the threshold rule as "w ← 0 if |w| < θ"; two of them then write code
that does the opposite (keeps the small weights), see tutorials/06_pruning.py. Han et al. choose θ as
a quality parameter s times the standard deviation of the layer's weights; `threshold=` gives θ
directly instead. For the Taylor criterion we use the accumulated gradient of the calibration loss
(what `.grad` holds after B backward passes); Molchanov et al. 2019 average |w·g| per batch instead
(pass `per_batch_abs=True`).
"""
from __future__ import annotations

import contextlib

import numpy as np

from tinyopt.autograd import no_grad
from tinyopt.nn.utils import prune as torch_prune
from tinyopt.tensor import Tensor


def _weight(module, name="weight") -> np.ndarray:
    """The effective (masked) values of module.<name>."""
    return np.asarray(getattr(module, name).data)


def magnitude(weight, p: int = 1) -> np.ndarray:
    """s_i = |w_i|^p (p = 1: L1, p = 2: L2; the ranking is the same, the scores differ)."""
    w = weight.data if isinstance(weight, Tensor) else np.asarray(weight)
    return np.abs(w) ** p


def channel_norm(weight, n=1, dim: int = 0) -> np.ndarray:
    """s_c = ‖W_c‖_n, the L_n norm of the slice c along `dim` (dim 0: a Conv2d's filters / a Linear's
    neurons, dim 1: input channels) — what `prune.ln_structured` ranks by."""
    w = weight.data if isinstance(weight, Tensor) else np.asarray(weight)
    return torch_prune._compute_norm(w, n, dim)


def han_threshold(weight, s: float) -> float:
    """θ = s · σ(W): Han et al. 2015's layer threshold (σ the standard deviation of the layer's weights)."""
    w = weight.data if isinstance(weight, Tensor) else np.asarray(weight)
    if s < 0:
        raise ValueError(f"the quality parameter s must be >= 0, got {s}")
    return float(s * np.std(w))


def threshold_prune(module, name: str = "weight", s: float | None = None, threshold: float | None = None):
    """The seeds' rule, w ← 0 if |w| < θ (weights with |w| ≥ θ are kept), with θ = s·σ(W) or given.
    Applied through torch's API (a mask combined with earlier ones); returns the module."""
    if (s is None) == (threshold is None):
        raise ValueError("give exactly one of s (θ = s·σ(W), Han et al.) or threshold (θ itself)")
    w = _weight(module, name)
    theta = han_threshold(w, s) if threshold is None else float(threshold)
    if theta < 0:
        raise ValueError(f"threshold must be >= 0, got {theta}")
    return torch_prune.custom_from_mask(module, name, (np.abs(w) >= theta).astype(w.dtype))


def gradient_scores(model, batches, loss_fn, targets=None, kind: str = "taylor", per_batch_abs: bool = False):
    """Scores {(module, name): array} from the gradient of the loss over calibration `batches`
    ((inputs, targets) pairs): kind="gradient" s = |G|/B, kind="taylor" s = |w ⊙ G|/B, with
    G = Σ_b ∂L_b/∂w (per_batch_abs: Σ_b |w ⊙ ∂L_b/∂w| / B). `targets` are (module, name) pairs
    (default: every Linear and Conv2d weight). The model's gradients are cleared afterwards."""
    if kind not in ("gradient", "taylor"):
        raise ValueError(f"kind must be 'gradient' or 'taylor', got {kind!r}")
    targets = default_targets(model) if targets is None else list(targets)
    params = {t: _trained_param(*t) for t in targets}
    acc = {t: np.zeros(p.shape) for t, p in params.items()}
    n = 0
    model.zero_grad()
    for x, y in batches:
        out = model(x if isinstance(x, Tensor) else Tensor(x))
        loss_fn(out, y).backward()
        for t, p in params.items():
            g = np.zeros(p.shape) if p.grad is None else np.asarray(p.grad.data, dtype=np.float64)
            if per_batch_abs:
                acc[t] += np.abs(g * p.data if kind == "taylor" else g)
            else:
                acc[t] += g
        model.zero_grad()
        n += 1
    if n == 0:
        raise ValueError("gradient_scores needs at least one calibration batch")
    scores = {}
    for t, p in params.items():
        a = acc[t] / n
        if not per_batch_abs:
            a = np.abs(a * p.data) if kind == "taylor" else np.abs(a)
        scores[t] = a
    return scores


def _trained_param(module, name):
    """The Parameter that is trained for module.<name> (<name>_orig when pruned)."""
    orig = module._parameters.get(name + "_orig")
    return orig if orig is not None else module._parameters[name]


def default_targets(model):
    """(module, "weight") for every Linear and Conv2d of `model`, in order."""
    from tinyopt.nn.conv import Conv2d
    from tinyopt.nn.linear import Linear

    return [(m, "weight") for m in model.modules() if isinstance(m, (Linear, Conv2d))]


@contextlib.contextmanager
def _record_output(module):
    """Collect module's outputs (as ndarrays) while the context is open."""
    outputs = []
    handle = module.register_forward_hook(lambda m, args, out: outputs.append(np.asarray(out.data)))
    try:
        yield outputs
    finally:
        handle.remove()


def _channel_values(outputs):
    """(C, M) array: channel c's values over the batch (and the spatial positions of a conv map)."""
    arr = np.concatenate(outputs, axis=0)
    return np.moveaxis(arr, 1, 0).reshape(arr.shape[1], -1)


def _run(model, batches):
    was_training = model.training
    model.eval()
    with no_grad():
        for batch in batches:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(x if isinstance(x, Tensor) else Tensor(x))
    model.train(was_training)


def activation_entropy(model, module, batches, bins: int = 32) -> np.ndarray:
    """s_c = −Σ_k p_k log p_k (nats), p the normalised histogram (`bins` equal bins over channel c's
    own range) of the outputs of `module` over the calibration `batches`, in eval mode. A channel
    whose output hardly varies carries little information (the seeds' 基于信息论的剪枝); a constant
    channel scores 0."""
    with _record_output(module) as outputs:
        _run(model, batches)
    if not outputs:
        raise ValueError(f"{type(module).__name__} was not called during the forward passes (is it part of the model?)")
    values = _channel_values(outputs)
    scores = np.zeros(values.shape[0])
    for c, v in enumerate(values):
        lo, hi = v.min(), v.max()
        if hi <= lo:
            continue
        counts, _ = np.histogram(v, bins=bins, range=(lo, hi))
        p = counts[counts > 0] / counts.sum()
        scores[c] = -np.sum(p * np.log(p))
    return scores


def apoz(model, module, batches) -> np.ndarray:
    """APoZ_c = (1/M) Σ_m [a_{c,m} == 0], the average percentage of zeros of channel c in the
    outputs of `module` (put it after a ReLU) over the calibration `batches`. High APoZ → prune,
    so the importance score is 1 − APoZ."""
    with _record_output(module) as outputs:
        _run(model, batches)
    if not outputs:
        raise ValueError(f"{type(module).__name__} was not called during the forward passes (is it part of the model?)")
    return np.mean(_channel_values(outputs) == 0, axis=1)


def bn_scale(bn) -> np.ndarray:
    """s_c = |γ_c| of a BatchNorm layer (network slimming, Liu et al. 2017: train with an L1 penalty
    on γ, then prune the channels of the preceding conv with the smallest |γ|)."""
    if getattr(bn, "weight", None) is None:
        raise ValueError("bn_scale needs an affine BatchNorm (affine=True)")
    return np.abs(np.asarray(bn.weight.data))


def prune_channels(module, scores, amount, name: str = "weight", dim: int = 0):
    """Prune the `amount` (fraction or count, of the channels still unpruned) channels along `dim` of
    module.<name> with the lowest `scores` (one per channel), through prune.ln_structured (so it
    compounds with earlier pruning and `remove` works). Returns the module."""
    w = _weight(module, name)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.shape[0] != w.shape[dim]:
        raise ValueError(f"{type(module).__name__}.{name} has {w.shape[dim]} channels along dim {dim}, got "
                         f"{scores.shape[0]} scores")
    shape = [1] * w.ndim
    shape[dim] = -1
    # Broadcast each channel's score over its slice: its L1 norm is score · slice size, same ranking.
    importance = np.broadcast_to(np.abs(scores).reshape(shape), w.shape)
    return torch_prune.ln_structured(module, name, amount, n=1, dim=dim, importance_scores=importance)


@contextlib.contextmanager
def bypassed(module):
    """Inside the context, `module` returns its input unchanged (a block with matching input and
    output shapes, e.g. Linear(d, d) + ReLU in a Sequential)."""
    handle = module.register_forward_hook(lambda m, args, out: _same_shape(m, args[0], out))
    try:
        yield module
    finally:
        handle.remove()


def _same_shape(module, x, out):
    if tuple(x.shape) != tuple(out.shape):
        from tinyopt.errors import ShapeError
        raise ShapeError(f"{type(module).__name__} cannot be bypassed: input {tuple(x.shape)} vs output {tuple(out.shape)}")
    return x


def bypass_scores(model, blocks, evaluate) -> dict:
    """s_ℓ = evaluate(model with block ℓ bypassed) − evaluate(model), for each block in `blocks`
    (a dict name → module). `evaluate(model)` returns a loss (lower is better); a small score
    means the block can be removed (`remove_blocks`)."""
    base = float(evaluate(model))
    scores = {}
    for name, block in blocks.items():
        with bypassed(block):
            scores[name] = float(evaluate(model)) - base
    return scores


def remove_blocks(model, names):
    """A copy of `model` in which each submodule named in `names` (dotted paths) is an Identity."""
    import copy

    from tinyopt.nn.linear import Identity

    new = copy.deepcopy(model)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = new.get_submodule(parent_name)
        if child not in parent._modules:
            raise KeyError(f"{type(model).__name__} has no submodule {name!r}")
        setattr(parent, child, Identity())
    return new
