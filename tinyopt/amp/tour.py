"""The mixed-precision step of `tinyopt tour` (cli.TOUR_PLUGINS): the trained model's test accuracy
under float16 and bfloat16 autocast (weights stay float32), and how much of a training step's
backward memory autocast keeps (`saved_bytes`). It adds two variants to ctx["variants"] too."""
from __future__ import annotations

import numpy as np

from tinyopt.amp.autocast_mode import autocast
from tinyopt.amp.memory import saved_bytes
from tinyopt.autograd import no_grad
from tinyopt.tensor import Tensor


def _accuracy(model, x, y, dtype, batch: int = 500) -> float:
    correct = 0
    with no_grad(), autocast("cpu", dtype=dtype, enabled=dtype is not None):
        for s in range(0, len(x), batch):
            correct += int((model(Tensor(x[s:s + batch])).data.argmax(1) == y[s:s + batch]).sum())
    return correct / len(x)


def tour_step(ctx):
    import tinyopt.nn.functional as F

    model = ctx["model"]
    (x_train, y_train), _, (x_test, y_test) = ctx["data"]
    was_training = model.training
    model.eval()
    try:
        acc = {name: _accuracy(model, x_test, y_test, dt) for name, dt in
               (("fp32", None), ("fp16", np.float16), ("bf16", "bfloat16"))}
        xb, yb = Tensor(x_train[:64]), y_train[:64]
        kept = {}
        for name, dt in (("fp32", None), ("fp16", np.float16)):
            with autocast("cpu", dtype=dt, enabled=dt is not None):
                kept[name] = saved_bytes(F.cross_entropy(model(xb), yb), model.parameters())
    finally:
        model.train(was_training)
    for name in ("fp16", "bf16"):   # the tour's one-page picture (weights stay float32 under autocast)
        ctx.setdefault("variants", []).append({"variant": f"{ctx['config'].model if 'config' in ctx else 'model'} "
                                               f"{name} autocast", "accuracy": acc[name],
                                               "bytes": 4 * sum(p.numel() for p in model.parameters()),
                                               "latency_ms": None})
    yield ("accuracy fp32 / fp16 / bf16 autocast", f"{acc['fp32']:.4f} / {acc['fp16']:.4f} / {acc['bf16']:.4f}")
    yield ("backward memory under fp16 autocast", f"{kept['fp16'] / kept['fp32']:.2f}x of fp32 (batch 64)")
