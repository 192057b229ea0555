"""Train a CNN on Fashion-MNIST with tinyopt and report test accuracy and time (the ≥ 90 % recipe,
and `--recipe fast92`, aimed at ≥ 92.5 % within 10 minutes on 2 cores).

Recipe (default): the seeds' Keras CNN (`tinyopt.models.KerasCNN`, torch-default init), inputs
scaled to [0, 1], Adam (lr 1e-3, torch's defaults otherwise), batch 64, 5 epochs, shuffled by
`np.random.default_rng(seed)`; cross-entropy on logits.  `--model lenet5` trains LeNet-5 instead.

`--recipe fast92` (the settings below; each can still be overridden by its flag):
    model     BN-CNN: [Conv 3×3 32 → BatchNorm → ReLU] ×2 → MaxPool 2 → [Conv 3×3 64 → BN → ReLU] ×2
              → MaxPool 2 → Flatten 3136 → Dropout 0.3 → Linear 128 → ReLU → Linear 10  (`--model bn`)
    data      per batch: RandomCrop(28, padding=2) + RandomHorizontalFlip (`--augment`,
              `tinyopt.transforms.fashion_mnist_augment`), drawn from the run's generator
    optimizer AdamW (weight decay 5e-4) with OneCycleLR (max lr 3e-3, per step), batch 128, 12 epochs
    budget    `--time-budget 600`: training stops at the first epoch end after 600 s (the accuracy of
              that epoch is reported)
`--recipe cnn92` (smaller and cheaper than fast92's network, sized for the 10-minute budget):
    model     tinyopt.models.CNN92: 3 × [Conv 3×3 → BatchNorm → ReLU → MaxPool 2] with 32, 64, 128
              channels → Flatten 1152 → Dropout 0.3 → Linear 128 → ReLU → Linear 10 (241,770 parameters,
              7.5 M multiply-adds per image, 2.7× the Keras CNN's)
    data      RandomHorizontalFlip per batch (no crop: `--no-crop`, the default of this recipe; over 9
              epochs flips alone scored better than crop + flip), from the run's generator
    optimizer AdamW (weight decay 1e-2, torch's default) with OneCycleLR (max lr 3e-3, per step),
              batch 128, 9 epochs, tinyopt.set_num_threads(2)
    The same settings train through the CLI: `tinyopt train --preset cnn92` (on 54,000 images; the
    CLI holds out a validation split).
It prints the test accuracy after every epoch (the curve) and the time.

Usage:
    python benchmarks/train_cnn.py [--recipe fast92|cnn92] [--model keras|lenet5|bn|cnn92] [--epochs 5] [--batch-size 64]
                                   [--lr 1e-3] [--augment] [--no-crop] [--schedule none|onecycle] [--time-budget S]
                                   [--seed 0] [--threads N] [--blas-threads N] [--limit N]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

if __name__ == "__main__" and "--blas-threads" in sys.argv:  # before numpy loads OpenBLAS
    os.environ["OPENBLAS_NUM_THREADS"] = sys.argv[sys.argv.index("--blas-threads") + 1]

import numpy as np  # noqa: E402


def evaluate(model, x, y, batch_size: int = 256) -> float:
    """Test accuracy in batches of 256: CNN92's activations at batch 1,000 (100 MB a layer) are above
    glibc's mmap threshold even after tune_malloc, so every batch paid fresh pages (3.8 s for the
    10,000 test images against 1.8 s at 256)."""
    import tinyopt as to

    model.eval()
    correct = 0
    with to.no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(to.tensor(x[start:start + batch_size]))
            correct += int((logits.data.argmax(axis=1) == y[start:start + batch_size]).sum())
    model.train()
    return correct / len(x)


def bn_cnn(rng):
    """The `--model bn` network (see the module docstring)."""
    import tinyopt.nn as nn

    def block(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False, rng=rng), nn.BatchNorm2d(c_out), nn.ReLU()]

    return nn.Sequential(
        *block(1, 32), *block(32, 32), nn.MaxPool2d(2),
        *block(32, 64), *block(64, 64), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.3, generator=rng), nn.Linear(64 * 7 * 7, 128, rng=rng), nn.ReLU(),
        nn.Linear(128, 10, rng=rng),
    )


RECIPES = {"fast92": dict(model="bn", epochs=12, batch_size=128, lr=3e-3, augment=True, schedule="onecycle",
                          optimizer="adamw", weight_decay=5e-4, time_budget=600.0),
           "cnn92": dict(model="cnn92", epochs=9, batch_size=128, lr=3e-3, augment=True, schedule="onecycle",
                         optimizer="adamw", weight_decay=1e-2, threads=2, crop=False)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=sorted(RECIPES), default=None, help="preset settings (module docstring)")
    parser.add_argument("--model", choices=("keras", "lenet5", "bn", "cnn92"), default=None, help="default keras")
    parser.add_argument("--epochs", type=int, default=None, help="default 5")
    parser.add_argument("--batch-size", type=int, default=None, help="default 64")
    parser.add_argument("--lr", type=float, default=None, help="default 1e-3 (the max lr with onecycle)")
    parser.add_argument("--optimizer", choices=("adam", "adamw"), default=None, help="default adam")
    parser.add_argument("--weight-decay", type=float, default=None, help="AdamW's decoupled weight decay")
    parser.add_argument("--augment", action="store_true", default=None, help="random crop + flip per batch")
    parser.add_argument("--crop", action=argparse.BooleanOptionalAction, default=None,
                        help="with --augment: the random crop too (default yes; the cnn92 recipe: no)")
    parser.add_argument("--schedule", choices=("none", "onecycle"), default=None)
    parser.add_argument("--time-budget", type=float, default=None, help="stop after the epoch that passes S seconds")
    parser.add_argument("--threads", type=int, default=None, help="tinyopt.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--blas-threads", type=int, default=None, help="OPENBLAS_NUM_THREADS for numpy")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    args = parser.parse_args(argv)
    defaults = dict(model="keras", epochs=5, batch_size=64, lr=1e-3, optimizer="adam", weight_decay=0.0,
                    augment=False, crop=True, schedule="none", time_budget=None)
    defaults.update(RECIPES.get(args.recipe, {}))
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)

    import tinyopt as to
    import tinyopt.nn.functional as F

    to.tune_malloc()  # as the CLI does: reuse freed pages across steps
    if args.threads is not None:
        to.set_num_threads(args.threads, blas_threads=args.blas_threads)
    from tinyopt.data import DataLoader
    from tinyopt.models import CNN92, KerasCNN, LeNet5

    (x_train, y_train), (x_test, y_test) = to.datasets.fashion_mnist.load_data()
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    x_train = (x_train.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    x_test = (x_test.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)

    rng = np.random.default_rng(args.seed)
    model = {"keras": KerasCNN, "lenet5": LeNet5, "bn": bn_cnn, "cnn92": CNN92}[args.model](rng=rng)
    if args.optimizer == "adamw":
        opt = to.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    else:
        opt = to.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    loader = DataLoader((x_train, y_train), batch_size=args.batch_size, shuffle=True, rng=rng)
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    scheduler = (to.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch)
                 if args.schedule == "onecycle" else None)
    augment = to.transforms.fashion_mnist_augment(generator=rng, crop=args.crop) if args.augment else None
    print(f"{args.model}: {model.num_parameters():,} parameters; {args.optimizer} lr={args.lr} "
          f"(schedule {args.schedule}), weight decay {args.weight_decay}, batch {args.batch_size}, {args.epochs} epochs "
          f"on {len(x_train):,} images, augment {args.augment} (crop {args.crop}), time budget {args.time_budget}; threads "
          f"{to.get_num_threads()}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}; "
          f"load average {os.getloadavg()[0]:.1f}")
    to.warmup()
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        t0, losses = time.perf_counter(), []
        for xb, yb in loader:
            if augment is not None:
                xb = augment(xb)
            opt.zero_grad()
            loss = F.cross_entropy(model(to.tensor(xb)), yb)
            loss.backward()
            opt.step()
            if scheduler is not None:
                scheduler.step()
            losses.append(loss.item())
        seconds = time.perf_counter() - t0
        acc = evaluate(model, x_test, y_test)
        print(f"epoch {epoch}: train loss {np.mean(losses):.4f}, test accuracy {acc:.4f}, "
              f"{seconds:.1f} s ({len(x_train) / seconds:,.0f} images/s), {time.perf_counter() - start:.0f} s so far, "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
        if args.time_budget is not None and time.perf_counter() - start >= args.time_budget:
            print(f"time budget of {args.time_budget:.0f} s reached after epoch {epoch}")
            break
    total = time.perf_counter() - start
    print(f"final test accuracy {acc:.4f} after {total:.0f} s of training and evaluation")
    return acc


if __name__ == "__main__":
    main()
