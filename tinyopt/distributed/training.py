"""`tinyopt train --distributed`: the training loop of tinyopt.train, data-parallel over MPI ranks.

    mpiexec -n N tinyopt train --distributed --batch-size b [--scale-lr linear --warmup-epochs W] ...
    mpiexec -n N tinyopt train --resume DIR                      (a distributed run resumes on N ranks)

Each rank builds the same model from the same seed and draws the same shuffled order of the
training set (one `np.random.Generator`, as in one process). The order is cut into global batches
of G = b·N samples, exactly the batches one process with `--batch-size G` draws, and rank r trains on
the r-th of N near-equal slices of each. The model is wrapped in `DistributedDataParallel` for the
training steps only (so the checkpoint keeps the plain state_dict keys); DDP averages the ranks'
gradients, so with the rank's loss

    L_r = (N / G_t) · Σ_{i ∈ slice_r} ℓ_i         (= the slice's mean loss when G_t = N·b_r)

the averaged gradient is (1/N) Σ_r ∇L_r = ∇ (1/G_t) Σ_{i ∈ batch} ℓ_i, the gradient of one process
on the whole batch of G_t samples, also for a shorter last batch split unequally. (A last batch
with fewer samples than ranks is skipped: every rank needs one sample.) The same optimizer step
then keeps the replicas equal, and the run ends with the weights of one process on batch G, up to
floating-point rounding (tests/test_distributed_cli.py).

Learning rate (Goyal et al. 2017, "Accurate, large minibatch SGD"): `--scale-lr linear` multiplies
the base rate η (--lr, or the optimizer's default) by N, the factor by which the batch grew:
η' = N·η. `--warmup-epochs W` ramps it linearly per step from η to N·η over the first W epochs,

    η_t = N·η · (1/N + (1 − 1/N) · min(t, T_w) / T_w),     T_w = round(W · steps per epoch)

(torch's LinearLR with start_factor 1/N, chained with the schedule, whose factor it multiplies);
Goyal et al. warm up over 5 epochs. `--scale-lr none` (the default) keeps η: then the run equals one
process on batch G with rate η.

Every rank checks the loss of every step before the update: the ranks' losses (and whether each is
finite) are all-reduced, so a NaN or ±∞ on any rank stops every rank at the same step with the same
`TrainingDiverged`, naming the rank(s). Rank 0 alone writes the run folder (checkpoint.npz,
metrics.jsonl, config.json, plots) and prints; it then tells the others whether the commit worked,
so a failed write stops every rank with the same error. The metrics are those of the whole global
batch: loss and accuracy summed over the ranks, and `images_per_second` (training steps only,
G_t images per step, wall time of rank 0) with `world_size`.
"""
from __future__ import annotations

import math
import os
import sys
import time

import numpy as np

from tinyopt.distributed.messages import broadcast_json

SCALE_LR = ("none", "linear")
_LAUNCHER_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")


def add_arguments(parser) -> None:
    """The distributed flags of `tinyopt train`."""
    parser.add_argument("--distributed", action="store_true",
                        help="data-parallel over the ranks of mpiexec (--batch-size is per rank; see "
                             "tinyopt/distributed/training.py)")
    parser.add_argument("--scale-lr", choices=SCALE_LR, default=None,
                        help="with --distributed: 'linear' multiplies the learning rate by the number of ranks")
    parser.add_argument("--warmup-epochs", type=float, default=None, metavar="W",
                        help="with --scale-lr linear: ramp the rate from lr to N·lr over W epochs (Goyal et al.: 5)")


def config_options(args) -> dict:
    """TrainConfig fields of the distributed flags of a new run (checked by `check_config`)."""
    if args.resume is not None:
        given = [flag for flag, value in (("--scale-lr", args.scale_lr), ("--warmup-epochs", args.warmup_epochs))
                 if value is not None]
        if given:
            from tinyopt.cli import UserError

            raise UserError(f"{' and '.join(given)} cannot change on --resume: the run continues with the settings "
                            "in its config.json")
        return {}
    return {"distributed": bool(args.distributed), "scale_lr": args.scale_lr or "none",
            "warmup_epochs": 0.0 if args.warmup_epochs is None else args.warmup_epochs}


def launched_size() -> int:
    """How many processes the MPI launcher started (1 when there is none), from its environment."""
    for name in _LAUNCHER_SIZE_VARS:
        try:
            return int(os.environ[name])
        except (KeyError, ValueError):
            continue
    return 1


def whole_lines() -> None:
    """Under an MPI launcher, make each line of stderr one write: Python writes print's text and its
    newline separately to an unbuffered stderr, and mpiexec interleaves the ranks' writes, which
    glued two ranks' error lines into one. Buffered until the newline, a line stays whole."""
    if launched_size() > 1 and hasattr(sys.stderr, "reconfigure"):
        sys.stderr.reconfigure(line_buffering=True, write_through=False)


def check_config(config) -> None:
    """The distributed settings of a TrainConfig, and their combinations; raises ConfigError."""
    from tinyopt.train import ConfigError, _is_int, _is_real

    if not isinstance(config.distributed, bool):
        raise ConfigError(f"distributed must be true or false, got {config.distributed!r}")
    if not _is_int(config.world_size) or config.world_size < 1:
        raise ConfigError(f"world_size must be a whole number >= 1, got {config.world_size!r}")
    if config.world_size > 1 and not config.distributed:
        raise ConfigError(f"world_size {config.world_size} needs distributed: true")
    if config.scale_lr not in SCALE_LR:
        raise ConfigError(f"--scale-lr {config.scale_lr!r} is not one of: {', '.join(SCALE_LR)}")
    if not (_is_real(config.warmup_epochs) and math.isfinite(config.warmup_epochs) and config.warmup_epochs >= 0):
        raise ConfigError(f"--warmup-epochs must be a number >= 0, got {config.warmup_epochs!r}")
    if config.scale_lr != "none" and not config.distributed:
        raise ConfigError("--scale-lr needs --distributed (it scales the rate by the number of ranks; "
                          "launch with mpiexec -n N tinyopt train --distributed ...)")
    if config.warmup_epochs and config.scale_lr != "linear":
        raise ConfigError("--warmup-epochs needs --scale-lr linear (the warm-up ramps the rate from lr up to the "
                          "scaled N·lr; without scaling there is nothing to ramp to)")
    if config.warmup_epochs and config.schedule in ("onecycle", "plateau"):
        why = ("onecycle warms up by itself" if config.schedule == "onecycle"
               else "plateau changes the rate per epoch, not per step")
        raise ConfigError(f"--warmup-epochs does not combine with --schedule {config.schedule} ({why}); "
                          "use none, step, exp, cosine or linear, or leave out --warmup-epochs")
    if config.warmup_epochs and config.warmup_epochs > config.epochs:
        raise ConfigError(f"--warmup-epochs {config.warmup_epochs:g} is more than --epochs {config.epochs}")


def check_launch(config) -> None:
    """A run that is not distributed, started by mpiexec with several processes, would train N
    independent copies writing the same folder: refuse it (on every rank, before anything is written)."""
    from tinyopt.train import ConfigError

    n = launched_size()
    if not config.distributed and n > 1:
        raise ConfigError(f"mpiexec started {n} processes but --distributed is not given: each would train alone "
                          "and write the same run folder; add --distributed (or run a single process)")


class _Slices:
    def __init__(self, parallel, loader):
        self.parallel, self.loader = parallel, loader

    def __iter__(self):
        return self.parallel._slices(self.loader)

    def __len__(self):
        return len(self.loader)


class DataParallel:
    """What `tinyopt.train.run` does differently on N ranks (see the module docstring). Created after
    the settings are checked; joins the process group and fixes `config.world_size`."""

    def __init__(self, config, resume: bool):
        from tinyopt import distributed as dist
        from tinyopt.train import ConfigError

        if not dist.is_available():
            raise ConfigError("--distributed needs mpi4py and an MPI library: pip install \"tinyopt[distributed]\", "
                              "then mpiexec -n N tinyopt train --distributed ...")
        self.owns_group = not dist.is_initialized()
        if self.owns_group:
            dist.init_process_group(backend="mpi")
        self.dist = dist
        self.comm = dist._comm()
        self.rank, self.world_size = self.comm.Get_rank(), self.comm.Get_size()
        if resume and config.world_size != self.world_size:
            raise ConfigError(f"this run was trained on {config.world_size} rank(s), and this is {self.world_size}: the "
                              f"global batch would change; resume it with mpiexec -n {config.world_size} tinyopt train "
                              "--resume DIR")
        config.world_size = self.world_size
        self.step_losses, self.bad_ranks, self.t0, self.train_seconds = [], [], 0.0, 0.0

    # ------------------------------------------------------------------ building
    def warmup(self, config, optimizer, scheduler, steps_per_epoch: int):
        """The schedule with Goyal et al.'s linear warm-up chained in front (or the schedule alone)."""
        if not config.warmup_epochs or self.world_size == 1:
            return scheduler
        from tinyopt.optim import lr_scheduler as L

        steps = max(1, int(round(config.warmup_epochs * steps_per_epoch)))
        warm = L.LinearLR(optimizer, start_factor=1.0 / self.world_size, end_factor=1.0, total_iters=steps)
        return warm if scheduler is None else L.ChainedScheduler([warm, scheduler])

    def wrap(self, model):
        """The model for the training steps: DistributedDataParallel over it (rank 0's weights broadcast)."""
        from tinyopt.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model)

    # ------------------------------------------------------------------ each epoch
    def batches(self, loader):
        """This rank's slice of every global batch of `loader` (the same batches on every rank), an
        iterable that can be run once per epoch, like the loader."""
        return _Slices(self, loader)

    def _slices(self, loader):
        self.t0 = time.perf_counter()
        self.step_losses, self.step_sizes, self.images = [], [], 0
        for xb, yb in loader:
            g = len(yb)
            if g < self.world_size:
                continue   # every rank needs at least one sample (see the module docstring)
            bounds = np.linspace(0, g, self.world_size + 1).round().astype(int)
            lo, hi = bounds[self.rank], bounds[self.rank + 1]
            self.global_size, self.equal = g, g == self.world_size * (hi - lo)
            self.images += g
            yield xb[lo:hi], yb[lo:hi]

    def loss_fn(self, base):
        """`base` (a mean loss) as L_r above, after checking every rank's loss: if any is NaN or ±∞,
        every rank gets a NaN loss, so each stops before the update (nothing was reduced yet)."""
        from tinyopt.tensor import Tensor

        def loss(output, targets):
            if self.equal:
                value = base(output, targets)
            else:   # a shorter last batch, split unequally: weight so the average is the batch mean
                value = base(output, targets, reduction="sum") * (self.world_size / self.global_size)
            local = float(value.item())
            flags = np.zeros(self.world_size + 1)
            flags[self.rank] = 0.0 if math.isfinite(local) else 1.0
            flags[-1] = local / self.world_size   # Σ_{i ∈ slice} ℓ_i / G_t: they add up to the batch mean
            self.comm.Allreduce(self.dist._mpi().IN_PLACE, flags)
            self.bad_ranks = [r for r in range(self.world_size) if flags[r]]
            if self.bad_ranks:
                return Tensor(np.array(np.nan, dtype=value.data.dtype))
            self.step_losses.append(float(flags[-1]))
            self.step_sizes.append(self.global_size)
            return value

        return loss

    def hooks(self, hooks):
        """`hooks` whose divergence message names the rank(s) where the loss was not finite."""
        inner = hooks.divergence_hint

        def hint(step):
            ranks = ", ".join(map(str, self.bad_ranks))
            return (f"the loss was not finite on rank {ranks} of {self.world_size} (every rank stops at this step); "
                    + inner(step))

        hooks.divergence_hint = hint
        return hooks

    def end_epoch(self, hooks) -> None:
        """Make the epoch's metrics those of the global batches: the ranks' sums added up."""
        self.train_seconds = time.perf_counter() - self.t0
        keys = sorted(hooks.meter.sums)
        sums = np.array([hooks.meter.sums[k] for k in keys] + [hooks.meter.count], dtype=np.float64)
        self.comm.Allreduce(self.dist._mpi().IN_PLACE, sums)
        hooks.meter.sums = dict(zip(keys, sums[:-1].tolist()))
        hooks.meter.count = int(sums[-1])
        if "loss" in hooks.meter.sums:   # the ranks' losses are weighted on a short last batch: use the batch means
            hooks.meter.sums["loss"] = float(np.dot(self.step_losses, self.step_sizes))
        hooks.loss_steps = list(self.step_losses)

    def annotate(self, record: dict) -> None:
        seconds = broadcast_json(self.comm, self.train_seconds)   # one float: rank 0's clock for every rank
        record["world_size"] = self.world_size
        record["images_per_second"] = round(self.images / seconds, 1) if seconds > 0 else None

    # ------------------------------------------------------------------ writing
    def commit(self, commit, *args, **kwargs) -> None:
        """Rank 0 runs `commit(*args)` (tinyopt.train._commit); every rank then raises its error, if any."""
        from tinyopt.loop import TrainingDiverged

        error, report = None, None
        if self.rank == 0:
            try:
                commit(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - re-raised below, on every rank
                error = exc
                report = (type(exc).__name__, " ".join(str(exc).split()), isinstance(exc, TrainingDiverged),
                          (exc.errno, exc.strerror, exc.filename) if isinstance(exc, OSError) else None)
        report = broadcast_json(self.comm, report)   # a few strings, as JSON bytes (never pickled)
        if report is None:
            return
        if error is not None:
            raise error
        name, message, diverged, os_error = report
        if diverged:
            raise TrainingDiverged(message, what="weights")
        if os_error is not None:
            errno, strerror, filename = os_error
            raise OSError(errno, f"rank 0 could not write the run folder: {strerror or message}", filename)
        raise RuntimeError(f"rank 0 could not write the run folder: {name}: {message}")

    def finish(self) -> None:
        if self.owns_group:
            self.dist.destroy_process_group()


__all__ = ["DataParallel", "SCALE_LR", "add_arguments", "check_config", "check_launch", "config_options",
           "launched_size"]
