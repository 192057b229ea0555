"""Knowledge distillation and transfer learning on Fashion-MNIST, measured (issue 12's experiments).

1. `hinton`: a Hinton-style table. A teacher (`--teacher mlp`: 784-512-512-10 with dropout;
   `--teacher cnn`: two conv layers, 256 dense units, dropout), a small student MLP
   (784-H-10) trained from scratch, and the same student (same initial weights, same batches,
   same epochs) trained with `tinyopt.distill.Distiller`; "gap recovered" =
   (distilled − scratch) / (teacher − scratch), on test accuracy. Also the student on only a
   few labelled images, with the teacher's soft targets on those images.
2. `sweep`: the temperature sweep T ∈ {1, 2, 4, 8, 20} at α = 0.9, and an α sweep at T = 4.
3. `transfer`: a CNN pretrained on classes 0-4, then classes 5-9 learnt from 10, 50 and 500 labels
   per class three ways: from scratch, frozen features + new head, and fine-tuned (backbone at a
   10× smaller learning rate, `tinyopt.transfer.param_groups`).

Small settings by default (each part takes a few minutes on 2 shared cores); every number is a
test accuracy on the 10 000 test images (5 000 for the transfer part). Usage:

    python benchmarks/distill_transfer.py [--part all|hinton|sweep|transfer] [--teacher mlp|cnn]
        [--train 10000] [--epochs 8] [--hidden 16] [--seeds 2]

The README's tables used `--hidden 32 --epochs 30 --seeds 1` (and `--teacher cnn --teacher-epochs 4`).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import tinyopt as to
from tinyopt import distill, nn, optim, transfer
from tinyopt.datasets import fashion_mnist
from tinyopt.nn import functional as F

to.tune_malloc()


def load(n_train: int, seed: int = 0):
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    idx = np.random.default_rng(seed).permutation(len(x_train))[:n_train]
    prep = lambda x: ((x.astype(np.float32) / 255.0) - 0.2860) / 0.3530  # noqa: E731 - Fashion-MNIST mean/std
    return (prep(x_train[idx]), y_train[idx].astype(np.int64)), (prep(x_test), y_test.astype(np.int64))


def teacher_mlp(seed: int):
    g = np.random.default_rng(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512, rng=g), nn.ReLU(), nn.Dropout(0.3),
                         nn.Linear(512, 512, rng=g), nn.ReLU(), nn.Dropout(0.3), nn.Linear(512, 10, rng=g))


def teacher_cnn(seed: int):
    g = np.random.default_rng(seed)
    return nn.Sequential(nn.Unflatten(1, (1, 28)), nn.Conv2d(1, 16, 3, padding=1, rng=g), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1, rng=g), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(32 * 7 * 7, 256, rng=g), nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, 10, rng=g))


class CachedTeacher(nn.Module):
    """The teacher's evaluation-mode logits for the training images, computed once and looked up by
    image (identical to running the teacher, which is deterministic in evaluation mode; unseen
    images go through the teacher). Only a speed-up for the experiments: a CNN teacher's forward
    would otherwise dominate every distillation step."""

    def __init__(self, teacher, x):
        super().__init__()
        self.teacher = teacher
        with to.no_grad():
            teacher.eval()
            logits = np.concatenate([teacher(to.tensor(x[i:i + 500])).data for i in range(0, len(x), 500)])
        self.table = {row.tobytes(): z for row, z in zip(x.reshape(len(x), -1), logits)}

    def forward(self, x):
        rows = x.data.reshape(len(x.data), -1)
        found = [self.table.get(r.tobytes()) for r in rows]
        if any(z is None for z in found):
            return self.teacher(x)
        return to.tensor(np.stack(found))


def student_mlp(hidden: int, seed: int):
    g = np.random.default_rng(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, hidden, rng=g), nn.ReLU(), nn.Linear(hidden, 10, rng=g))


def accuracy(model, x, y, batch: int = 1000) -> float:
    with to.no_grad():
        was = model.training
        model.eval()
        hits = sum(int((model(to.tensor(x[i:i + batch])).data.argmax(1) == y[i:i + batch]).sum())
                   for i in range(0, len(x), batch))
        model.train(was)
    return hits / len(x)


def train_ce(model, x, y, epochs, lr=1e-3, batch=64, seed=0, params=None):
    """Plain cross-entropy training with Adam; the batch order comes from `seed`."""
    opt = optim.Adam(model.parameters() if params is None else params, lr=lr)
    g = np.random.default_rng(seed)
    model.train()
    for _ in range(epochs):
        order = g.permutation(len(x))
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            loss = F.cross_entropy(model(to.tensor(x[idx])), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


def train_kd(teacher, student, x, y, epochs, T, alpha, lr=1e-3, batch=64, seed=0):
    d = distill.Distiller(teacher, student, T=T, alpha=alpha)
    d.fit(x, y, optim.Adam(d.parameters(), lr=lr), epochs=epochs, batch_size=batch, rng=seed)
    return student


def gap(teacher, scratch, kd):
    return (kd - scratch) / (teacher - scratch) if teacher != scratch else float("nan")


def part_hinton(args, data, teacher, a_teacher):
    (x, y), (xt, yt) = data
    print(f"\n## Hinton-style table (train {len(x)} images, {args.epochs} epochs, student 784-{args.hidden}-10, "
          f"T={args.T}, alpha={args.alpha})")
    print("| model | params | test acc | errors |\n|---|---:|---:|---:|")
    n_t = sum(p.numel() for p in teacher.parameters())
    print(f"| teacher ({args.teacher}) | {n_t:,} | {a_teacher:.4f} | {round((1 - a_teacher) * len(xt))} |")
    rows = []
    for seed in range(args.seeds):
        scratch = train_ce(student_mlp(args.hidden, 100 + seed), x, y, args.epochs, seed=seed)
        kd = train_kd(teacher, student_mlp(args.hidden, 100 + seed), x, y, args.epochs, args.T, args.alpha, seed=seed)
        rows.append((accuracy(scratch, xt, yt), accuracy(kd, xt, yt)))
    a_s, a_k = np.mean(rows, axis=0)
    n_s = sum(p.numel() for p in student_mlp(args.hidden, 0).parameters())
    print(f"| student from scratch | {n_s:,} | {a_s:.4f} | {round((1 - a_s) * len(xt))} |")
    print(f"| distilled student | {n_s:,} | {a_k:.4f} | {round((1 - a_k) * len(xt))} |")
    print(f"gap recovered: {gap(a_teacher, a_s, a_k):.0%} (mean of {args.seeds} seeds; per seed: "
          + ", ".join(f"{gap(a_teacher, s, k):.0%}" for s, k in rows) + ")")

    print("\n## Little labelled data: the student sees n labelled images (the teacher was trained on all)")
    print("| labelled images | scratch | distilled (alpha=0.9) | soft targets only (alpha=1) |\n|---:|---:|---:|---:|")
    for n in (100, 500, 2000):
        xs, ys = x[:n], y[:n]
        epochs = max(args.epochs, int(args.epochs * 2000 / n))  # about the same number of steps
        a_s = accuracy(train_ce(student_mlp(args.hidden, 7), xs, ys, epochs), xt, yt)
        a_k = accuracy(train_kd(teacher, student_mlp(args.hidden, 7), xs, ys, epochs, args.T, 0.9), xt, yt)
        a_1 = accuracy(train_kd(teacher, student_mlp(args.hidden, 7), xs, ys, epochs, args.T, 1.0), xt, yt)
        print(f"| {n} | {a_s:.4f} | {a_k:.4f} | {a_1:.4f} |")


def part_sweep(args, data, teacher, a_teacher):
    (x, y), (xt, yt) = data
    a_s = accuracy(train_ce(student_mlp(args.hidden, 100), x, y, args.epochs), xt, yt)
    print(f"\n## Temperature sweep (alpha={args.alpha}; teacher {a_teacher:.4f}, scratch {a_s:.4f})")
    print("| T | distilled acc | gap recovered |\n|---:|---:|---:|")
    for T in (1.0, 2.0, 4.0, 8.0, 20.0):
        a = accuracy(train_kd(teacher, student_mlp(args.hidden, 100), x, y, args.epochs, T, args.alpha), xt, yt)
        print(f"| {T:g} | {a:.4f} | {gap(a_teacher, a_s, a):.0%} |")
    print(f"\n## alpha sweep (T={args.T})")
    print("| alpha | distilled acc | gap recovered |\n|---:|---:|---:|")
    for alpha in (0.0, 0.5, 0.9, 1.0):
        a = accuracy(train_kd(teacher, student_mlp(args.hidden, 100), x, y, args.epochs, args.T, alpha), xt, yt)
        print(f"| {alpha:g} | {a:.4f} | {gap(a_teacher, a_s, a):.0%} |")


def cnn_head(n_classes: int, g):
    """The classifier on top of the convolutional features (the part replaced for new classes)."""
    return nn.Sequential(nn.Linear(32 * 7 * 7, 64, rng=g), nn.ReLU(), nn.Linear(64, n_classes, rng=g))


def cnn(n_classes: int, seed: int):
    """Keras' mnist_transfer_cnn split: `features` (the convolutions) and `head` (the dense layers)."""
    g = np.random.default_rng(seed)
    features = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, rng=g), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, rng=g), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    model = nn.Sequential()
    model.add_module("features", features)
    model.add_module("head", cnn_head(n_classes, g))
    return model


def part_transfer(args):
    (x_all, y_all), (xt_all, yt_all) = load(60000, seed=1)
    x_all, xt_all = x_all[:, None], xt_all[:, None]
    low, high = y_all < 5, y_all >= 5
    x_pre, y_pre = x_all[low][:args.pretrain], y_all[low][:args.pretrain]
    x_new, y_new = x_all[high], y_all[high] - 5
    xt, yt = xt_all[yt_all >= 5], yt_all[yt_all >= 5] - 5
    start = time.perf_counter()
    base = train_ce(cnn(5, 0), x_pre, y_pre, args.pretrain_epochs, lr=2e-3)
    pre_acc = accuracy(base, xt_all[yt_all < 5], yt_all[yt_all < 5])
    print(f"\n## Transfer: CNN pretrained on classes 0-4 ({len(x_pre)} images, {args.pretrain_epochs} epochs, "
          f"test acc on 0-4: {pre_acc:.4f}, {time.perf_counter() - start:.0f} s), then classes 5-9")
    state = base.state_dict()
    print("| labels per class | from scratch | frozen features + new head | fine-tuned (backbone lr / 10) |")
    print("|---:|---:|---:|---:|")
    for per_class in (10, 50, 500):
        g = np.random.default_rng(per_class)
        idx = np.concatenate([g.choice(np.flatnonzero(y_new == c), per_class, replace=False) for c in range(5)])
        xs, ys = x_new[idx], y_new[idx]
        steps = 400 if per_class < 500 else 800
        epochs = max(1, int(np.ceil(steps * 32 / len(xs))))
        results = []
        for way in ("scratch", "frozen", "finetune"):
            model = cnn(5, 11)
            params = None
            if way != "scratch":
                model.load_state_dict(state)
                model.head = cnn_head(5, np.random.default_rng(12))  # a new head
                if way == "frozen":
                    transfer.freeze(model.features)           # weights and BatchNorm statistics
                    params = transfer.trainable_parameters(model)
                else:
                    params = transfer.param_groups(model, {"features": 1e-4}, default_lr=1e-3)
            lr = 1e-3
            train_ce(model, xs, ys, epochs, lr=lr, batch=32, params=params, seed=per_class)
            results.append(accuracy(model, xt, yt))
        print(f"| {per_class} | " + " | ".join(f"{a:.4f}" for a in results) + " |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", default="all", choices=["all", "hinton", "sweep", "transfer"])
    p.add_argument("--train", type=int, default=10000, help="training images for the distillation parts")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--teacher", default="mlp", choices=["mlp", "cnn"],
                   help="784-512-512-10 MLP with dropout, or a 16-32 channel CNN")
    p.add_argument("--teacher-epochs", type=int, default=10)
    p.add_argument("--hidden", type=int, default=16, help="the student's hidden units")
    p.add_argument("--T", type=float, default=4.0)
    p.add_argument("--alpha", type=float, default=0.9)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--pretrain", type=int, default=10000, help="images of classes 0-4 to pretrain on")
    p.add_argument("--pretrain-epochs", type=int, default=2)
    args = p.parse_args()
    start = time.perf_counter()
    if args.part in ("all", "hinton", "sweep"):
        data = load(args.train)
        make = teacher_mlp if args.teacher == "mlp" else teacher_cnn
        teacher = train_ce(make(0), *data[0], args.teacher_epochs)
        a_teacher = accuracy(teacher, *data[1])
        if args.teacher == "cnn":
            teacher = CachedTeacher(teacher, data[0][0])
        print(f"teacher trained: test acc {a_teacher:.4f} ({time.perf_counter() - start:.0f} s)")
        if args.part in ("all", "hinton"):
            part_hinton(args, data, teacher, a_teacher)
        if args.part in ("all", "sweep"):
            part_sweep(args, data, teacher, a_teacher)
    if args.part in ("all", "transfer"):
        part_transfer(args)
    print(f"\n(total {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
