"""The quantization step of `tinyopt tour`: quantize the model the tour just trained and report.

`tour_step(ctx)` receives the tour's context (model, data, fast, out) and yields summary rows
(label, value).  The full table is printed too.  In `--fast` mode QAT is skipped and fewer
images are used for calibration and latency.
"""
from __future__ import annotations

from tinyopt.quant.reporting import report


def tour_step(ctx):
    model = ctx["model"]
    (x_train, y_train), _, (x_test, y_test) = ctx["data"]
    fast = bool(ctx.get("fast"))
    print("quantizing the trained model (fp32 / dynamic / static int8 / int4 / mixed"
          + ("" if fast else " / QAT") + ") ...", flush=True)
    rep = report(model, (x_test, y_test), calibration=x_train[: 256 if fast else 1000],
                 train_data=None if fast else (x_train, y_train), qat_epochs=0 if fast else 1,
                 qat_max_steps=None if fast else 150, latency_batch=128 if fast else 256, repeats=3 if fast else 5)
    print(rep)
    fp32, int8 = rep.row("fp32"), rep.row("static int8")
    for row in rep.rows:
        if row["variant"] != "fp32":
            ctx.setdefault("variants", []).append({"variant": row["variant"], "accuracy": row["accuracy"],
                                                   "bytes": row["bytes"], "latency_ms": row.get("latency_ms")})
    yield ("int8 weights (static PTQ)", f"{int8['bytes']:,} B ({fp32['bytes'] / int8['bytes']:.2f}x smaller than fp32)")
    yield ("accuracy fp32 / int8 static", f"{fp32['accuracy']:.4f} / {int8['accuracy']:.4f} "
                                         f"({int8['agree']:.2%} same predictions)")
    if any(r["variant"] == "QAT int8" for r in rep.rows):
        yield ("accuracy QAT int8", f"{rep.row('QAT int8')['accuracy']:.4f}")
    yield ("batch latency fp32 / int8 (wall)", f"{fp32['latency_ms']:.1f} ms / {int8['latency_ms']:.1f} ms "
                                               f"({fp32['latency_ms'] / max(int8['latency_ms'], 1e-9):.2f}x)")
