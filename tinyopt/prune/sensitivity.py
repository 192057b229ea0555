"""Sensitivity analysis (as Distiller's `perform_sensitivity_analysis`): prune each layer alone, by
magnitude, at a sweep of sparsities, evaluate, and read off how far each layer can be pruned.

    table[ℓ][s] = evaluate(model with only layer ℓ pruned to sparsity s)

The model passed in is never modified (each evaluation runs on a copy).
"""
from __future__ import annotations

import copy

from tinyopt.nn.utils import prune as torch_prune
from tinyopt.prune.criteria import default_targets
from tinyopt.prune.schedule import prune_to

DEFAULT_SPARSITIES = (0.0, 0.25, 0.5, 0.7, 0.8, 0.9, 0.95)


def _names(model):
    names = {id(m): n for n, m in model.named_modules()}
    return names


def sensitivity_analysis(model, evaluate, sparsities=DEFAULT_SPARSITIES, targets=None, structured: bool = False):
    """{layer name: {sparsity: evaluate(pruned copy)}} for each (module, "weight") target (default
    every Linear/Conv2d). `evaluate(model)` returns a number (e.g. accuracy). `structured=True`
    prunes whole output channels/neurons (L1 norm, dim 0) instead of single weights."""
    sparsities = [float(s) for s in sparsities]
    if not sparsities or any(not 0.0 <= s < 1.0 for s in sparsities):
        raise ValueError(f"sparsities must be in [0, 1), got {sparsities}")
    targets = default_targets(model) if targets is None else list(targets)
    names = _names(model)
    table = {}
    for module, pname in targets:
        label = names.get(id(module), type(module).__name__) + ("" if pname == "weight" else f".{pname}")
        path = names[id(module)]
        table[label] = {}
        for s in sparsities:
            trial = copy.deepcopy(model)
            m = trial.get_submodule(path)
            if structured:
                torch_prune.ln_structured(m, pname, amount=s, n=1, dim=0)
            else:
                prune_to([(m, pname)], s)
            table[label][s] = float(evaluate(trial))
    return table


def choose_sparsities(table, baseline: float, max_drop: float) -> dict:
    """Per layer, the largest tested sparsity whose metric stays within `max_drop` of `baseline`
    (higher metric = better, e.g. accuracy)."""
    chosen = {}
    for layer, row in table.items():
        ok = [s for s, v in row.items() if v >= baseline - max_drop]
        chosen[layer] = max(ok) if ok else 0.0
    return chosen


def format_table(table, metric: str = "accuracy") -> str:
    """The table as text: one row per layer, one column per sparsity."""
    sparsities = sorted({s for row in table.values() for s in row})
    width = max([len(k) for k in table] + [5])
    lines = [f"{metric} by sparsity".ljust(width) + "".join(f"{s:>8.2f}" for s in sparsities)]
    for layer, row in table.items():
        lines.append(layer.ljust(width) + "".join(f"{row.get(s, float('nan')):>8.4f}" for s in sparsities))
    return "\n".join(lines)


def plot_sensitivity(table, path=None, metric: str = "accuracy"):
    """One curve per layer: metric against sparsity. Saves to `path` when given; returns the figure."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for layer, row in table.items():
        xs = sorted(row)
        ax.plot(xs, [row[s] for s in xs], marker="o", label=layer)
    ax.set_xlabel("sparsity of the layer (others dense)")
    ax.set_ylabel(metric)
    ax.set_title("Pruning sensitivity, one layer at a time")
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return fig
