"""Deep Compression's storage (Han et al. 2016): prune → quantize → entropy-code, with byte counts.

Every weight tensor W (≥ 2-D, floating point) is stored as

    values  q_j = clamp(round(w_j / S), −127, 127)  (int8, the non-zeros in flat order; S = max|w| / 127,
            symmetric per-tensor quantization from tinyopt.quant.affine)
    gaps    d_j = i_j − i_{j−1}  (uint8; i_{−1} = −1), the distance between consecutive non-zeros.
            A gap above 255 is bridged by filler entries (gap 255, value 0), as Han et al. do.

Biases, BatchNorm parameters and other 1-D or integer tensors are kept as they are (float32).
`compressed_size` counts the bytes of each form:

    dense_bytes    4 · parameters                                  (fp32)
    csr_bytes      4 · nnz + 4 · nnz + 8 · (rows + 1) + small      (fp32 values, int32 columns, int64 row pointers)
    int8_bytes     nnz' + nnz' + small                             (int8 values + uint8 gaps; nnz' with fillers)
    huffman_bytes  ⌈Σ_s count_s · len_s / 8⌉ per stream + its canonical code table (2 + 2 bytes per symbol
                   used: symbol, code length) + small
                   (len_s the Huffman code length of symbol s; the entropy coder's exact output size)

"small" is the raw float32 bytes of the tensors kept as they are plus 4 bytes per scale.
`save_compressed` writes the int8/uint8 streams with np.savez_compressed (DEFLATE: LZ77 + Huffman,
so the file is close to huffman_bytes); `load_compressed` reads them back (allow_pickle=False) into a
state_dict for a model with the pruning made permanent.
"""
from __future__ import annotations

import heapq
import json
import os
import tempfile

import numpy as np

from tinyopt.prune.shrink import make_permanent
from tinyopt.quant.affine import choose_qparams, quantize_array

MAX_GAP = 255


def _is_compressed(value: np.ndarray) -> bool:
    return value.ndim >= 2 and value.dtype.kind == "f"


def encode_tensor(w: np.ndarray):
    """(values int8, gaps uint8, scale) of W as described in the module docstring."""
    flat = np.asarray(w, dtype=np.float32).reshape(-1)
    idx = np.flatnonzero(flat)
    if idx.size == 0:
        return np.zeros(0, np.int8), np.zeros(0, np.uint8), np.float32(1.0)
    m = float(np.max(np.abs(flat[idx])))
    scale, _ = choose_qparams(-m, m, -127, 127, symmetric=True)
    q = quantize_array(flat[idx], scale, 0, -127, 127).astype(np.int8)
    gaps = np.diff(np.concatenate([[-1], idx]))
    fillers = (gaps - 1) // MAX_GAP  # entries of gap 255 inserted before each real entry
    total = idx.size + int(fillers.sum())
    values = np.zeros(total, np.int8)
    out_gaps = np.full(total, MAX_GAP, np.uint8)
    pos = np.arange(idx.size) + np.cumsum(fillers)
    values[pos] = q
    out_gaps[pos] = gaps - fillers * MAX_GAP
    return values, out_gaps, np.float32(scale)


def decode_tensor(values, gaps, scale, shape) -> np.ndarray:
    """The inverse of encode_tensor (up to the int8 rounding): a float32 array of `shape`."""
    flat = np.zeros(int(np.prod(shape)), np.float32)
    if len(values):
        idx = np.cumsum(gaps.astype(np.int64)) - 1
        real = values != 0
        flat[idx[real]] = values[real].astype(np.float32) * np.float32(scale)
    return flat.reshape(shape)


def huffman_lengths(counts) -> dict:
    """symbol → code length of an optimal prefix code for `counts` (symbol → count > 0)."""
    counts = {s: c for s, c in counts.items() if c > 0}
    if len(counts) <= 1:
        return {s: 1 for s in counts}
    heap = [(c, i, [s]) for i, (s, c) in enumerate(sorted(counts.items()))]
    heapq.heapify(heap)
    lengths = dict.fromkeys(counts, 0)
    tie = len(heap)
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(heap, (c1 + c2, tie, s1 + s2))
        tie += 1
    return lengths


def huffman_bytes(stream: np.ndarray) -> int:
    """Bytes of `stream` (int8/uint8) Huffman-coded, plus its canonical code table (2 bytes for the
    number of symbols, then 2 per symbol: the symbol and its code length)."""
    if stream.size == 0:
        return 0
    symbols, counts = np.unique(stream, return_counts=True)
    lengths = huffman_lengths(dict(zip(symbols.tolist(), counts.tolist())))
    bits = sum(int(c) * lengths[s] for s, c in zip(symbols.tolist(), counts.tolist()))
    return (bits + 7) // 8 + 2 + 2 * len(symbols)


def compressed_size(model) -> dict:
    """Byte counts of `model`'s parameters in each storage form (see the module docstring), with
    `parameters`, `nonzeros` and `ratio` = dense_bytes / huffman_bytes."""
    state = make_permanent(_copy(model)).state_dict()
    out = dict(parameters=0, nonzeros=0, dense_bytes=0, csr_bytes=0, int8_bytes=0, huffman_bytes=0)
    for value in state.values():
        value = np.asarray(value)
        if value.dtype.kind != "f":
            continue  # counters such as num_batches_tracked are not weights
        out["parameters"] += value.size
        out["nonzeros"] += int(np.count_nonzero(value))
        out["dense_bytes"] += 4 * value.size
        if not _is_compressed(value):
            for key in ("csr_bytes", "int8_bytes", "huffman_bytes"):
                out[key] += 4 * value.size
            continue
        nnz = int(np.count_nonzero(value))
        out["csr_bytes"] += 8 * nnz + 8 * (value.shape[0] + 1)
        values, gaps, _ = encode_tensor(value)
        out["int8_bytes"] += values.size + gaps.size + 4
        out["huffman_bytes"] += huffman_bytes(values) + huffman_bytes(gaps) + 4
    out["ratio"] = out["dense_bytes"] / max(out["huffman_bytes"], 1)
    return out


def _copy(model):
    import copy

    return copy.deepcopy(model)


def save_compressed(model, path) -> None:
    """Write `model`'s parameters in the compressed form to `path` (.npz, written atomically)."""
    state = make_permanent(_copy(model)).state_dict()
    arrays, manifest = {}, []
    for i, (name, value) in enumerate(state.items()):
        value = np.asarray(value)
        if _is_compressed(value):
            values, gaps, scale = encode_tensor(value)
            arrays[f"v{i}"], arrays[f"g{i}"] = values, gaps
            manifest.append(dict(name=name, kind="sparse_int8", shape=list(value.shape), scale=float(scale),
                                 dtype=str(value.dtype)))
        else:
            arrays[f"r{i}"] = value
            manifest.append(dict(name=name, kind="raw"))
    arrays["manifest"] = np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_compressed(path) -> dict:
    """The state_dict stored by save_compressed (weights dequantized to their dtype)."""
    with np.load(os.fspath(path), allow_pickle=False) as f:
        manifest = json.loads(bytes(f["manifest"]).decode())
        state = {}
        for i, entry in enumerate(manifest):
            if entry["kind"] == "raw":
                state[entry["name"]] = f[f"r{i}"]
            else:
                state[entry["name"]] = decode_tensor(f[f"v{i}"], f[f"g{i}"], entry["scale"],
                                                     tuple(entry["shape"])).astype(entry["dtype"])
    return state
