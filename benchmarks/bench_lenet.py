"""LeNet-5 training step, tinyopt vs PyTorch CPU, side by side in one process; plus cold start and peak memory.

What it measures (each printed with the ratio tinyopt / torch):

1. Training-step throughput (forward + backward + optimizer step) at batch 64 and 256, on the same
   Fashion-MNIST images, from the same initial weights (tinyopt's, copied into torch), with the
   same optimizer (Adam, lr 1e-3, or `--optimizer sgd`).  The two frameworks alternate in rounds
   so that a noisy, shared machine slows both alike; the table shows the median and the best
   round (the best is the most stable estimate on a loaded machine).
2. First step after import with a warm Numba cache, in a fresh subprocess: import time, then the
   time of the first LeNet training step (no `warmup()` call), and of `warmup()` itself.
3. Peak resident memory (ru_maxrss) of one LeNet training epoch at batch 64, each framework in
   its own subprocess, next to the RSS after import.

Usage:
    python benchmarks/bench_lenet.py [--threads 2] [--blas-threads N] [--rounds 5] [--steps 20]
                                     [--optimizer adam|sgd] [--skip-memory] [--memory-steps N]

`--threads N` sets torch.set_num_threads(N) and tinyopt.set_num_threads(N): one pool, Numba's N
threads, for the kernels' parallel twins and the GEMMs split into N one-thread BLAS calls
(tinyopt/threads.py). `--blas-threads M` calls tinyopt.set_num_threads(N, blas_threads=M) instead
(BLAS's own pool on M threads, the GEMMs whole; M = N: the kernels serial) and also sets
OPENBLAS_NUM_THREADS before numpy is imported.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

if __name__ == "__main__" and "--blas-threads" in sys.argv:  # must happen before numpy loads OpenBLAS
    os.environ["OPENBLAS_NUM_THREADS"] = sys.argv[sys.argv.index("--blas-threads") + 1]

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = f"{names[0]} ({len(names)} logical cores)" if names else cpu
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {platform.system()}, Python {platform.python_version()}, numpy {np.__version__}, load average {load:.1f}"


def load_images(n: int, dtype=np.float32):
    """The first n Fashion-MNIST training images as (n, 1, 28, 28), scaled to [0, 1] (or raw uint8)."""
    import tinyopt as to

    (x, y), _ = to.datasets.fashion_mnist.load_data()
    x = x[:n].reshape(n, 1, 28, 28)
    return (x if dtype == np.uint8 else x.astype(dtype) / 255.0), y[:n].astype(np.int64)


def torch_lenet(torch):
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )


def copy_weights(torch, tiny_model, torch_model) -> None:
    """tinyopt's parameters in registration order → torch's (same layer order and shapes)."""
    with torch.no_grad():
        for p_tiny, p_torch in zip(tiny_model.parameters(), torch_model.parameters()):
            assert tuple(p_tiny.shape) == tuple(p_torch.shape), (p_tiny.shape, p_torch.shape)
            p_torch.copy_(torch.from_numpy(p_tiny.data))


def make_steps(batch: int, optimizer: str, torch, x, y, seed: int = 0):
    import tinyopt as to
    import tinyopt.nn.functional as F
    from tinyopt.models import LeNet5

    to.tune_malloc()  # as the CLI does: reuse freed pages across steps

    model = LeNet5(rng=seed)
    tm = torch_lenet(torch)
    copy_weights(torch, model, tm)
    if optimizer == "adam":
        opt, topt = to.optim.Adam(model.parameters(), lr=1e-3), torch.optim.Adam(tm.parameters(), lr=1e-3)
    else:
        opt, topt = to.optim.SGD(model.parameters(), lr=0.05), torch.optim.SGD(tm.parameters(), lr=0.05)
    starts = np.arange(0, len(x) - batch + 1, batch)
    state = {"i": 0}
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def next_slice():
        s = starts[state["i"] % len(starts)]
        state["i"] += 1
        return slice(s, s + batch)

    def tiny_step():
        sl = next_slice()
        opt.zero_grad()
        loss = F.cross_entropy(model(to.from_numpy(x[sl])), y[sl])   # a view, as torch's xt[sl]
        loss.backward()
        opt.step()
        return loss.item()

    def torch_step():
        sl = next_slice()
        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(tm(xt[sl]), yt[sl])
        loss.backward()
        topt.step()
        return loss.item()

    return tiny_step, torch_step


def time_round(step, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        step()
    return time.perf_counter() - start


def throughput(args, torch, x, y):
    rows = []
    for batch in (64, 256):
        tiny_step, torch_step = make_steps(batch, args.optimizer, torch, x, y)
        for _ in range(3):  # warm both (Numba kernels load, torch allocates)
            tiny_step()
            torch_step()
        steps = max(2, args.steps * 64 // batch)
        times = {"tinyopt": [], "torch": []}
        for _ in range(args.rounds):
            # A pause before each round: OpenBLAS's and torch's OpenMP worker threads busy-wait for
            # a while after their last call, and without it they would steal the cores from the
            # other framework's round (measured: torch's batch-256 step 18 → 30 ms).
            time.sleep(args.pause)
            times["tinyopt"].append(time_round(tiny_step, steps) / steps)
            time.sleep(args.pause)
            times["torch"].append(time_round(torch_step, steps) / steps)
        rows.append((batch, {k: (batch / np.median(v), batch / np.min(v)) for k, v in times.items()}))
    return rows


COLD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import tinyopt as to
import tinyopt.nn.functional as F
from tinyopt.models import LeNet5
t_import = time.perf_counter() - t0
x = np.random.default_rng(0).random((64, 1, 28, 28), dtype=np.float32)
y = np.random.default_rng(1).integers(0, 10, 64)
model = LeNet5(rng=0)
opt = to.optim.SGD(model.parameters(), lr=0.01)
def step():
    opt.zero_grad(); F.cross_entropy(model(to.tensor(x)), y).backward(); opt.step()
t1 = time.perf_counter(); step(); t_first = time.perf_counter() - t1
t2 = time.perf_counter(); step(); t_second = time.perf_counter() - t2
print(json.dumps(dict(import_s=t_import, first_step_s=t_first, second_step_s=t_second)))
"""

WARMUP = r"""
import json, time
t0 = time.perf_counter()
from tinyopt.warmup import warmup
t_import = time.perf_counter() - t0
print(json.dumps(dict(import_s=t_import, warmup_s=warmup())))
"""

MEMORY = r"""
import json, resource, sys, time
framework, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
import numpy as np
sys.path.insert(0, {here!r})
from bench_lenet import load_images, torch_lenet
x, y = load_images(60000, np.uint8)  # 47 MB; each batch is converted to float32 when used

def current_rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20

if framework == "tinyopt":
    import tinyopt as to, tinyopt.nn.functional as F
    from tinyopt.models import LeNet5
    model = LeNet5(rng=0); opt = to.optim.Adam(model.parameters(), lr=1e-3)
    def step(sl):
        opt.zero_grad(); F.cross_entropy(model(to.tensor(x[sl] / np.float32(255))), y[sl]).backward(); opt.step()
else:
    import torch
    torch.set_num_threads(threads)
    model = torch_lenet(torch); opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    yt = torch.from_numpy(y)
    def step(sl):
        xb = torch.from_numpy(x[sl] / np.float32(255))
        opt.zero_grad(); torch.nn.functional.cross_entropy(model(xb), yt[sl]).backward(); opt.step()
def vm_hwm_mib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024

step(slice(0, 64))  # first step outside: kernel loading and lazy allocations
rss_setup = current_rss_mib()
try:  # reset the peak (VmHWM) so that loading the data set does not count (Linux >= 4.0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    peak = vm_hwm_mib
except OSError:
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
for i in range(steps):
    start = (i * 64) % (60000 - 64)
    step(slice(start, start + 64))
seconds = time.perf_counter() - t
print(json.dumps(dict(rss_setup_mib=rss_setup, peak_rss_mib=peak(), seconds=seconds)))
"""


def run_json(code: str, *argv) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *map(str, argv)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="tinyopt.set_num_threads(N, blas_threads=M): BLAS's own pool on M threads "
                             "(also OPENBLAS_NUM_THREADS, read before numpy is imported)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="steps per round at batch 64 (scaled for 256)")
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds of idle before each timed round")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-steps", type=int, default=937, help="steps of batch 64 (937 = one epoch)")
    args = parser.parse_args(argv)

    import torch
    import tinyopt

    torch.set_num_threads(args.threads)
    # The same thread count for both (tinyopt: Numba's pool for everything unless --blas-threads says otherwise)
    tinyopt.set_num_threads(args.threads, blas_threads=args.blas_threads)
    print(f"machine: {machine()}")
    print(f"torch {torch.__version__} with {torch.get_num_threads()} threads; tinyopt {tinyopt.__version__} with "
          f"{tinyopt.get_num_threads()} threads (OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}); "
          f"optimizer {args.optimizer}")
    x, y = load_images(8192)

    print("\n| LeNet-5 train step | tinyopt img/s (median / best) | torch img/s (median / best) | ratio (median / best) |")
    print("|---|---|---|---|")
    for batch, r in throughput(args, torch, x, y):
        (tm, tb), (pm, pb) = r["tinyopt"], r["torch"]
        print(f"| batch {batch} | {tm:,.0f} / {tb:,.0f} | {pm:,.0f} / {pb:,.0f} | {tm / pm:.2f}x / {tb / pb:.2f}x |")

    run_json(WARMUP)  # make sure the Numba cache is warm
    colds = [run_json(COLD) for _ in range(3)]
    warm = run_json(WARMUP)
    first = sorted(c["first_step_s"] for c in colds)
    imports = sorted(c["import_s"] for c in colds)
    print(f"\nfirst LeNet step after import, warm Numba cache, fresh process (3 runs, best / median): "
          f"{first[0]:.2f} / {first[1]:.2f} s (import tinyopt: {imports[0]:.2f} / {imports[1]:.2f} s; "
          f"a second step: {min(c['second_step_s'] for c in colds) * 1000:.0f} ms); "
          f"tinyopt.warmup() alone: {warm['warmup_s']:.2f} s")

    if not args.skip_memory:
        code = MEMORY.format(here=HERE)
        mem = {fw: run_json(code, fw, args.memory_steps, args.threads) for fw in ("tinyopt", "torch")}
        print(f"\n| LeNet-5, {args.memory_steps} steps of batch 64 (Adam) | RSS after first step MiB | peak RSS MiB | time s |")
        print("|---|---|---|---|")
        for fw, m in mem.items():
            print(f"| {fw} | {m['rss_setup_mib']:.0f} | {m['peak_rss_mib']:.0f} | {m['seconds']:.1f} |")
        print(f"peak RSS ratio tinyopt/torch: {mem['tinyopt']['peak_rss_mib'] / mem['torch']['peak_rss_mib']:.2f}x")


if __name__ == "__main__":
    main()
