"""`tinyopt quantize RUN_DIR`: quantize a trained run's checkpoint and print the report.

    tinyopt quantize runs/tour [--calibration 1000] [--qat-epochs 1] [--qat-steps N] [--qat-lr 1e-4]
                               [--test-size N] [--latency-batch 256] [--data DIR]

The run folder is one written by `tinyopt train` / `tinyopt tour` (config + checkpoint).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser():
    p = argparse.ArgumentParser(prog="tinyopt quantize", description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a training run folder (from `tinyopt train --out DIR`)")
    p.add_argument("--calibration", type=int, default=1000, help="training images for static calibration")
    p.add_argument("--qat-epochs", type=int, default=0, help="epochs of quantization-aware fine-tuning (0: skip)")
    p.add_argument("--qat-steps", type=int, default=None, help="stop QAT after this many steps")
    p.add_argument("--qat-lr", type=float, default=1e-4,
                   help="Adam learning rate of the QAT fine-tuning (small: the model is already trained)")
    p.add_argument("--test-size", type=int, default=None, help="first N test images (default: all)")
    p.add_argument("--latency-batch", type=int, default=256)
    p.add_argument("--data", type=Path, default=None, help="folder with the Fashion-MNIST files")
    return p


def main(argv=None) -> int:
    from tinyopt.quant.reporting import report
    from tinyopt.train import ConfigError, load_data, load_run

    args = build_parser().parse_args(argv)
    for name in ("calibration", "latency_batch"):
        if getattr(args, name) < 1:
            print(f"tinyopt quantize: error: --{name.replace('_', '-')} must be at least 1", file=sys.stderr)
            return 2
    if not args.qat_lr > 0:
        print("tinyopt quantize: error: --qat-lr must be > 0", file=sys.stderr)
        return 2
    try:
        config, model = load_run(args.run, args.data)
    except ConfigError as e:
        print(f"tinyopt quantize: error: {e}", file=sys.stderr)
        return 2
    if args.test_size is not None:
        config.test_size = args.test_size
    (x_train, y_train), _, (x_test, y_test) = load_data(config, args.data)
    print(f"quantizing {config.model} from {args.run} on {len(y_test):,} test images", flush=True)
    rep = report(model, (x_test, y_test), calibration=x_train[: args.calibration],
                 train_data=(x_train, y_train) if args.qat_epochs > 0 else None, qat_epochs=args.qat_epochs,
                 qat_max_steps=args.qat_steps, qat_lr=args.qat_lr, latency_batch=args.latency_batch, verbose=True)
    print(rep)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
