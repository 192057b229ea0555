"""`tinyopt.profile()`: where a training step's time goes, per op type, forward and backward.

    with tinyopt.profile() as prof:
        for _ in range(20):
            opt.zero_grad(); F.cross_entropy(model(x), y).backward(); opt.step()
    print(prof.table())                      # like torch.profiler's key_averages().table()

What is measured (wall-clock, `time.perf_counter`):

- for every op type (a `Function` subclass): the number of forward calls and the seconds spent inside
  its `forward`, the number of backward calls and the seconds inside its `backward` (self time: the
  graph bookkeeping of `Function.apply` and of the backward engine is not in it);
- `blas`: the seconds inside the float GEMMs (`tinyopt.kernels.blas.matmul`, which every matrix
  product of the linear, matmul and convolution ops goes through), a part of the ops' time;
- `record_function(name)` regions the caller marks (e.g. the optimizer step), as rows of their own;
- `overhead`: the wall time of the `with` block not covered by any op or region, i.e. Python
  outside the kernels: Function.apply, the backward engine, Module.__call__, data handling.

So wall = Σ op time + Σ region time + overhead, and blas ⊂ op time. A region that contains ops counts
only once in the coverage (time is attributed to the outermost timed interval), but its ops still
get their own rows.

When no profiler is active the hooks cost one test of a module global per `Function.apply`, per
node in backward and per GEMM. One profiler at a time; nesting raises.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from tinyopt.autograd import function as _function
from tinyopt.autograd import graph as _graph
from tinyopt.kernels import blas as _blas

_clock = time.perf_counter


@dataclass
class OpStats:
    """Totals of one op type (or region): calls and seconds, forward and backward, and BLAS seconds."""

    name: str
    forward_calls: int = 0
    forward_s: float = 0.0
    backward_calls: int = 0
    backward_s: float = 0.0
    blas_s: float = 0.0
    blas_calls: int = 0

    @property
    def total_s(self) -> float:
        return self.forward_s + self.backward_s

    @property
    def calls(self) -> int:
        return self.forward_calls + self.backward_calls


class Profiler:
    """What `profile()` yields. Read `key_averages()`, `summary()` or `table()` after the block."""

    def __init__(self):
        self.stats: dict[str, OpStats] = {}
        self.wall_s = 0.0
        self.covered_s = 0.0     # time inside outermost op / region intervals
        self.blas_s = 0.0
        self.blas_calls = 0
        self._depth = 0
        self._current: list[OpStats] = []   # the op (or region) whose interval is open, innermost last
        self._started = None

    # -- the hooks (called by Function.apply, the backward engine and kernels.blas) ----------
    def _stats(self, name: str) -> OpStats:
        s = self.stats.get(name)
        if s is None:
            s = self.stats[name] = OpStats(name)
        return s

    def _enter(self, name: str) -> OpStats:
        s = self._stats(name)
        self._current.append(s)
        self._depth += 1
        return s

    def _leave(self, seconds: float) -> None:
        self._current.pop()
        self._depth -= 1
        if self._depth == 0:
            self.covered_s += seconds

    def run_forward(self, cls, ctx, raw, kwargs):
        s = self._enter(cls.__name__)
        start = _clock()
        try:
            return cls.forward(ctx, *raw, **kwargs)
        finally:
            seconds = _clock() - start
            s.forward_calls += 1
            s.forward_s += seconds
            self._leave(seconds)

    def run_backward(self, node, grad):
        s = self._enter(node.fn.__name__)
        start = _clock()
        try:
            return node.fn.backward(node.ctx, grad)
        finally:
            seconds = _clock() - start
            s.backward_calls += 1
            s.backward_s += seconds
            self._leave(seconds)

    def blas(self, fn, *args):
        start = _clock()
        try:
            return fn(*args)
        finally:
            seconds = _clock() - start
            self.blas_s += seconds
            self.blas_calls += 1
            if self._current:
                self._current[-1].blas_s += seconds
                self._current[-1].blas_calls += 1
            elif self._depth == 0:
                self.covered_s += seconds

    @contextlib.contextmanager
    def record_function(self, name: str):
        s = self._enter(name)
        start = _clock()
        try:
            yield s
        finally:
            seconds = _clock() - start
            s.forward_calls += 1
            s.forward_s += seconds
            self._leave(seconds)

    # -- results --------------------------------------------------------------------------------
    def key_averages(self, sort_by: str = "total") -> list[OpStats]:
        """One `OpStats` per op type / region, largest `sort_by` first ("total", "forward",
        "backward", "calls", "blas" or "name")."""
        keys = {"total": lambda s: -s.total_s, "forward": lambda s: -s.forward_s, "backward": lambda s: -s.backward_s,
                "calls": lambda s: -s.calls, "blas": lambda s: -s.blas_s, "name": lambda s: s.name}
        if sort_by not in keys:
            raise ValueError(f"sort_by must be one of {sorted(keys)}, got {sort_by!r}")
        return sorted(self.stats.values(), key=keys[sort_by])

    def summary(self) -> dict:
        """wall, ops (inside op forward/backward and regions), blas, overhead (outside), in seconds and shares."""
        wall = self.wall_s if self._started is None else _clock() - self._started
        overhead = max(0.0, wall - self.covered_s)
        share = (lambda v: v / wall) if wall > 0 else (lambda v: 0.0)
        return {"wall_s": wall, "covered_s": self.covered_s, "blas_s": self.blas_s, "blas_calls": self.blas_calls,
                "overhead_s": overhead, "overhead_share": share(overhead), "blas_share": share(self.blas_s),
                "covered_share": share(self.covered_s)}

    def table(self, sort_by: str = "total", row_limit: int = 30) -> str:
        """A text table like torch.profiler's key_averages().table(), with a summary underneath."""
        summary = self.summary()
        wall = summary["wall_s"] or 1.0
        header = ("Name", "Fwd calls", "Fwd ms", "Bwd calls", "Bwd ms", "Total ms", "% wall", "BLAS ms", "Avg us/call")
        rows = []
        for s in self.key_averages(sort_by)[:row_limit]:
            avg = s.total_s / s.calls * 1e6 if s.calls else 0.0
            rows.append((s.name, str(s.forward_calls), f"{s.forward_s * 1e3:.2f}", str(s.backward_calls),
                         f"{s.backward_s * 1e3:.2f}", f"{s.total_s * 1e3:.2f}", f"{100 * s.total_s / wall:.1f}%",
                         f"{s.blas_s * 1e3:.2f}", f"{avg:.1f}"))
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
        rule = "  ".join("-" * w for w in widths)
        fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        lines = [rule, fmt(header), rule, *map(fmt, rows), rule]
        lines.append(f"Wall time: {summary['wall_s'] * 1e3:.2f} ms;  inside ops/regions: {summary['covered_s'] * 1e3:.2f} ms "
                     f"({100 * summary['covered_share']:.1f}%);  inside BLAS: {summary['blas_s'] * 1e3:.2f} ms "
                     f"({100 * summary['blas_share']:.1f}%, {summary['blas_calls']} GEMMs);  Python overhead outside kernels: "
                     f"{summary['overhead_s'] * 1e3:.2f} ms ({100 * summary['overhead_share']:.1f}%)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


_ACTIVE: Profiler | None = None


def _install(prof: Profiler | None) -> None:
    global _ACTIVE
    _ACTIVE = prof
    _function._PROFILER = prof
    _graph._PROFILER = prof
    _blas._observer = None if prof is None else prof.blas


@contextlib.contextmanager
def profile():
    """Profile the ops run inside the block; yields a `Profiler` (read it after the block)."""
    if _ACTIVE is not None:
        raise RuntimeError("tinyopt.profile() is already active; profilers do not nest")
    prof = Profiler()
    _install(prof)
    prof._started = _clock()
    try:
        yield prof
    finally:
        prof.wall_s = _clock() - prof._started
        prof._started = None
        _install(None)


@contextlib.contextmanager
def record_function(name: str):
    """Mark a region (e.g. "optimizer.step") as a row of the active profiler; a no-op without one."""
    prof = _ACTIVE
    if prof is None:
        yield None
        return
    with prof.record_function(name) as s:
        yield s


__all__ = ["OpStats", "Profiler", "profile", "record_function"]
