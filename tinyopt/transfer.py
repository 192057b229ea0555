"""Transfer learning and fine-tuning: freezing, BatchNorm in frozen layers, new heads, smaller
learning rates for early layers.

The recipes, in torch's terms (Yosinski et al. 2014, https://arxiv.org/abs/1411.1792; Howard &
Ruder 2018, https://arxiv.org/abs/1801.06146 for discriminative fine-tuning):

* **Feature extractor.** `freeze(backbone)`; replace the head (`model.fc = nn.Linear(d, k)`, or
  `replace_module(model, "classifier.2", nn.Linear(d, k))`); give the optimizer the trainable
  parameters only (`trainable_parameters(model)`). A frozen parameter gets no `.grad` in backward,
  and every tinyopt optimizer, like torch's, skips a parameter whose `.grad` is None: not even
  weight decay or momentum moves it.
* **Fine-tuning.** Everything trains, early layers with a smaller learning rate:
  `optim.SGD(param_groups(model, {"features": 1e-3}, default_lr=1e-2), lr=1e-2)`.

**BatchNorm in a frozen layer.** `requires_grad_(False)` freezes γ and β but not the running
statistics: in training mode BatchNorm still normalises with the batch statistics and updates
`running_mean`/`running_var` (`r ← (1 − m) r + m μ_B`), so a "frozen" backbone drifts towards the
new data and its features change under the new head. `freeze(module)` (with `batchnorm=True`,
the default) also runs every BatchNorm inside `module` in evaluation mode during its forward
pass: it normalises with the stored statistics and never updates them, whatever `model.train()`
says. This is what Keras does for `layer.trainable = False` on BatchNormalization (since TF 2.0);
torch users write `bn.eval()` after each `model.train()`, which this does for them. The module's
`training` flag is left as the caller set it (it is switched only for the duration of the call).
"""
from __future__ import annotations

from tinyopt.nn.batchnorm import _BatchNorm
from tinyopt.nn.module import Module

_HANDLES = "_frozen_batchnorm_handles"


def _check_module(module, what: str) -> None:
    if not isinstance(module, Module):
        raise TypeError(f"{what} takes a tinyopt.nn.Module, got {type(module).__name__}")


def freeze_batchnorm(module: Module) -> Module:
    """Run every BatchNorm in `module` (itself included) in evaluation mode during its forward:
    the stored running statistics normalise the input and are never updated. Idempotent;
    `unfreeze_batchnorm` undoes it."""
    _check_module(module, "freeze_batchnorm")
    for m in module.modules():
        if isinstance(m, _BatchNorm) and not m.__dict__.get(_HANDLES):
            previous = [m.training]

            def to_eval(mod, args, previous=previous):
                previous[0] = mod.training
                object.__setattr__(mod, "training", False)

            def restore(mod, args, output, previous=previous):
                object.__setattr__(mod, "training", previous[0])

            object.__setattr__(m, _HANDLES, (m.register_forward_pre_hook(to_eval), m.register_forward_hook(restore)))
    return module


def unfreeze_batchnorm(module: Module) -> Module:
    """Undo `freeze_batchnorm`: the BatchNorms follow `train()`/`eval()` again."""
    _check_module(module, "unfreeze_batchnorm")
    for m in module.modules():
        handles = m.__dict__.get(_HANDLES)
        if handles:
            for h in handles:
                h.remove()
            object.__setattr__(m, _HANDLES, None)
    return module


def batchnorm_frozen(module: Module) -> bool:
    """Whether `freeze_batchnorm` holds this BatchNorm in evaluation mode."""
    return bool(module.__dict__.get(_HANDLES))


def freeze(module: Module, batchnorm: bool = True) -> Module:
    """`module.requires_grad_(False)`, and with `batchnorm=True` also `freeze_batchnorm(module)`
    (see the module docstring for why both). Returns `module`."""
    _check_module(module, "freeze")
    module.requires_grad_(False)
    if batchnorm:
        freeze_batchnorm(module)
    return module


def unfreeze(module: Module) -> Module:
    """Make every parameter trainable again and let the BatchNorms follow `train()` again."""
    _check_module(module, "unfreeze")
    module.requires_grad_(True)
    return unfreeze_batchnorm(module)


def trainable_parameters(module: Module) -> list:
    """The parameters with `requires_grad` (what to hand an optimizer after freezing)."""
    _check_module(module, "trainable_parameters")
    return [p for p in module.parameters() if p.requires_grad]


def count_parameters(module: Module) -> dict:
    """{'total', 'trainable', 'non_trainable'} element counts (what Keras' summary() prints)."""
    _check_module(module, "count_parameters")
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable, "non_trainable": total - trainable}


def replace_module(model: Module, name: str, new: Module) -> Module:
    """Put `new` at dotted path `name` (e.g. "fc", "classifier.2") and return the module it replaced.
    It keeps its place in registration order (so `nn.Sequential` still runs it there)."""
    _check_module(model, "replace_module")
    _check_module(new, "replace_module")
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a dotted submodule path like 'fc' or 'classifier.2', got {name!r}")
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name)
    if child not in parent._modules:
        raise AttributeError(f"{type(parent).__name__} has no submodule {child!r} (replacing {name!r}); "
                             f"it has {list(parent._modules)}")
    old = parent._modules[child]
    setattr(parent, child, new)
    return old


def param_groups(model: Module, lrs: dict, default_lr: float | None = None) -> list:
    """Optimizer parameter groups with a learning rate per submodule (discriminative fine-tuning).

    `lrs` maps dotted submodule prefixes to learning rates, e.g. {"features": 1e-4, "fc": 1e-2}; a
    parameter takes the rate of the longest prefix that names one of its enclosing modules. The
    others go into one last group with `default_lr` (with the optimizer's `lr=` when None, i.e. no
    'lr' key). Frozen parameters are left out. Each prefix must name a submodule; every group
    is non-empty.
    """
    _check_module(model, "param_groups")
    if not isinstance(lrs, dict) or not lrs:
        raise ValueError("lrs must be a non-empty dict of submodule name -> learning rate")
    for prefix, lr in lrs.items():
        model.get_submodule(prefix)  # raises AttributeError naming a missing submodule
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr >= 0:
            raise ValueError(f"learning rate for {prefix!r} must be a number >= 0, got {lr!r}")
    ordered = sorted(lrs, key=len, reverse=True)
    groups = {prefix: [] for prefix in lrs}
    rest = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        owner = next((prefix for prefix in ordered if name.startswith(prefix + ".")), None)
        (groups[owner] if owner is not None else rest).append(p)
    result = []
    for prefix in lrs:
        if not groups[prefix]:
            raise ValueError(f"submodule {prefix!r} has no trainable parameters (frozen or parameter-free)")
        result.append({"params": groups[prefix], "lr": float(lrs[prefix])})
    if rest:
        result.append({"params": rest} if default_lr is None else {"params": rest, "lr": float(default_lr)})
    return result


__all__ = ["batchnorm_frozen", "count_parameters", "freeze", "freeze_batchnorm", "param_groups", "replace_module",
           "trainable_parameters", "unfreeze", "unfreeze_batchnorm"]
