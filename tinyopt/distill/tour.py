"""The distillation step of `tinyopt tour` (cli.TOUR_PLUGINS): the tour's trained network teaches a
small MLP (784-16-10, about 5× fewer weights than LeNet-5; the teacher of the fast tour is weak, so
expect little or no gain there: the result is reported as measured), which is compared with the same MLP trained from
scratch on the same images for the same steps (Hinton et al. 2015, T = 4, α = 0.9 as `F.kd_loss`).
Adds the two students to ctx["variants"] for the tour's one-page picture."""
from __future__ import annotations

import numpy as np

from tinyopt import nn, optim
from tinyopt.autograd import no_grad
from tinyopt.distill.distiller import Distiller
from tinyopt.loop import minibatches, train_epoch
from tinyopt.tensor import Tensor


def _student(seed: int):
    rng = np.random.default_rng(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 16, rng=rng), nn.ReLU(), nn.Linear(16, 10, rng=rng))


def _accuracy(model, x, y, batch: int = 500) -> float:
    model.eval()
    with no_grad():
        hits = sum(int((model(Tensor(x[s:s + batch])).data.argmax(1) == y[s:s + batch]).sum())
                   for s in range(0, len(x), batch))
    return hits / len(x)


def tour_step(ctx):
    teacher = ctx["model"]
    (x_train, y_train), _, (x_test, y_test) = ctx["data"]
    fast = bool(ctx.get("fast"))
    n, epochs = (len(x_train), 1) if fast else (min(len(x_train), 20000), 2)
    x, y = x_train[:n], y_train[:n]
    print(f"distilling into a 784-16-10 MLP ({n:,} images, {epochs} epoch(s), T = 4, α = 0.9) and training "
          "the same MLP from scratch ...", flush=True)
    was_training = teacher.training
    try:
        scratch = _student(0)
        order = np.random.default_rng(1)
        opt = optim.Adam(scratch.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()
        for epoch in range(epochs):
            scratch.train()
            train_epoch(scratch, opt, minibatches(x, y, 64, order.permutation(n)), loss_fn, epoch=epoch)
        distiller = Distiller(teacher, _student(0), T=4.0, alpha=0.9)
        distiller.fit(x, y, optim.Adam(distiller.student.parameters(), lr=1e-3), epochs=epochs, batch_size=64,
                      rng=np.random.default_rng(1))
        student = distiller.student
        acc_scratch, acc_student = _accuracy(scratch, x_test, y_test), _accuracy(student, x_test, y_test)
    finally:
        teacher.train(was_training)
    size = 4 * sum(p.numel() for p in student.parameters())
    for name, acc in (("MLP from scratch", acc_scratch), ("MLP distilled", acc_student)):
        ctx.setdefault("variants", []).append({"variant": name, "accuracy": acc, "bytes": size, "latency_ms": None})
    yield ("student 784-16-10 scratch / distilled", f"{acc_scratch:.4f} / {acc_student:.4f} "
                                                    f"({size:,} B, teacher {4 * teacher.num_parameters():,} B)")
