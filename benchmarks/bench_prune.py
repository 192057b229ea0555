"""Pruning targets of issue 11, measured on Fashion-MNIST (tinyopt, with torch as a reference where it has one).

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_prune.py [--part kernel lenet300 lenet5] [--train-size N]

kernel    the CSR Linear kernel (tinyopt.kernels.sparse, Numba) against dense float32 BLAS (NumPy) on a
          300 × 784 layer, batch 256, at 50/80/90/95/99 % sparsity; torch's dense `x @ Wᵀ` and
          `torch.sparse.mm` (CSR) on the same data, alternating rounds. Ratio = dense NumPy time / other.
lenet300  LeNet-300-100 (Han et al. 2015): dense training, iterative prune → fine-tune to 12.5× fewer
          weights (92 % sparse, global magnitude), AGP to the same sparsity in one training run, and
          Deep Compression (int8 + gap coding + Huffman) bytes against fp32, with accuracies.
lenet5    LeNet-5 with 50 % of its conv channels and hidden neurons removed (L1 per filter), fine-tuned
          (3 epochs, learning rate halved each epoch), then `shrink`: parameters, accuracy, and inference
          latency at batch 256.

Times are medians (CPU time of this process, the steadier number when other jobs share the cores).
The figures in the README were measured with other jobs running on 2 shared cores.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings

import numpy as np

import tinyopt as to
from tinyopt import nn
from tinyopt import prune as P
from tinyopt.kernels import sparse as KS
from tinyopt.loop import minibatches, train_epoch
from tinyopt.nn.utils import prune


def timeit(fn, repeats=9):
    fn()
    cpu = []
    for _ in range(repeats):
        c0 = time.process_time()
        fn()
        cpu.append(time.process_time() - c0)
    return statistics.median(cpu)


def bench_kernel(rng):
    try:
        import torch
        torch.set_num_threads(1)
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
    except ImportError:
        torch = None
    print("\n== CSR Linear kernel vs dense BLAS (300 × 784 weight, batch 256, float32, CPU time) ==")
    print(f"{'sparsity':>8s} {'numpy dense ms':>14s} {'tinyopt CSR ms':>14s} {'ratio':>6s}"
          + (f" {'torch dense ms':>14s} {'torch CSR ms':>12s} {'torch ratio':>11s}" if torch else ""))
    x = rng.standard_normal((256, 784)).astype(np.float32)
    xt = np.ascontiguousarray(x.T)
    results = {}
    for s in (0.5, 0.8, 0.9, 0.95, 0.99):
        w = rng.standard_normal((300, 784)).astype(np.float32)
        w[rng.random(w.shape) < s] = 0
        csr = KS.csr_from_dense(w)
        np.testing.assert_allclose(KS.csr_matmul_t_numba(*csr, xt), w @ xt, rtol=1e-4, atol=1e-3)
        td, ts, ttd, tts = [], [], [], []
        if torch:
            tw, tx = torch.tensor(w), torch.tensor(x)
            tcsr = tw.to_sparse_csr()
        for _ in range(3):  # alternate rounds so that the machine's load hits every contender
            td.append(timeit(lambda: x @ w.T))
            ts.append(timeit(lambda: KS.csr_matmul_t_numba(*csr, np.ascontiguousarray(x.T)).T))
            if torch:
                ttd.append(timeit(lambda: tx @ tw.T))
                tts.append(timeit(lambda: torch.sparse.mm(tcsr, tx.T).T))
        results[s] = min(td) / min(ts)
        line = f"{s:8.0%} {min(td) * 1e3:14.3f} {min(ts) * 1e3:14.3f} {results[s]:6.2f}"
        if torch:
            line += f" {min(ttd) * 1e3:14.3f} {min(tts) * 1e3:12.3f} {min(ttd) / min(tts):11.2f}"
        print(line)
    print("\n== SparseConv2d (im2col + CSR) vs Conv2d (im2col + BLAS): 32 → 64, 3×3, 13×13, batch 64 ==")
    conv = nn.Conv2d(32, 64, 3, rng=0)
    x4 = to.tensor(rng.standard_normal((64, 32, 13, 13)).astype(np.float32))
    for s in (0.8, 0.9, 0.95):
        c = copy.deepcopy(conv)
        prune.l1_unstructured(c, "weight", s)
        prune.remove(c, "weight")
        sc = P.SparseConv2d(c)
        with to.no_grad():
            np.testing.assert_allclose(sc(x4).data, c(x4).data, rtol=1e-3, atol=1e-3)
            td, ts = [], []
            for _ in range(3):
                td.append(timeit(lambda: c(x4), 5))
                ts.append(timeit(lambda: sc(x4), 5))
        print(f"{s:8.0%}  dense {min(td) * 1e3:7.2f} ms  sparse {min(ts) * 1e3:7.2f} ms  ratio {min(td) / min(ts):5.2f}")
    return results


def _data(model, train_size, test_size=None):
    from tinyopt.train import TrainConfig, load_data

    cfg = TrainConfig(model=model, train_size=train_size, test_size=test_size, seed=0)
    (x, y), _, (xt, yt) = load_data(cfg)
    return x, y, xt, yt


def _train(model, x, y, epochs, lr, seed=0, hooks=None):
    opt = to.optim.Adam(model.parameters(), lr=lr)
    order = np.random.default_rng(seed)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        train_epoch(model, opt, minibatches(x, y, 64, order.permutation(len(x))), loss_fn, hooks=hooks, epoch=epoch)
    return model


def _acc(model, x, y):
    model.eval()
    with to.no_grad():
        pred = np.concatenate([model(to.tensor(x[i:i + 1000])).data.argmax(1) for i in range(0, len(x), 1000)])
    model.train()
    return float(np.mean(pred == y))


def _weights(model):
    return [(m, "weight") for m in model.modules() if isinstance(m, nn.Linear)]


def _nonzero(model):
    return sum(int(np.count_nonzero(m.weight.data)) for m, _ in _weights(model))


def bench_lenet300(train_size, epochs):
    x, y, xt, yt = _data("mlp", train_size)

    def net(seed=0):
        return nn.Sequential(nn.Linear(784, 300, rng=seed), nn.ReLU(), nn.Linear(300, 100, rng=seed + 1), nn.ReLU(),
                             nn.Linear(100, 10, rng=seed + 2))

    target = 0.92
    t0 = time.perf_counter()
    dense = _train(net(), x, y, epochs, 1e-3)
    total = sum(m.weight.data.size for m, _ in _weights(dense))
    rows = [("dense", total, _acc(dense, xt, yt))]
    it = copy.deepcopy(dense)
    P.iterative_pruning(_weights(it), [0.5, 0.75, 0.86, target], finetune=lambda: _train(it, x, y, 2, 3e-4, seed=1),
                        scope="global")
    rows.append(("iterative prune → fine-tune (4 × 2 epochs)", _nonzero(it), _acc(it, xt, yt)))
    steps = epochs * -(-len(x) // 64)
    agp_model = net()
    agp = P.AGP(agp_model, final_sparsity=target, begin_step=steps // 10, n_steps=30,
                frequency=max(1, (steps * 6 // 10) // 30), scope="global")
    _train(agp_model, x, y, epochs, 1e-3, hooks=agp)
    rows.append((f"AGP ({epochs} epochs, one run)", _nonzero(agp_model), _acc(agp_model, xt, yt)))
    print(f"\n== LeNet-300-100 on Fashion-MNIST ({len(x):,} training images, {len(xt):,} test; "
          f"{time.perf_counter() - t0:.0f} s) ==")
    print(f"{'variant':44s} {'non-zero weights':>16s} {'fewer':>6s} {'accuracy':>9s} {'Δ points':>9s}")
    for name, nz, acc in rows:
        print(f"{name:44s} {nz:16,d} {total / nz:5.1f}× {acc:9.4f} {100 * (acc - rows[0][2]):+9.2f}")
    for label, model in (("iterative", it), ("AGP", agp_model)):
        sizes = P.compressed_size(model)
        restored = P.make_permanent(copy.deepcopy(model))
        dense_copy = copy.deepcopy(restored)
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            P.save_compressed(model, f"{d}/m.npz")
            restored.load_state_dict(P.load_compressed(f"{d}/m.npz"))
        print(f"Deep Compression ({label}): fp32 {sizes['dense_bytes']:,} B → CSR {sizes['csr_bytes']:,} B → int8 "
              f"{sizes['int8_bytes']:,} B → Huffman {sizes['huffman_bytes']:,} B = {sizes['ratio']:.1f}× smaller; "
              f"accuracy {_acc(dense_copy, xt, yt):.4f} → {_acc(restored, xt, yt):.4f}")


def bench_lenet5(train_size, epochs, finetune_epochs=3):
    from tinyopt.models.cnn import LeNet5

    x, y, xt, yt = _data("lenet5", train_size)
    t0 = time.perf_counter()
    dense = _train(LeNet5(rng=0), x, y, epochs, 2e-3)
    dense_acc = _acc(dense, xt, yt)
    pruned = copy.deepcopy(dense)
    for layer in (pruned.features[0], pruned.features[3], pruned.classifier[1], pruned.classifier[3]):
        prune.ln_structured(layer, "weight", amount=0.5, n=1, dim=0)
    masked_acc = _acc(pruned, xt, yt)
    for e in range(finetune_epochs):  # the learning rate halves every epoch
        _train(pruned, x, y, 1, 1e-3 / 2 ** e, seed=1 + e)
    tuned_acc = _acc(pruned, xt, yt)
    batch = to.tensor(xt[:256])
    small = P.shrink(pruned, batch)
    small_acc = _acc(small, xt, yt)
    dense.eval()
    small.eval()
    pruned.eval()
    td, tm, ts = [], [], []
    with to.no_grad():
        for _ in range(3):
            td.append(timeit(lambda: dense(batch), 7))
            tm.append(timeit(lambda: pruned(batch), 7))
            ts.append(timeit(lambda: small(batch), 7))
    print(f"\n== LeNet-5, 50 % of conv channels and hidden neurons removed ({len(x):,} training images; "
          f"{time.perf_counter() - t0:.0f} s) ==")
    print(f"{'variant':34s} {'parameters':>10s} {'accuracy':>9s} {'ms / batch 256':>15s} {'speed-up':>9s}")
    print(f"{'dense':34s} {P.count_parameters(dense):10,d} {dense_acc:9.4f} {min(td) * 1e3:15.2f} {1.0:8.2f}×")
    print(f"{'masked (no fine-tune)':34s} {P.count_parameters(dense):10,d} {masked_acc:9.4f}")
    print(f"{f'masked + {finetune_epochs} epochs fine-tune':34s} {P.count_parameters(dense):10,d} {tuned_acc:9.4f} "
          f"{min(tm) * 1e3:15.2f} {min(td) / min(tm):8.2f}×")
    print(f"{'shrunk':34s} {P.count_parameters(small):10,d} {small_acc:9.4f} {min(ts) * 1e3:15.2f} "
          f"{min(td) / min(ts):8.2f}×")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", nargs="+", choices=("kernel", "lenet300", "lenet5"),
                        default=["kernel", "lenet300", "lenet5"])
    parser.add_argument("--train-size", type=int, default=None, help="first N training images (default all)")
    parser.add_argument("--epochs", type=int, default=10, help="LeNet-300-100 epochs (LeNet-5 uses a third)")
    parser.add_argument("--finetune-epochs", type=int, default=3, help="LeNet-5 fine-tuning after structured pruning")
    args = parser.parse_args(argv)
    to.tune_malloc()
    rng = np.random.default_rng(0)
    if "kernel" in args.part:
        bench_kernel(rng)
    if "lenet300" in args.part:
        bench_lenet300(args.train_size, args.epochs)
    if "lenet5" in args.part:
        bench_lenet5(args.train_size, max(1, args.epochs // 3), args.finetune_epochs)


if __name__ == "__main__":
    main()
