"""What quantization buys and costs, measured: size, accuracy and latency of fp32 / dynamic /
static int8 / int4 / mixed / QAT versions of one trained model, on the same test images.

    rep = tinyopt.quant.report(model, (x_test, y_test), calibration=x_train[:1000],
                               train_data=(x_train, y_train), qat_epochs=1)
    print(rep)                      # a table;  rep.rows: the numbers as dicts

Variants (each built from a copy of `model`; the model itself is not changed):

  fp32        the model as given
  dynamic     `quantize_dynamic` on Linear and Conv2d: int8 weights, activations quantized per batch
  static int8 fuse (Conv+BN, Conv/Linear+ReLU) → `prepare` → calibrate → `convert`: integer-only
  int4        static, every layer's weights in 4 bits (activations int8)
  mixed       static, first and last quantized layers int8 weights, the others int4
  QAT int8    `prepare_qat` → `qat_epochs` of SGD on `train_data` → `convert` (only if train_data given)

"agree" is the fraction of test images whose predicted class equals fp32's.  Sizes count weight
storage (see `model_size_bytes`).  Latency: the median wall time of one forward pass over
`latency_batch` images — what a user waits for, and the number the speed-up (fp32's wall time over
the variant's) is computed from — and, as extra information, its CPU time (all threads of this
process: above the wall time when several threads work, e.g. fp32's multi-threaded BLAS).  On a
shared machine wall times swing with other processes' load: measure on a quiet one.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np

from tinyopt.autograd.function import no_grad
from tinyopt.loop import Hooks, Step, minibatches, train_epoch
from tinyopt.nn import functional as F
from tinyopt.nn.conv import Conv2d
from tinyopt.nn.linear import Linear
from tinyopt.optim import SGD, Adam
from tinyopt.quant import quantize as QZ
from tinyopt.quant.fake_quantize import FakeQuantize
from tinyopt.random import resolve
from tinyopt.tensor import Tensor


def predict(model, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Predicted classes (argmax of the outputs) in evaluation mode."""
    model.eval()
    out = []
    with no_grad():
        for start in range(0, len(x), batch_size):
            y = model(Tensor(x[start:start + batch_size]))
            out.append(np.argmax(y.data, axis=1))
    return np.concatenate(out)


def latency(model, x: np.ndarray, repeats: int = 5):
    """(median wall seconds, median CPU seconds) of one forward pass on the batch `x`, after two
    warm-ups.  CPU time sums this process's threads, but Linux adds another thread's time only at
    scheduler ticks, so for a pass shorter than a tick it can count the main thread alone; wall
    time also counts the time other processes held the cores."""
    from tinyopt.creation import from_numpy

    model.eval()
    batch = from_numpy(np.ascontiguousarray(x))      # wrapped once: no copy inside the timing
    wall, cpu = [], []
    # Let the previous variant's spinning worker threads (OpenBLAS, OpenMP) go idle: 20 ms covers
    # OpenMP's short spin. Not longer: on a VM, after 0.2 s of idle the second core came back only
    # ~50 ms later, and a pass of 1 ms then ran on one core (benchmarks/bench_quant_lenet.py).
    time.sleep(0.02)
    with no_grad():
        for _ in range(2):
            model(batch)
        for _ in range(repeats):
            c0, t0 = time.process_time(), time.perf_counter()
            model(batch)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    return float(np.median(wall)), float(np.median(cpu))


def _thread_note() -> str:
    """The thread setting the latencies ran with: Numba's threads (the kernels, and the fp32 GEMMs
    when they are split), BLAS's own pool, and how many ways a large GEMM is split."""
    import os

    import numba

    from tinyopt.kernels.blas import gemm_threads
    from tinyopt.threads import _blas_controller

    numpy_dir = os.path.dirname(os.path.dirname(np.__file__))     # site-packages: numpy/ and numpy.libs/
    blas = [info["num_threads"] for info in _blas_controller().info()
            if info.get("user_api") == "blas" and info.get("filepath", "").startswith(os.path.join(numpy_dir, "numpy"))]
    return (f"Numba {numba.get_num_threads()}, NumPy's BLAS {blas[0] if blas else 'unknown'}, "
            f"GEMMs split {gemm_threads()} ways")


def calibrate(model, qconfig, calibration: np.ndarray, batch_size: int = 500):
    """fuse → prepare → run `calibration` through it → convert."""
    prepared = QZ.prepare(QZ.fuse_known(model.eval()), qconfig)
    with no_grad():
        for start in range(0, len(calibration), batch_size):
            prepared(Tensor(calibration[start:start + batch_size]))
    return QZ.convert(prepared)


def mixed_qconfig(model, low_bits: int = 4):
    """First and last quantizable layers in int8, every other one with `low_bits`-bit weights."""
    fused = QZ.fuse_known(copy.deepcopy(model).eval())
    names = [n for n, _, _ in QZ._targets(fused, QZ.default_qconfig)]
    spec = {"": QZ.get_default_qconfig(weight_bits=low_bits)}
    for n in (names[0], names[-1]):
        spec[n] = QZ.default_qconfig
    return spec


def train_qat(model, train_data, epochs: int = 1, lr: float = 1e-4, batch_size: int = 64, rng=None,
              max_steps: int | None = None, optimizer: str = "adam", freeze_observers_after: float = 0.5):
    """Quantization-aware fine-tuning of an already trained model: prepare_qat → `epochs` of
    training on (x, y) → convert.  Returns the converted model.

    Fine-tuning, not training: the model sits at a minimum its own schedule reached with a small
    final learning rate, and QAT only has to adapt it to the rounding.  A large step size throws
    it out of that minimum faster than the few QAT steps can bring it back (the tour's LeNet-5,
    150 steps: SGD(lr=0.01, momentum=0.9) 0.8588 vs fp32 0.8775; Adam(lr=1e-4) 0.8776).  So, as
    in torch's QAT recipes: `optimizer="adam"` with lr = 1e-4 (or "sgd", momentum 0.9, where
    lr ≈ 1e-3..1e-4 is the matching choice); after the fraction `freeze_observers_after` of
    the steps every observer is frozen (`FakeQuantize.disable_observer`), so the last steps train
    against the very scales and zero points that `convert` will use (1.0: never freeze).
    BatchNorm layers are folded into their convolution (running statistics) by `fuse_known`
    before QAT, so their statistics stay frozen as well.

    The steps run in the shared epoch loop (`tinyopt.loop.train_epoch`, the one `tinyopt train` and
    Keras `fit` use): a NaN or infinite loss raises `TrainingDiverged` before it is applied."""
    if not lr > 0:
        raise ValueError(f"train_qat: lr must be > 0, got {lr}")
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"train_qat: optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    if not 0.0 <= freeze_observers_after <= 1.0:
        raise ValueError(f"train_qat: freeze_observers_after must be in [0, 1], got {freeze_observers_after}")
    rng = resolve(rng)
    x, y = train_data
    qat = QZ.prepare_qat(QZ.fuse_known(model.eval()))
    opt = Adam(qat.parameters(), lr=lr) if optimizer == "adam" else SGD(qat.parameters(), lr=lr, momentum=0.9)
    total = epochs * -(-len(x) // batch_size)
    if max_steps is not None:
        total = min(total, max_steps)
    freeze_at = int(np.ceil(freeze_observers_after * total)) if freeze_observers_after < 1.0 else None
    hooks = _FreezeObservers(qat, freeze_at)
    done = 0
    for epoch in range(epochs):
        if done >= total:
            break
        order = rng.permutation(len(x))
        result = train_epoch(qat, opt, minibatches(x, y, batch_size, order), F.cross_entropy, hooks=hooks,
                             epoch=epoch, global_step=done, max_steps=total - done)
        done = result.global_step
    qat.eval()
    return QZ.convert(qat)


class _FreezeObservers(Hooks):
    """train_qat's one addition to the shared epoch loop: before update number `freeze_at` (counted
    from 0 over all epochs), disable every FakeQuantize's observer."""

    def __init__(self, model, freeze_at):
        self.model, self.freeze_at = model, freeze_at

    def on_step_begin(self, step: Step) -> None:
        if self.freeze_at is not None and step.global_step == self.freeze_at and step.global_step > 0:
            for m in self.model.modules():
                if isinstance(m, FakeQuantize):
                    m.disable_observer()


@dataclass
class QuantReport:
    rows: list = field(default_factory=list)     # dicts: variant, bytes, accuracy, agree, latency_ms, cpu_ms
    notes: list = field(default_factory=list)

    def row(self, variant):
        for r in self.rows:
            if r["variant"] == variant:
                return r
        raise KeyError(variant)

    def __str__(self):
        fp32 = self.rows[0]
        lines = [f"{'variant':<12} {'weights':>12} {'smaller':>8} {'accuracy':>9} {'agree':>7} "
                 f"{'wall ms':>8} {'speed-up':>8} {'cpu ms':>8}"]
        for r in self.rows:
            timed = r.get("latency_ms") is not None
            wall = f"{r['latency_ms']:.1f}" if timed else "-"
            speed = f"{fp32['latency_ms'] / r['latency_ms']:.2f}x" if timed and r["latency_ms"] > 0 else "-"
            cpu = f"{r['cpu_ms']:.1f}" if timed else "-"
            lines.append(f"{r['variant']:<12} {r['bytes']:>10,} B {fp32['bytes'] / r['bytes']:>7.2f}x "
                         f"{r['accuracy']:>9.4f} {r['agree']:>7.2%} {wall:>8} {speed:>8} {cpu:>8}")
        return "\n".join(lines + self.notes)


def report(model, test_data, calibration=None, train_data=None, qat_epochs: int = 0, qat_max_steps=None,
           qat_lr: float = 1e-4, latency_batch: int = 256, repeats: int = 5, low_bits: int = 4, rng=None, verbose: bool = False) -> QuantReport:
    """Size, accuracy, agreement with fp32 and latency for each variant (see the module docstring).

    `test_data` = (x_test, y_test); `calibration` = images for static PTQ (default: the first 1000
    of train_data's images, else of the test images — then say so in your results)."""
    x_test, y_test = test_data
    if calibration is None:
        calibration = train_data[0][:1000] if train_data is not None else x_test[:1000]
    lat_x = x_test[:latency_batch]
    rep = QuantReport()

    def add(variant, m, time_it=True):
        t0 = time.perf_counter()
        pred = predict(m, x_test)
        wall, cpu = latency(m, lat_x, repeats) if time_it else (None, None)
        entry = {
            "variant": variant, "bytes": QZ.model_size_bytes(m)["total"], "accuracy": float(np.mean(pred == y_test)),
            "agree": float(np.mean(pred == base_pred)) if rep.rows else 1.0,
            "latency_ms": None if wall is None else wall * 1e3, "cpu_ms": None if cpu is None else cpu * 1e3,
        }
        rep.rows.append(entry)
        if verbose:
            print(f"  {variant}: accuracy {entry['accuracy']:.4f} ({time.perf_counter() - t0:.1f} s)", flush=True)
        return pred

    model = copy.deepcopy(model).eval()
    base_pred = None
    base_pred = add("fp32", model)
    add("dynamic", QZ.quantize_dynamic(model, {Linear, Conv2d}))
    add("static int8", calibrate(model, QZ.default_qconfig, calibration))
    add(f"int{low_bits}", calibrate(model, QZ.get_default_qconfig(weight_bits=low_bits), calibration), time_it=False)
    add(f"mixed 8/{low_bits}", calibrate(model, mixed_qconfig(model, low_bits), calibration), time_it=False)
    if train_data is not None and qat_epochs > 0:
        add("QAT int8", train_qat(model, train_data, epochs=qat_epochs, lr=qat_lr, rng=rng,
                                       max_steps=qat_max_steps))
    rep.notes.append(f"{len(y_test)} test images; calibration on {len(calibration)} images; latency: batch of "
                     f"{len(lat_x)}, median of {repeats}; speed-up = fp32 wall / variant wall; threads: "
                     f"{_thread_note()}")
    return rep
