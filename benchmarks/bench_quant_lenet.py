"""Static int8 LeNet-5 inference vs fp32, per stage, and PyTorch fp32 on the same weights.

    python benchmarks/bench_quant_lenet.py [--batch 256] [--repeats 15] [--run DIR]
    OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/bench_quant_lenet.py   # one core each

The model is a trained run's checkpoint (`--run`, e.g. from `tinyopt tour --out DIR`) or, without
one, a randomly initialised LeNet-5 on random images (timings do not depend on the weights much;
the int8 ranges come from 512 calibration images either way).  In one process, on the same batch:

- tinyopt fp32 forward (OpenBLAS threads as set by the environment);
- tinyopt static int8 (fuse → prepare → calibrate → convert), whole model, and per stage:
  quantize the input, each conv's int32 accumulators (`conv2d_int8_acc`), each conv's fused
  requantize + ReLU + 2×2 max pool, the Linear layers;
- PyTorch fp32 LeNet-5 with the same weights (when torch is importable).

Times are medians of `--repeats` wall-clock runs after one warm-up; ratio = fp32 / int8.  Run on a
quiet machine: wall time counts other processes' load.

Measured on the development machine (2 cores, AVX2), batch 256, trained tour checkpoint, wall ms:

    threads (Numba / OpenBLAS)   fp32    static int8   ratio
    1 / 1                        15.8        7.5        2.1x
    2 / 2 (default)              14.2        4.6        3.1x

    int8 stage (wall ms)               before: im2col path     after, 1 thread
    quantize input                       0.4                     0.4
    conv1 (pad, im2col, matmul)         10.1                     1.5
    conv1 requantize, transpose, pool    6.6 (unfused)           2.1 (fused)
    conv2 (im2col, matmul)               6.0                     1.8
    conv2 requantize, transpose, pool    1.4 (unfused)           0.9 (fused)
    3 Linear layers                      0.6                     0.6
    whole model                         26.7                     7.5

(before: one thread except conv1's matmul, which used two; the whole int8 model then took
26.7 ms against fp32's 14.4.)
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np

from tinyopt.autograd.function import no_grad
from tinyopt.kernels import conv_int8 as KC
from tinyopt.models import LeNet5
from tinyopt.quant import quantize as QZ
from tinyopt.quant.modules import QActivation, quantize_input
from tinyopt.quant.reporting import calibrate
from tinyopt.tensor import Tensor


def median_ms(fn, repeats):
    """Median wall ms after one warm-up and a short idle pause (so the spinning worker threads of
    the previous measurement — OpenBLAS's, OpenMP's — have gone to sleep and do not compete)."""
    time.sleep(0.3)
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def load_model(run, rng):
    if run is None:
        images = rng.standard_normal((512 + 4096, 1, 28, 28)).astype(np.float32)
        return LeNet5(rng=0).eval(), images[:512], images[512:]
    from tinyopt.train import load_data, load_run

    config, model = load_run(run, None)
    (x_train, _), _, (x_test, _) = load_data(config, None)
    return model.eval(), x_train[:512], x_test


def torch_lenet(model):
    import torch

    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(400, 120), torch.nn.ReLU(), torch.nn.Linear(120, 84), torch.nn.ReLU(), torch.nn.Linear(84, 10))
    ours = [model.features[0], model.features[3], model.classifier[1], model.classifier[3], model.classifier[5]]
    theirs = [m for m in net if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        for a, b in zip(ours, theirs):
            b.weight.copy_(torch.from_numpy(a.weight.data))
            b.bias.copy_(torch.from_numpy(a.bias.data))
    return net.eval()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--run", default=None, help="a training run folder with a LeNet-5 checkpoint")
    args = p.parse_args(argv)
    import numba

    rng = np.random.default_rng(0)
    model, calib, test = load_model(args.run, rng)
    x = test[:args.batch]
    q = calibrate(copy.deepcopy(model), QZ.default_qconfig, calib)
    print(f"batch {args.batch}, Numba threads {numba.get_num_threads()}, median of {args.repeats} (wall ms)")
    with no_grad():
        fp32 = median_ms(lambda: model(Tensor(x)), args.repeats)
        int8 = median_ms(lambda: q(Tensor(x)), args.repeats)
        print(f"  tinyopt fp32          {fp32:7.2f}")
        print(f"  tinyopt static int8   {int8:7.2f}   ratio {fp32 / int8:.2f}x")
        try:
            import torch

            net, xt = torch_lenet(model), torch.from_numpy(x)
            with torch.no_grad():
                t = median_ms(lambda: net(xt), args.repeats)
            print(f"  torch fp32            {t:7.2f}   (torch threads {torch.get_num_threads()})")
        except ImportError:
            pass
        print("int8 stages:")
        conv1 = q.features[0]
        stage = median_ms(lambda: quantize_input(Tensor(x), conv1.input_scale, conv1.input_zero_point,
                                                 conv1.input_qmin, conv1.input_qmax), args.repeats)
        print(f"  quantize input        {stage:7.2f}")
        a, z = quantize_input(Tensor(x), conv1.input_scale, conv1.input_zero_point)[0], conv1.input_zero_point
        for name, conv in (("conv1", q.features[0]), ("conv2", q.features[3])):
            def accumulate(a=a, z=z, conv=conv):
                return KC.conv2d_int8_acc(a, conv.w_int8, conv.stride, conv.padding, z, packed_w=conv.packed_w,
                                          w_pairs=conv.w_pairs, w_quads=conv.w_quads)
            acc = accumulate()
            s_x = conv.input_scale
            print(f"  {name} accumulators    {median_ms(accumulate, args.repeats):7.2f}")
            print(f"  {name} requant+pool    "
                  f"{median_ms(lambda: conv.requantize_acc(acc, s_x, z, pool=2), args.repeats):7.2f}")
            a, z = conv.requantize_acc(acc, s_x, z, pool=2), conv.zero_point
        h0 = q.classifier[0](QActivation(a, q.features[3].scale, z))

        def linears():
            h = h0
            for i in (1, 3, 5):
                h = q.classifier[i](h)
            return h
        print(f"  3 Linear layers       {median_ms(linears, args.repeats):7.2f}")


if __name__ == "__main__":
    main()
