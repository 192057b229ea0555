"""Recurrent training steps in tinyopt and in PyTorch (CPU), side by side in one process.

The issue's target shape: an LSTM over row-by-row images (batch 64, 28 steps of 28 inputs, hidden
128) with a linear classifier on the last hidden state, cross-entropy, Adam; also the same step for
GRU and a tanh RNN. Both frameworks get the same initial weights (tinyopt's, copied into torch via
state_dict) and the same batches; rounds alternate between the two so background load hits both
alike. Prints the median step time of each and the ratio torch_time / tinyopt_time (≥ 1: tinyopt is
faster). Usage:

    python benchmarks/bench_rnn.py [--steps 30] [--rounds 5] [--threads 1] [--modes lstm,gru,rnn]
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import tinyopt as to
import tinyopt.nn as nn
import tinyopt.nn.functional as F

to.tune_malloc()

CLASSES = {"lstm": (nn.LSTM, "LSTM"), "gru": (nn.GRU, "GRU"), "rnn": (nn.RNN, "RNN")}


class Classifier(nn.Module):
    def __init__(self, mode, inputs, hidden, classes, rng):
        super().__init__()
        self.rnn = CLASSES[mode][0](inputs, hidden, batch_first=True, generator=rng)
        self.head = nn.Linear(hidden, classes, rng=rng)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def torch_twin(torch, mode, ours):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(torch.nn, CLASSES[mode][1])(ours.rnn.input_size, ours.rnn.hidden_size, batch_first=True)
            self.head = torch.nn.Linear(ours.rnn.hidden_size, ours.head.out_features)

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.head(out[:, -1])

    net = Net()
    net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()})
    return net


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seq", type=int, default=28)
    parser.add_argument("--inputs", type=int, default=28)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--modes", default="lstm,gru,rnn")
    args = parser.parse_args(argv)

    import torch
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    B, T, I, H = args.batch_size, args.seq, args.inputs, args.hidden
    xs = rng.standard_normal((args.steps, B, T, I)).astype(np.float32)
    ys = rng.integers(0, 10, (args.steps, B))
    print(f"python {platform.python_version()}, torch {torch.__version__}, threads {args.threads}; "
          f"batch {B}, {T} steps x {I} inputs, hidden {H}, Adam, float32")
    for mode in args.modes.split(","):
        ours = Classifier(mode, I, H, 10, np.random.default_rng(1))
        ref = torch_twin(torch, mode, ours)
        opt_t = to.optim.Adam(ours.parameters(), lr=1e-3)
        opt_r = torch.optim.Adam(ref.parameters(), lr=1e-3)

        def step_ours(i):
            opt_t.zero_grad()
            F.cross_entropy(ours(to.tensor(xs[i])), ys[i]).backward()
            opt_t.step()

        def step_torch(i):
            opt_r.zero_grad()
            torch.nn.functional.cross_entropy(ref(torch.from_numpy(xs[i])), torch.from_numpy(ys[i])).backward()
            opt_r.step()

        step_ours(0)   # compile the Numba kernels, warm caches
        step_torch(0)
        times = {"tinyopt": [], "torch": []}
        for _ in range(args.rounds):
            for name, fn in (("tinyopt", step_ours), ("torch", step_torch)):
                start = time.perf_counter()
                for i in range(args.steps):
                    fn(i)
                times[name].append((time.perf_counter() - start) / args.steps)
        t_ours, t_torch = np.median(times["tinyopt"]), np.median(times["torch"])
        print(f"{mode:5s} training step: tinyopt {t_ours * 1e3:7.2f} ms   torch {t_torch * 1e3:7.2f} ms   "
              f"speed ratio (torch time / tinyopt time) {t_torch / t_ours:.2f}")


if __name__ == "__main__":
    main()
