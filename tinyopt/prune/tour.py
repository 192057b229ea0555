"""The pruning step of `tinyopt tour`: remove half of the trained model's channels and hidden neurons
(L1 norm per filter), fine-tune briefly, `shrink`, and compare; plus "prune + int8": the model with
90 % of its weights pruned (global magnitude) and fine-tuned as briefly, stored as int8 + Huffman-coded
gaps (Deep Compression) and evaluated after loading that file back.

`tour_step(ctx)` yields summary rows (label, value) and appends its variants ({"variant", "accuracy",
"bytes", "latency_ms"}) to ctx["variants"] for the tour's one-page picture. The tour's model itself is
not changed. (It runs when "tinyopt.prune.tour" is listed in tinyopt.cli.TOUR_PLUGINS.)
"""
from __future__ import annotations

import copy

import numpy as np

from tinyopt.nn.utils import prune


def tour_step(ctx):
    import tinyopt as to
    from tinyopt import prune as P
    from tinyopt.loop import minibatches, train_epoch
    from tinyopt.prune.cli import accuracy, latency

    model = ctx["model"]
    (x_train, y_train), _, (x_test, y_test) = ctx["data"]
    fast = bool(ctx.get("fast"))
    steps = 60 if fast else 300
    print(f"pruning: 50 % of the channels/neurons by L1 norm, {steps} fine-tuning steps, shrink; "
          "90 % of the weights + int8 + Huffman ...", flush=True)
    model.eval()
    dense_acc = accuracy(model, x_test, y_test)
    structured = copy.deepcopy(model)
    for module, name in P.default_targets(structured)[:-1]:
        prune.ln_structured(module, name, amount=0.5, n=1, dim=0)
    order = np.random.default_rng(0).permutation(len(x_train))
    opt = to.optim.Adam(structured.parameters(), lr=5e-4)
    train_epoch(structured, opt, minibatches(x_train, y_train, 64, order), to.nn.CrossEntropyLoss(), max_steps=steps)
    batch = x_test[: 128 if fast else 256]
    small = P.shrink(structured, batch)
    small_acc = accuracy(small, x_test, y_test)
    t_dense, t_small = latency(model, batch), latency(small, batch)
    variants = ctx.setdefault("variants", [])  # the tour's one-page picture: accuracy against size
    variants.append({"variant": "pruned 50 % channels + shrink", "accuracy": small_acc,
                     "bytes": 4 * P.count_parameters(small), "latency_ms": 1e3 * t_small})
    yield ("pruned 50 % channels + shrink", f"{P.count_parameters(small):,} parameters "
                                             f"({P.count_parameters(model) / P.count_parameters(small):.1f}x fewer), "
                                             f"accuracy {small_acc:.4f} (dense {dense_acc:.4f})")
    yield ("batch latency dense / shrunk", f"{t_dense * 1e3:.1f} ms / {t_small * 1e3:.1f} ms "
                                           f"({t_dense / max(t_small, 1e-9):.2f}x)")
    sparse = copy.deepcopy(model)
    P.prune_to(P.default_targets(sparse), 0.9, scope="global")
    opt = to.optim.Adam(sparse.parameters(), lr=5e-4)
    train_epoch(sparse, opt, minibatches(x_train, y_train, 64, order), to.nn.CrossEntropyLoss(), max_steps=steps)
    sizes = P.compressed_size(sparse)
    path = ctx["out"] / "pruned_int8.npz"
    P.save_compressed(sparse, path)
    restored = P.make_permanent(copy.deepcopy(sparse))
    restored.load_state_dict(P.load_compressed(path))
    restored_acc = accuracy(restored, x_test, y_test)
    variants.append({"variant": "prune 90 % + int8 + Huffman", "accuracy": restored_acc,
                     "bytes": int(sizes["huffman_bytes"]), "latency_ms": None})
    yield ("prune 90 % + int8 + Huffman", f"{sizes['huffman_bytes']:,} B ({sizes['ratio']:.1f}x smaller than fp32), "
                                         f"accuracy {restored_acc:.4f} ({steps} fine-tuning steps)")
