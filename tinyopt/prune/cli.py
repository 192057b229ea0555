"""`tinyopt prune RUN_DIR`: prune a trained run's model, fine-tune it, and compare it with the dense one.

    tinyopt prune runs/tour --method {magnitude,global,structured,taylor,entropy,agp} --sparsity 0.9
                            [--finetune-epochs 1] [--lr 5e-4] [--test-size N] [--latency-batch 256]
                            [--no-plots] [--data DIR]

magnitude: |w| per layer; global: |w| across layers; taylor: |w·∂L/∂w| across layers (on 1,024
training images); structured: whole channels/neurons by L1 norm, then `shrink`; entropy: channels
by the entropy of their activations (after the layer's ReLU, on 512 training images), then `shrink`; agp: Zhu & Gupta's gradual schedule during the
fine-tuning (needs --finetune-epochs ≥ 1). The last layer is never pruned structurally (its outputs
are the classes).

Prints a table (parameters, non-zeros, bytes, accuracy, latency per variant, next to the dense model)
and writes RUN_DIR/prune-METHOD/{report.json, sensitivity.png, sparsity_per_layer.png,
weights_before_after.png}. The run folder's checkpoint is not changed. A mistake is one line naming
the fix, exit status 2.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

from tinyopt.cli_args import EXIT_USAGE, OneLineParser as _Parser, UsageError as _UsageError  # noqa: F401
from tinyopt.cli_args import positive_float as _positive_float, usage_error, whole as _whole  # noqa: F401

METHODS = ("magnitude", "global", "structured", "taylor", "entropy", "agp")


def _sparsity(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction such as 0.9, got {text!r}") from None
    if not 0.0 < value < 1.0:
        hint = f" (for {value:g} % use {value / 100:g})" if 1.0 < value < 100.0 else ""
        raise argparse.ArgumentTypeError(f"expected a fraction strictly between 0 and 1, got {text}{hint}")
    return value


def build_parser():
    p = _Parser(prog="tinyopt prune", description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a training run folder (from `tinyopt train --out DIR` or `tinyopt tour`)")
    p.add_argument("--method", choices=METHODS, default="global")
    p.add_argument("--sparsity", type=_sparsity, default=0.9,
                   help="fraction of weights (unstructured) or channels (structured, entropy) to remove")
    p.add_argument("--finetune-epochs", type=_whole(0), default=1)
    p.add_argument("--lr", type=_positive_float, default=5e-4, help="Adam learning rate of the fine-tuning")
    p.add_argument("--test-size", type=_whole(1), default=None, help="first N test images (default: the run's)")
    p.add_argument("--train-size", type=_whole(1), default=None, help="fine-tune on the first N training images")
    p.add_argument("--latency-batch", type=_whole(1), default=256)
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--data", type=Path, default=None, help="folder with the Fashion-MNIST files")
    return p


def accuracy(model, x, y) -> float:
    import tinyopt as to

    model.eval()
    with to.no_grad():
        pred = np.concatenate([model(to.tensor(x[i:i + 1000])).data.argmax(1) for i in range(0, len(x), 1000)])
    return float(np.mean(pred == y))


def latency(model, x, repeats: int = 5) -> float:
    """Median seconds of one forward pass on `x` (after one warm-up call)."""
    import tinyopt as to

    model.eval()
    xt = to.tensor(x)
    with to.no_grad():
        model(xt)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(xt)
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _finetune(model, x, y, epochs, lr, seed, hooks=None):
    import tinyopt as to
    from tinyopt.loop import minibatches, train_epoch

    opt = to.optim.Adam(model.parameters(), lr=lr)
    loss_fn = to.nn.CrossEntropyLoss()
    order = np.random.default_rng(seed)
    for epoch in range(epochs):
        train_epoch(model, opt, minibatches(x, y, 64, order.permutation(len(x))), loss_fn, hooks=hooks, epoch=epoch)
    model.eval()


def _structured_targets(model):
    from tinyopt import prune as P

    return P.default_targets(model)[:-1]  # not the classifier's outputs


def _apply(method, model, sparsity, x_train, y_train):
    """Prune `model` in place (all methods except agp, which prunes while fine-tuning)."""
    import tinyopt as to
    from tinyopt import prune as P
    from tinyopt.loop import minibatches
    from tinyopt.nn.utils import prune

    targets = P.default_targets(model)
    if method == "magnitude":
        P.prune_to(targets, sparsity)
    elif method == "global":
        P.prune_to(targets, sparsity, scope="global")
    elif method == "taylor":
        calib = list(minibatches(x_train[:1024], y_train[:1024], 256))
        scores = P.gradient_scores(model, calib, to.nn.CrossEntropyLoss(), targets=targets, kind="taylor")
        prune.global_unstructured(targets, prune.L1Unstructured, importance_scores=scores, amount=sparsity)
    elif method == "structured":
        for module, name in _structured_targets(model):
            prune.ln_structured(module, name, amount=sparsity, n=1, dim=0)
    elif method == "entropy":
        calib = list(minibatches(x_train[:512], y_train[:512], 256))
        leaves = [m for m in model.modules() if not m._modules]
        for module, name in _structured_targets(model):
            # the entropy of the channel's activation (after the ReLU that follows it, when there is one)
            after = leaves[leaves.index(module) + 1] if leaves.index(module) + 1 < len(leaves) else module
            watched = after if type(after).__name__ in ("ReLU", "ReLU6", "LeakyReLU", "GELU", "SiLU", "Tanh",
                                                        "Sigmoid", "ELU") else module
            scores = P.activation_entropy(model, watched, calib)
            P.prune_channels(module, scores, sparsity, name=name)


def _row(label, model, x_test, y_test, batch, sizes=None):
    from tinyopt import prune as P

    sizes = sizes or P.compressed_size(model)
    return dict(variant=label, parameters=int(sizes["parameters"]), nonzeros=int(sizes["nonzeros"]),
                bytes=int(sizes["dense_bytes"]), accuracy=accuracy(model, x_test, y_test),
                latency_ms=1e3 * latency(model, batch))


def format_rows(rows) -> str:
    head = f"{'variant':34s} {'parameters':>10s} {'non-zeros':>10s} {'bytes':>10s} {'accuracy':>9s} {'latency ms':>10s}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['variant']:34s} {r['parameters']:10,d} {r['nonzeros']:10,d} {r['bytes']:10,d} "
                     f"{r['accuracy']:9.4f} {r['latency_ms']:10.2f}")
    return "\n".join(lines)


def _plots(out, dense, pruned, sensitivity):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from tinyopt import prune as P

    P.plot_sensitivity(sensitivity, out / "sensitivity.png")
    ids = {id(m): n for n, m in pruned.named_modules()}
    names = [ids[id(m)] for m, _ in P.default_targets(pruned)]
    values = [P.sparsity(m, "weight") for m, _ in P.default_targets(pruned)]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(range(len(values)), values)
    ax.set_xticks(range(len(values)), names, rotation=45, fontsize=8)
    ax.set_ylabel("sparsity")
    ax.set_title("sparsity per layer")
    fig.tight_layout()
    fig.savefig(out / "sparsity_per_layer.png", dpi=90)
    plt.close(fig)
    before = np.concatenate([m.weight.data.reshape(-1) for m, _ in P.default_targets(dense)])
    after = np.concatenate([m.weight.data.reshape(-1) for m, _ in P.default_targets(pruned)])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(before, bins=100, alpha=0.6, label="dense")
    ax.hist(after[after != 0], bins=100, alpha=0.6, label="pruned (non-zeros)")
    ax.set_yscale("log")
    ax.set_xlabel("weight")
    ax.legend()
    ax.set_title("weights before / after pruning")
    fig.tight_layout()
    fig.savefig(out / "weights_before_after.png", dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    from tinyopt.cli import dataset_error_message
    from tinyopt.datasets.files import DatasetError
    from tinyopt.train import ConfigError, load_data, load_run

    try:
        args = build_parser().parse_args(argv)
    except _UsageError as e:
        return _error(str(e))
    if args.method == "agp" and args.finetune_epochs == 0:
        return _error("--method agp prunes gradually while fine-tuning, which --finetune-epochs 0 skips: "
                      "give --finetune-epochs 1 (or more)")
    try:
        config, model = load_run(args.run, args.data)
        if args.test_size is not None:
            config.test_size = args.test_size
        if args.train_size is not None:
            config.train_size = args.train_size
        (x_train, y_train), _, (x_test, y_test) = load_data(config, args.data)
    except ConfigError as e:
        return _error(str(e))
    except DatasetError as e:
        return _error(str(dataset_error_message(e, args.data)))
    if args.latency_batch > len(x_test):
        return _error(f"--latency-batch {args.latency_batch} is more than the {len(x_test):,} test images; "
                      f"use at most {len(x_test)}")
    out = args.run / f"prune-{args.method}"
    out.mkdir(exist_ok=True)

    from tinyopt import prune as P

    batch = x_test[: args.latency_batch]
    model.eval()
    print(f"pruning {config.model} from {args.run}: --method {args.method} --sparsity {args.sparsity:g}, "
          f"{args.finetune_epochs} fine-tuning epoch(s) on {len(x_train):,} images", flush=True)
    rows = [_row("dense", model, x_test, y_test, batch)]
    pruned = copy.deepcopy(model)
    hooks = None
    if args.method == "agp":
        steps = args.finetune_epochs * -(-len(x_train) // 64)
        n = max(1, min(20, steps // 2))
        hooks = P.AGP(pruned, final_sparsity=args.sparsity, n_steps=n, frequency=max(1, (steps // 2) // n), scope="global")
    else:
        _apply(args.method, pruned, args.sparsity, x_train, y_train)
        rows.append(_row(f"{args.method} (no fine-tuning)", pruned, x_test, y_test, batch))
    if args.finetune_epochs:
        _finetune(pruned, x_train, y_train, args.finetune_epochs, args.lr, config.seed, hooks=hooks)
        rows.append(_row(f"{args.method} + {args.finetune_epochs} epoch(s) fine-tune", pruned, x_test, y_test, batch))
    if args.method in ("structured", "entropy"):
        small = P.shrink(pruned, batch)
        rows.append(_row("  shrunk (channels removed)", small, x_test, y_test, batch))
    else:
        sparse = P.to_sparse(pruned)  # layers >= 80 % sparse: below that CSR loses to dense BLAS (bench_prune.py)
        if any(isinstance(m, P.SparseLinear) for m in sparse.modules()):
            row = _row("  CSR Linear layers (to_sparse)", sparse, x_test, y_test, batch, sizes=P.compressed_size(pruned))
            row["bytes"] = int(P.compressed_size(pruned)["csr_bytes"])
            rows.append(row)
    sizes = P.compressed_size(pruned)
    P.save_compressed(pruned, out / "compressed.npz")
    restored = P.make_permanent(copy.deepcopy(pruned))
    restored.load_state_dict(P.load_compressed(out / "compressed.npz"))
    row = _row("  int8 + Huffman (Deep Compression)", restored, x_test, y_test, batch, sizes=sizes)
    row["bytes"] = int(sizes["huffman_bytes"])
    rows.append(row)
    print(format_rows(rows))
    print(f"latency: batch {len(batch)}, measured on this machine (other jobs slow it down); "
          f"compressed file: {(out / 'compressed.npz').stat().st_size:,} bytes")
    (out / "report.json").write_text(json.dumps(dict(method=args.method, sparsity=args.sparsity,
                                                     finetune_epochs=args.finetune_epochs, rows=rows), indent=1))
    if not args.no_plots:
        n_eval = min(len(x_test), 1000)
        sens = P.sensitivity_analysis(model, lambda m: accuracy(m, x_test[:n_eval], y_test[:n_eval]),
                                      sparsities=[0.0, 0.5, 0.8, 0.9, 0.95])
        _plots(out, model, pruned, sens)
    print(f"wrote {out}/")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def _error(message: str) -> int:
    return usage_error("tinyopt prune", message)
