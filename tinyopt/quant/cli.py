"""`tinyopt quantize RUN_DIR`: quantize a trained run's checkpoint and print the report.

    tinyopt quantize runs/tour [--calibration 1000] [--qat-epochs 1] [--qat-steps N] [--qat-lr 1e-4]
                               [--test-size N] [--latency-batch 256] [--threads N] [--data DIR]

The run folder is one written by `tinyopt train` / `tinyopt tour` (config + checkpoint). Every
argument is checked before anything is loaded; a mistake is one line naming the fix, exit status 2.
"""
from __future__ import annotations

import sys
from pathlib import Path

from tinyopt.cli_args import EXIT_USAGE, OneLineParser as _Parser, UsageError as _UsageError  # noqa: F401
from tinyopt.cli_args import positive_float as _positive_float, usage_error, whole as _whole  # noqa: F401


def build_parser():
    p = _Parser(prog="tinyopt quantize", description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a training run folder (from `tinyopt train --out DIR`)")
    p.add_argument("--calibration", type=_whole(1), default=1000, help="training images for static calibration")
    p.add_argument("--qat-epochs", type=_whole(0), default=0, help="epochs of quantization-aware fine-tuning (0: skip)")
    p.add_argument("--qat-steps", type=_whole(1), default=None, help="stop QAT after this many steps")
    p.add_argument("--qat-lr", type=_positive_float, default=1e-4,
                   help="Adam learning rate of the QAT fine-tuning (small: the model is already trained)")
    p.add_argument("--test-size", type=_whole(1), default=None, help="first N test images (default: all)")
    p.add_argument("--latency-batch", type=_whole(1), default=256)
    p.add_argument("--threads", type=_whole(1), default=None,
                   help="tinyopt.set_num_threads(N) for the latencies, as the tour does (default: every core this "
                        "process may use)")
    p.add_argument("--data", type=Path, default=None, help="folder with the Fashion-MNIST files")
    return p


def main(argv=None) -> int:
    from tinyopt.cli import dataset_error_message
    from tinyopt.datasets.files import DatasetError
    from tinyopt.quant.reporting import report
    from tinyopt.train import ConfigError, load_data, load_run

    try:
        args = build_parser().parse_args(argv)
    except _UsageError as e:
        return _error(str(e))
    if args.qat_steps is not None and args.qat_epochs == 0:
        return _error("--qat-steps limits the QAT fine-tuning, which --qat-epochs 0 skips: give --qat-epochs 1 "
                      "(or more) too, or leave out --qat-steps")
    try:
        config, model = load_run(args.run, args.data)
        if args.test_size is not None:
            config.test_size = args.test_size
        (x_train, y_train), _, (x_test, y_test) = load_data(config, args.data)
    except ConfigError as e:
        return _error(str(e))
    except DatasetError as e:
        return _error(str(dataset_error_message(e, args.data)))
    if args.calibration > len(x_train):
        return _error(f"--calibration {args.calibration} is more than the {len(x_train):,} training images of this "
                      f"run; use at most {len(x_train)}")
    from tinyopt.cli import _available_cores
    import tinyopt

    threads = args.threads or _available_cores()
    tinyopt.set_num_threads(threads)      # one pool, as in training: the fp32 model's GEMMs split on Numba's threads
    print(f"quantizing {config.model} from {args.run} on {len(y_test):,} test images; {threads} thread(s)", flush=True)
    rep = report(model, (x_test, y_test), calibration=x_train[: args.calibration],
                 train_data=(x_train, y_train) if args.qat_epochs > 0 else None, qat_epochs=args.qat_epochs,
                 qat_max_steps=args.qat_steps, qat_lr=args.qat_lr, latency_batch=args.latency_batch, verbose=True)
    print(rep)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def _error(message: str) -> int:
    return usage_error("tinyopt quantize", message)
