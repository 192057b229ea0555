"""Mixed precision (torch.amp's API): `autocast`, `GradScaler`, and the number formats (`formats`).

    scaler = to.amp.GradScaler("cpu")
    for x, y in loader:
        optimizer.zero_grad()
        with to.amp.autocast("cpu", dtype=to.float16):
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)                       # optional: clip true gradients
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)                           # skipped when a gradient is inf/NaN
        scaler.update()

The parameters stay float32 (master weights); see `autocast_mode` for what runs in 16 bits, and
`formats` for the ranges that make float16 need the scaler and bfloat16 not.
"""
from tinyopt.amp import formats
from tinyopt.amp.autocast_mode import autocast, get_autocast_dtype, is_autocast_available, is_autocast_enabled
from tinyopt.amp.grad_scaler import GradScaler
from tinyopt.amp.master_weights import MasterWeights, master_weights
from tinyopt.amp.memory import saved_bytes

__all__ = ["GradScaler", "MasterWeights", "autocast", "formats", "get_autocast_dtype", "is_autocast_available", "is_autocast_enabled",
           "master_weights", "saved_bytes"]
