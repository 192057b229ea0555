"""The `tinyopt` command (also `python -m tinyopt`).

    tinyopt train --model {mlp,lenet5,cnn} --optimizer {sgd,momentum,nesterov,adagrad,rmsprop,adam,adamw}
                  --lr LR --schedule {none,step,exp,cosine,linear,onecycle,plateau} --epochs N
                  --batch-size B --weight-decay WD --seed S --out DIR
    tinyopt train --resume DIR [--epochs N]      continue a stopped run bit for bit
    mpiexec -n N tinyopt train --distributed [--scale-lr linear --warmup-epochs W] ...
                                                  data-parallel on N ranks (tinyopt.distributed.training)
    tinyopt eval DIR                              test accuracy and confusion matrix (also confusion.png)
    tinyopt tour [--fast]                         the guided tour: train the default CNN, summary, plots
    tinyopt verify ... / tinyopt quantize ...     provided by tinyopt.verify / tinyopt.quant when installed
    tinyopt prune DIR --method M --sparsity S     prune, fine-tune, shrink/compress; table + plots (tinyopt.prune.cli)
    tinyopt bench [--model lenet5|mlp] [--steps N] where a training step's time goes (tinyopt.bench)
    tinyopt verify --candidate MODULE:CLASS [--reference adam] [--steps N] [--lr LR] [--option NAME=VALUE]
                                                  check an optimizer class you wrote (tinyopt.optimizer_check)

A user mistake (a bad flag value, a missing data set, a folder that is not a run) prints one line
saying what to do and exits with status 2; a diverging run (NaN loss) exits with status 1 naming
the step. Only bugs in tinyopt itself show a traceback.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

EXIT_USAGE, EXIT_DIVERGED = 2, 1


class UserError(Exception):
    """A mistake the user can fix; printed as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are a single line (the usage block is available with --help)."""

    def error(self, message):
        raise UserError(f"{message} (see `{self.prog} --help`)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    from tinyopt.train import DEFAULT_LR, MODELS, OPTIMIZERS, PRESETS, SCHEDULES

    parser = _Parser(prog="tinyopt", description="Train, evaluate and explore small networks on Fashion-MNIST.")
    sub = parser.add_subparsers(dest="command", metavar="{train,eval,tour,verify,quantize,prune,bench,course,check}", parser_class=_Parser)

    t = sub.add_parser("train", help="train a model, writing metrics.jsonl, checkpoint.npz and plots into --out")
    t.add_argument("--model", choices=MODELS, default="mlp")
    t.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    t.add_argument("--lr", type=_float, default=None,
                   help="learning rate (default per optimizer: " + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items()) + ")")
    t.add_argument("--schedule", choices=SCHEDULES, default="none", help="learning-rate schedule (see tinyopt/train.py)")
    t.add_argument("--epochs", type=_positive_int, default=None, help="default 5")
    t.add_argument("--batch-size", type=_positive_int, default=64)
    t.add_argument("--weight-decay", type=_float, default=0.0)
    t.add_argument("--momentum", type=_float, default=None, help="μ for --optimizer momentum/nesterov (default 0.9)")
    t.add_argument("--seed", type=_nonnegative_int, default=0)
    t.add_argument("--train-size", type=_positive_int, default=None, help="use the first N training images")
    t.add_argument("--test-size", type=_positive_int, default=None, help="use the first N test images")
    t.add_argument("--out", type=Path, default=None, help="run folder (default runs/<model>-<optimizer>)")
    t.add_argument("--resume", type=Path, default=None, metavar="DIR", help="continue the run saved in DIR")
    t.add_argument("--data", type=Path, default=None, help="folder with the Fashion-MNIST .gz files")
    t.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    t.add_argument("--threads", type=_positive_int, default=None,
                   help="tinyopt.set_num_threads(N) for this run: Numba's N threads run the kernels and split the "
                        "GEMMs (default: the libraries' own, BLAS on every core and the kernels serial)")
    t.add_argument("--blas-threads", type=_positive_int, default=None,
                   help="with --threads N: BLAS's own pool on M threads and the GEMMs whole (M = N: the kernels "
                        "serial; M < N: their parallel twins on N)")
    t.add_argument("--augment", action="store_true",
                   help="random crop (padding 2) and horizontal flip of each training batch (tinyopt.transforms)")
    t.add_argument("--crop", action=argparse.BooleanOptionalAction, default=True,
                   help="with --augment: the random crop too (--no-crop: flips only, as the cnn92 preset)")
    t.add_argument("--stop-after-epoch", type=_positive_int, default=None, help=argparse.SUPPRESS)  # simulates an interruption
    t.add_argument("--amp", choices=("fp16", "bf16"), default=None,
                   help="mixed precision: float16 autocast + GradScaler, or bfloat16 autocast (weights stay float32)")
    importlib.import_module("tinyopt.distributed.training").add_arguments(t)   # --distributed, --scale-lr, --warmup-epochs
    t.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="a named set of the flags above, e.g. cnn92 (the >= 92.5%% recipe); flags given override it")

    e = sub.add_parser("eval", help="test accuracy and confusion matrix of a trained run")
    e.add_argument("run", type=Path, metavar="DIR")
    e.add_argument("--test-size", type=_positive_int, default=None, help="use the first N test images")
    e.add_argument("--data", type=Path, default=None)

    tour = sub.add_parser("tour", help="the guided tour: train the default CNN, print a summary, write plots")
    tour.add_argument("--fast", action="store_true", help="a small slice and one epoch (under a minute), for CI")
    tour.add_argument("--out", type=Path, default=Path("runs/tour"))
    tour.add_argument("--epochs", type=_positive_int, default=None)
    tour.add_argument("--train-size", type=_positive_int, default=None)
    tour.add_argument("--model", choices=MODELS, default=None, help="default: lenet5")
    tour.add_argument("--data", type=Path, default=None)
    tour.add_argument("--threads", type=_positive_int, default=None,
                      help="tinyopt.set_num_threads(N) (default: every core this process may use)")

    for name, module in (("verify", "tinyopt.verify"), ("quantize", "tinyopt.quant.cli"), ("prune", "tinyopt.prune.cli")):
        extra = " (with --candidate MODULE:CLASS: check an optimizer you wrote)" if name == "verify" else ""
        p = sub.add_parser(name, help=f"run {module}.main (arguments are passed on){extra}", add_help=False)
        p.add_argument("args", nargs=argparse.REMAINDER)
    sub.add_parser("course", help="build the course site: tinyopt course build [--fast] [--student] OUT", add_help=False)
    sub.add_parser("check", help="grade a lesson's exercises: tinyopt check LESSON [--student-file F]", add_help=False)
    b = sub.add_parser("bench", help="profile LeNet-5 / MLP training steps: time per op, BLAS share, vs torch",
                       add_help=False)
    b.add_argument("args", nargs=argparse.REMAINDER)
    return parser


# ----------------------------------------------------------------------------- commands


def dataset_error_message(e, data=None) -> UserError:
    """One line for a DatasetError: with --data, what is missing in that folder (the only place
    looked in); without it, how to install the data set."""
    text = str(e)
    if data is not None and Path(data).expanduser().is_file():
        return UserError(f"--data {data} is a file, not a folder: give the folder that holds the four Fashion-MNIST "
                         ".gz files")
    if "not found" in text and data is not None:
        from tinyopt.datasets.fashion_mnist import FILES

        where = f"--data {data}" + ("" if Path(data).expanduser().exists() else " (no such folder)")
        return UserError(
            f"Fashion-MNIST not found in {where}: put the four files {', '.join(FILES)} into that folder "
            "(or its fashion-mnist/ subfolder), or leave out --data to use the installed copy"
        )
    if "not found" in text:
        return UserError(
            "Fashion-MNIST not found: install it with `sudo apt-get install dataset-fashion-mnist`, or put the four "
            ".gz files from https://github.com/zalandoresearch/fashion-mnist into ~/.cache/tinyopt or $TINYOPT_DATA"
        )
    return UserError(text.splitlines()[0])


def cmd_train(args) -> int:
    from tinyopt.distributed.training import config_options
    from tinyopt.train import TrainConfig, run

    distributed = config_options(args)
    if args.blas_threads is not None and args.threads is None:
        raise UserError("--blas-threads needs --threads, e.g. --threads 2 --blas-threads 1")
    if args.blas_threads is not None and args.blas_threads > args.threads:
        raise UserError(f"--blas-threads {args.blas_threads} is more than --threads {args.threads}; "
                        "give at most as many")
    if args.threads is not None:
        import tinyopt

        tinyopt.set_num_threads(args.threads, blas_threads=args.blas_threads)
    if args.resume is not None:
        if args.out is not None and args.out != args.resume:
            raise UserError("give either --out DIR (a new run) or --resume DIR (continue one), not both")
        override = TrainConfig(epochs=args.epochs) if args.epochs is not None else None
        result = run(override, args.resume, resume=True, verbose=0 if args.quiet else 1, data_path=args.data,
                     stop_after_epoch=args.stop_after_epoch)
    else:
        if args.momentum is not None and args.optimizer not in ("momentum", "nesterov"):
            raise UserError(f"--momentum applies to --optimizer momentum or nesterov, not {args.optimizer} "
                            "(leave it out, or choose one of those)")
        config = TrainConfig(model=args.model, optimizer=args.optimizer, lr=args.lr, schedule=args.schedule,
                             epochs=args.epochs or 5, batch_size=args.batch_size, weight_decay=args.weight_decay,
                             momentum=0.9 if args.momentum is None else args.momentum, seed=args.seed,
                             train_size=args.train_size, test_size=args.test_size, amp=args.amp or "none",
                             augment=args.augment, crop=args.crop, **distributed)
        out = args.out or Path("runs") / f"{args.model}-{args.optimizer}"
        result = run(config, out, verbose=0 if args.quiet else 1, data_path=args.data,
                     stop_after_epoch=args.stop_after_epoch)
    if result.test_accuracy is not None and result.rank == 0:
        print(f"test accuracy {result.test_accuracy:.4f} (loss {result.test_loss:.4f}); run folder: {result.out}")
    return 0


def format_confusion(counts, names) -> str:
    """A text table of a confusion matrix (rows: true class, columns: predicted)."""
    short = [n.split("/")[0][:7] for n in names]
    width = max(7, len(str(counts.max())) + 1)
    lines = ["true \\ pred".ljust(12) + "".join(s.rjust(width + 1) for s in short)]
    for name, row in zip(short, counts):
        lines.append(name.ljust(12) + "".join(str(v).rjust(width + 1) for v in row))
    return "\n".join(lines)


def cmd_eval(args) -> int:
    from tinyopt import plot
    from tinyopt.checkpoint import atomic_write
    from tinyopt.datasets.fashion_mnist import CLASS_NAMES
    from tinyopt.train import evaluate, load_data, load_run

    config, model = load_run(args.run)
    if args.test_size is not None:
        config.test_size = args.test_size
    _, _, (x_test, y_test) = load_data(config, args.data)
    loss, acc, pred = evaluate(model, x_test, y_test)
    counts = plot.confusion_counts(y_test, pred, num_classes=len(CLASS_NAMES))
    print(f"test accuracy {acc:.4f}  (loss {loss:.4f}, {len(y_test)} images, model {config.model})")
    print(format_confusion(counts, CLASS_NAMES))
    plot.confusion_matrix(y_test, pred, class_names=CLASS_NAMES, save=args.run / "confusion.png", close=True)
    atomic_write(args.run / "eval.json", json.dumps({"test_loss": loss, "test_accuracy": acc, "n": int(len(y_test)),
                                                     "confusion": counts.tolist()}) + "\n")
    print(f"wrote {args.run / 'confusion.png'}")
    return 0


# ----------------------------------------------------------------------------- the tour

# Later steps of the tour (compression, quantization) live in their own packages: each module listed
# here, if it can be imported, provides `tour_step(ctx) -> list[(label, value)]`, called after
# training with ctx = {"model", "config", "result", "data", "out", "fast"}; its rows are added to
# the summary table. A module that is not there yet is skipped.
# The tour's steps after training, in the order of the subject: each module's `tour_step(ctx)` yields
# summary rows and may append {"variant", "accuracy", "bytes", "latency_ms"} dicts to ctx["variants"]
# for the one-page picture. A step whose part of tinyopt is absent is skipped.
TOUR_PLUGINS = ("tinyopt.prune.tour", "tinyopt.quant.tour", "tinyopt.distill.tour", "tinyopt.amp.tour")


def tour_settings(fast: bool, model=None, epochs=None, train_size=None):
    """The tour's training settings: LeNet-5 with Adam and a one-cycle schedule on all 60,000 training
    images (54,000 after holding out 10 % for validation) for 2 epochs, batch 64 (about a minute of
    training on 2 cores with single-threaded BLAS, test accuracy ≈ 0.88); `--fast`: 4,000 images, 1 epoch, batch 32, a cosine
    schedule, 1,000 test images (under a minute)."""
    from tinyopt.train import TrainConfig

    return TrainConfig(model=model or "lenet5", optimizer="adam", lr=2e-3, schedule="cosine" if fast else "onecycle",
                       epochs=epochs or (1 if fast else 2), batch_size=32 if fast else 64,
                       train_size=train_size or (4000 if fast else None), test_size=1000 if fast else None,
                       val_fraction=0.1, seed=0)


def _available_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def cmd_tour(args) -> int:
    from tinyopt import plot
    from tinyopt.datasets.fashion_mnist import CLASS_NAMES
    from tinyopt.train import evaluate, load_data, run

    config = tour_settings(args.fast, args.model, args.epochs, args.train_size)
    threads = args.threads or _available_cores()
    importlib.import_module("tinyopt").set_num_threads(threads)      # one pool, Numba's, on every core (tinyopt/threads.py)
    try:  # compile the Numba conv/pool kernels once, up front, so the first epoch's time is honest
        importlib.import_module("tinyopt.warmup").warmup()
    except ImportError:  # pragma: no cover - older engine
        pass
    data = load_data(config, args.data)
    print(f"tinyopt tour{' --fast' if args.fast else ''}: {config.model} on Fashion-MNIST ({len(data[0][0]):,} training, "
          f"{len(data[1][0]):,} validation, {len(data[2][0]):,} test images; {config.epochs} epoch(s), "
          f"{config.optimizer}, {config.schedule} schedule; {threads} thread(s))", flush=True)
    t0 = time.perf_counter()
    result = run(config, args.out, data=data, verbose=1)
    _, _, (x_test, y_test) = data
    _, _, pred = evaluate(result.model, x_test, y_test)
    plot.confusion_matrix(y_test, pred, class_names=CLASS_NAMES, save=args.out / "confusion.png", close=True)
    last = result.history[-1]
    rows = [
        ("model", f"{config.model} ({result.model.num_parameters():,} parameters)"),
        ("optimizer / schedule", f"{config.optimizer}, lr {config.learning_rate:g}, {config.schedule}"),
        ("training images / epochs", f"{len(data[0][0]):,} / {config.epochs}"),
        ("train loss / accuracy", f"{last['train_loss']:.4f} / {last['train_accuracy']:.4f}"),
        ("validation accuracy", f"{last['val_accuracy']:.4f}"),
        ("test accuracy", f"{result.test_accuracy:.4f} ({len(y_test):,} images)"),
        ("training time", f"{time.perf_counter() - t0:.1f} s"),
    ]
    ctx = {"model": result.model, "config": config, "result": result, "data": data, "out": args.out, "fast": args.fast,
           "variants": [{"variant": f"{config.model} fp32", "accuracy": result.test_accuracy,
                         "bytes": 4 * result.model.num_parameters(), "latency_ms": None}]}
    for name in TOUR_PLUGINS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and name.startswith(e.name):
                continue  # that part of tinyopt is not there yet
            raise
        rows += list(module.tour_step(ctx))
    rows.append(("tour time", f"{time.perf_counter() - t0:.1f} s"))
    print(summary_table(rows))
    plot.tour_summary(result.history, ctx["variants"], save=args.out / "summary.png", close=True)
    print(f"plots: {args.out / 'summary.png'} (one page), {args.out / 'curves.png'}, {args.out / 'steps.png'}, "
          f"{args.out / 'lr.png'}, {args.out / 'confusion.png'}")
    return 0


def summary_table(rows) -> str:
    width = max(len(label) for label, _ in rows)
    line = "-" * (width + 3 + max(len(str(v)) for _, v in rows))
    return "\n".join([line] + [f"{label.ljust(width)} | {value}" for label, value in rows] + [line])


# ----------------------------------------------------------------------------- delegated commands


def _delegate(module_name: str, argv) -> int:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise UserError(f"{module_name} is not part of this tinyopt version yet; update tinyopt to use this command") from None
        raise
    main = getattr(module, "main", None)
    if main is None:
        raise UserError(f"{module_name} has no main(); update tinyopt to use this command")
    code = main(list(argv))
    return 0 if code is None else int(code)


# ----------------------------------------------------------------------------- verify --candidate


def wants_candidate_check(argv) -> bool:
    """`tinyopt verify --candidate ...` is handled here; plain `tinyopt verify` by tinyopt.verify.main."""
    return any(a == "--candidate" or a.startswith("--candidate=") for a in argv)


def build_candidate_parser() -> argparse.ArgumentParser:
    from tinyopt.optimizer_check import DEFAULT_ATOL, DEFAULT_RTOL, PROBLEMS

    p = _Parser(prog="tinyopt verify",
                description="Check an optimizer class you wrote against a reference, step by step, in float64 "
                            "(tinyopt.verify.check_optimizer). Exit status 0: they agree; 1: they differ.")
    p.add_argument("--candidate", required=True, metavar="MODULE:CLASS",
                   help="your optimizer class: an importable module (from the current folder too) or a file, "
                        "e.g. my_optimizers:MyAdam or path/to/my_optimizers.py:MyAdam")
    p.add_argument("--reference", default="adam", metavar="NAME|MODULE:CLASS",
                   help="a tinyopt.optim optimizer by name (default adam), or MODULE:CLASS (torch.optim:Adam works)")
    p.add_argument("--steps", type=_positive_int, default=50, help="steps per problem (default 50)")
    p.add_argument("--lr", type=_float, default=1e-2, help="learning rate for both (default 0.01)")
    p.add_argument("--option", "-o", action="append", default=[], metavar="NAME=VALUE",
                   help="a hyperparameter for both, as a Python literal: -o weight_decay=0.1 -o betas=(0.9,0.99)")
    p.add_argument("--reference-option", action="append", default=None, metavar="NAME=VALUE",
                   help="hyperparameters for the reference only, when it spells them differently "
                        "(replaces --option there)")
    p.add_argument("--problem", action="append", choices=tuple(PROBLEMS), default=None,
                   help="run only this problem (repeatable; default all)")
    p.add_argument("--rtol", type=_float, default=DEFAULT_RTOL)
    p.add_argument("--atol", type=_float, default=DEFAULT_ATOL)
    p.add_argument("--seed", type=int, default=0, help="seed of the problems' data and starting points")
    return p


def _load_object(spec: str, flag: str):
    """`module:Name` or `path/to/file.py:Name` -> the object; a mistake is a UserError naming the fix."""
    example = f"{flag} my_optimizers:MyAdam (or {flag} path/to/my_optimizers.py:MyAdam)"
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr.isidentifier():
        raise UserError(f"{flag} {spec!r} must be MODULE:CLASS, e.g. {example}")
    try:
        if module_name.endswith(".py") or os.sep in module_name:
            path = Path(module_name)
            if not path.is_file():
                raise UserError(f"{flag}: no file {module_name!r}; give the path of your .py file, e.g. {example}")
            spec_ = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec_)
            spec_.loader.exec_module(module)
        else:
            cwd = os.getcwd()
            added = cwd not in sys.path
            if added:
                sys.path.insert(0, cwd)
            try:
                module = importlib.import_module(module_name)
            finally:
                if added:
                    sys.path.remove(cwd)
    except UserError:
        raise
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise UserError(f"{flag}: cannot import {module_name!r}; run from the folder that contains it, "
                            f"set PYTHONPATH, or give the file: {flag} path/to/file.py:{attr}") from None
        raise UserError(f"{flag}: importing {module_name!r} failed: {e} "
                        f"(install {e.name!r} or fix the import)") from None
    except Exception as e:  # the user's module itself raised while importing
        raise UserError(f"{flag}: importing {module_name!r} failed with {type(e).__name__}: {e} "
                        f"(fix it; `python -c 'import {Path(module_name).stem}'` shows the traceback)") from None
    if not hasattr(module, attr):
        names = sorted(n for n, v in vars(module).items() if isinstance(v, type) and not n.startswith("_"))
        raise UserError(f"{flag}: {module_name!r} has no {attr!r}; its classes: {', '.join(names) or 'none'}")
    obj = getattr(module, attr)
    if not callable(obj):
        raise UserError(f"{flag}: {spec!r} is a {type(obj).__name__}, not an optimizer class")
    return obj


def _reference_class(text: str):
    from tinyopt import optim
    from tinyopt.optim import Optimizer

    if ":" in text:
        return _load_object(text, "--reference")
    known = {name.lower(): getattr(optim, name) for name in dir(optim)
             if isinstance(getattr(optim, name), type) and issubclass(getattr(optim, name), Optimizer)
             and getattr(optim, name) is not Optimizer}
    if text.lower() not in known:
        raise UserError(f"unknown --reference {text!r}: choose one of {', '.join(sorted(known))}, or give MODULE:CLASS")
    return known[text.lower()]


def _parse_options(options) -> dict:
    out = {}
    for item in options:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise UserError(f"--option {item!r} must be NAME=VALUE, e.g. --option weight_decay=0.1")
        try:
            out[name] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            out[name] = value.strip()  # a bare word, e.g. eps_placement=keras
    return out


def cmd_verify_candidate(argv) -> int:
    from tinyopt.optimizer_check import check_optimizer

    args = build_candidate_parser().parse_args(argv)
    candidate = _load_object(args.candidate, "--candidate")
    reference = _reference_class(args.reference)
    options = _parse_options(args.option)
    reference_options = None if args.reference_option is None else _parse_options(args.reference_option)
    for reserved in ("lr", "steps", "reference", "problems", "rtol", "atol", "seed"):
        if reserved in options or reserved in (reference_options or {}):
            raise UserError(f"--option {reserved}=... is not a hyperparameter here; use --{reserved} instead"
                            if reserved in ("lr", "steps", "rtol", "atol", "seed", "reference")
                            else "use --problem NAME instead of --option problems=...")
    try:
        report = check_optimizer(candidate, reference=reference, steps=args.steps, lr=args.lr, problems=args.problem,
                                 rtol=args.rtol, atol=args.atol, seed=args.seed, reference_kwargs=reference_options,
                                 **options)
    except (TypeError, ValueError) as e:
        raise UserError(f"{type(e).__name__}: {' '.join(str(e).split())} (check --option names and values, "
                        "and that both classes take them)") from None
    except Exception as e:  # the candidate's own code failed: say where, in one line
        frame = _innermost_frame(e)
        raise UserError(f"{type(e).__name__}: {' '.join(str(e).split())} (raised at {frame}; "
                        "run tinyopt.verify.check_optimizer in Python for the traceback)") from None
    print(report)
    return 0 if report.ok else 1


def _innermost_frame(error: BaseException) -> str:
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return "?" if tb is None else f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"


# ----------------------------------------------------------------------------- entry point


def main(argv=None) -> int:
    """Run the command line `argv` (default sys.argv[1:]); returns the exit status."""
    from tinyopt.checkpoint import CheckpointError
    from tinyopt.datasets.fashion_mnist import DatasetError
    from tinyopt.train import ConfigError, TrainingDiverged

    argv = list(sys.argv[1:] if argv is None else argv)
    args = None
    # The command owns its process, so it may tune malloc for training (a library import never does).
    from tinyopt.kernels.memory import tune_malloc

    tune_malloc()
    importlib.import_module("tinyopt.distributed.training").whole_lines()   # under mpiexec: one write per line
    try:
        if argv[:1] == ["verify"] and wants_candidate_check(argv[1:]):
            return cmd_verify_candidate(argv[1:])
        if argv[:1] in (["course"], ["check"]):
            from tinyopt.course import cli as course_cli

            return (course_cli.course_main if argv[0] == "course" else course_cli.check_main)(argv[1:])
        if argv[:1] == ["bench"]:
            return _delegate("tinyopt.bench", argv[1:])
        if argv and argv[0] in ("verify", "quantize"):
            return _delegate("tinyopt.verify" if argv[0] == "verify" else "tinyopt.quant.cli", argv[1:])
        if argv[:1] == ["prune"]:
            return _delegate("tinyopt.prune.cli", argv[1:])
        parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "preset", None):  # the preset's flags right after "train", so the explicit ones (later) win
            from tinyopt.train import PRESETS

            at = argv.index("train") + 1
            args = parser.parse_args(argv[:at] + list(PRESETS[args.preset]) + argv[at:])
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        return {"train": cmd_train, "eval": cmd_eval, "tour": cmd_tour}[args.command](args)
    except UserError as e:
        print(f"tinyopt: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (ConfigError, CheckpointError) as e:
        print(f"tinyopt: error: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_USAGE
    except DatasetError as e:
        print(f"tinyopt: error: {dataset_error_message(e, getattr(args, 'data', None))}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # output piped into `head` and the pipe closed: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # a folder that cannot be created or written (read-only, full disk, ...)
        if e.filename is None:
            raise
        print(f"tinyopt: error: {e.strerror or e}: {e.filename} (choose another folder, e.g. with --out)", file=sys.stderr)
        return EXIT_USAGE
    except TrainingDiverged as e:
        print(f"tinyopt: training diverged: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except KeyboardInterrupt:
        print("tinyopt: interrupted; continue a training run with `tinyopt train --resume DIR`", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
