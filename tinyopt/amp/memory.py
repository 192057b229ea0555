"""What a graph keeps for backward: the bytes of the arrays its ops saved (`ctx.save_for_backward`).

This is the activation memory that mixed precision halves: under autocast a linear/conv layer saves
its 16-bit input (and the 16-bit im2col columns) instead of float32 ones. Parameters are excluded
by default (they exist anyway; under autocast their 16-bit copies are counted, which is what a
training step also holds). Each array is counted once, however many nodes share it.
"""
from __future__ import annotations

import numpy as np

from tinyopt.autograd.graph import Node


def saved_bytes(output, exclude=()) -> int:
    """Bytes of the unique arrays saved by the nodes reachable from `output` (a Tensor), not counting
    the `.data` of the tensors in `exclude` (e.g. `model.parameters()`)."""
    skip = {id(t.data) for t in exclude}
    seen, total = set(), 0
    stack = [output._node] if output._node is not None else []
    visited = set()
    while stack:
        node = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if node.ctx is None:
            raise RuntimeError("the graph was already released by backward(); measure before backward")
        for a in node.ctx.saved_tensors:
            if isinstance(a, np.ndarray) and id(a) not in seen and id(a) not in skip:
                seen.add(id(a))
                total += a.nbytes
        stack.extend(e for e in node.edges if isinstance(e, Node))
    return total


__all__ = ["saved_bytes"]
