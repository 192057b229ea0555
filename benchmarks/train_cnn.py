"""Train a CNN on Fashion-MNIST with tinyopt and report test accuracy and time (the ≥ 90 % recipe).

Recipe (default): the seeds' Keras CNN (`tinyopt.models.KerasCNN`, torch-default init), inputs
scaled to [0, 1], Adam (lr 1e-3, torch's defaults otherwise), batch 64, 5 epochs, shuffled by
`np.random.default_rng(seed)`; cross-entropy on logits.  `--model lenet5` trains LeNet-5 instead.

Usage:
    python benchmarks/train_cnn.py [--model keras|lenet5] [--epochs 5] [--batch-size 64] [--lr 1e-3]
                                   [--seed 0] [--blas-threads N] [--limit N]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

if __name__ == "__main__" and "--blas-threads" in sys.argv:  # before numpy loads OpenBLAS
    os.environ["OPENBLAS_NUM_THREADS"] = sys.argv[sys.argv.index("--blas-threads") + 1]

import numpy as np  # noqa: E402


def evaluate(model, x, y, batch_size: int = 1000) -> float:
    import tinyopt as to

    model.eval()
    correct = 0
    with to.no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(to.tensor(x[start:start + batch_size]))
            correct += int((logits.data.argmax(axis=1) == y[start:start + batch_size]).sum())
    model.train()
    return correct / len(x)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("keras", "lenet5"), default="keras")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--blas-threads", type=int, default=None, help="OPENBLAS_NUM_THREADS for numpy")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    args = parser.parse_args(argv)

    import tinyopt as to
    import tinyopt.nn.functional as F

    to.tune_malloc()  # as the CLI does: reuse freed pages across steps
    from tinyopt.data import DataLoader
    from tinyopt.models import KerasCNN, LeNet5

    (x_train, y_train), (x_test, y_test) = to.datasets.fashion_mnist.load_data()
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    x_train = (x_train.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    x_test = (x_test.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)

    rng = np.random.default_rng(args.seed)
    model = KerasCNN(rng=rng) if args.model == "keras" else LeNet5(rng=rng)
    opt = to.optim.Adam(model.parameters(), lr=args.lr)
    loader = DataLoader((x_train, y_train), batch_size=args.batch_size, shuffle=True, rng=rng)
    print(f"{type(model).__name__}: {model.num_parameters():,} parameters; Adam lr={args.lr}, batch {args.batch_size}, "
          f"{args.epochs} epochs on {len(x_train):,} images; OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}; load average {os.getloadavg()[0]:.1f}")
    to.warmup()
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        t0, losses = time.perf_counter(), []
        for xb, yb in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(to.tensor(xb)), yb)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        seconds = time.perf_counter() - t0
        acc = evaluate(model, x_test, y_test)
        print(f"epoch {epoch}: train loss {np.mean(losses):.4f}, test accuracy {acc:.4f}, "
              f"{seconds:.1f} s ({len(x_train) / seconds:,.0f} images/s)", flush=True)
    total = time.perf_counter() - start
    print(f"final test accuracy {acc:.4f} after {total:.0f} s of training and evaluation")
    return acc


if __name__ == "__main__":
    main()
