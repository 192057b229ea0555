"""Variable-length batches for the recurrent layers, with torch.nn.utils.rnn's names and semantics.

A batch of sequences of lengths L_0 ≥ L_1 ≥ … (sorted, or sorted for you with `enforce_sorted=False`)
is *packed* time step by time step: `data` holds x_0[0], x_1[0], …, then x_0[1], x_1[1], … — at step t
only the batch_sizes[t] sequences still running. An RNN given a PackedSequence never sees a padded
step, so padding changes neither its outputs nor any gradient.

    pad_sequence([a (3, *), b (2, *)])            → (T=3, B=2, *), b's last step = padding_value
    pack_padded_sequence(padded, lengths)         → PackedSequence(data (ΣL, *), batch_sizes (T,), …)
    pad_packed_sequence(packed)                   → (padded (T, B, *), lengths (B,))

Every step is one differentiable row gather (`Tensor[index]`), so gradients flow through.
`detach_state` is the truncated-BPTT helper: cut the graph between chunks of a long sequence.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from tinyopt.functions import cat
from tinyopt.tensor import Tensor


class PackedSequence(NamedTuple):
    """torch's PackedSequence: `data` (ΣL, *) step-major rows, `batch_sizes` (T,) int64, and the
    permutation that sorted the batch by length (`sorted_indices`, its inverse `unsorted_indices`;
    None when the batch came sorted)."""

    data: Tensor
    batch_sizes: Tensor
    sorted_indices: Tensor | None = None
    unsorted_indices: Tensor | None = None

    def lengths_sorted(self) -> np.ndarray:
        """Length of each (sorted) sequence: L_b = #{t : batch_sizes[t] > b}."""
        bs = self.batch_sizes.data
        return (bs[None, :] > np.arange(int(bs[0]))[:, None]).sum(axis=1)

    def to(self, *args, **kwargs) -> "PackedSequence":
        return self._replace(data=self.data.to(*args, **kwargs))


def _lengths(lengths) -> np.ndarray:
    lengths = np.asarray(lengths.data if isinstance(lengths, Tensor) else lengths)
    if lengths.ndim != 1:
        raise ValueError(f"lengths must be a 1-D sequence of ints, got shape {lengths.shape}")
    if not np.issubdtype(lengths.dtype, np.integer):
        if not np.all(lengths == np.round(lengths)):
            raise ValueError(f"lengths must be integers, got {lengths}")
    return lengths.astype(np.int64)


def _invert(perm: np.ndarray) -> np.ndarray:
    inv = np.empty_like(perm)
    inv[perm] = np.arange(len(perm))
    return inv


def pack_padded_sequence(input: Tensor, lengths, batch_first: bool = False,  # noqa: A002 - torch's names
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch (T, B, *) (or (B, T, *) with batch_first) whose column b is valid for
    lengths[b] steps. With enforce_sorted=True the lengths must be non-increasing."""
    lengths = _lengths(lengths)
    T, B = (input.shape[1], input.shape[0]) if batch_first else (input.shape[0], input.shape[1])
    if len(lengths) != B:
        raise ValueError(f"Expected `len(lengths)` to be equal to batch_size, but got {len(lengths)} "
                         f"(batch_size={B})")
    if lengths.size and lengths.min() <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an element in 'lengths' "
                           "that is <= 0")
    if lengths.size and lengths.max() > T:
        raise RuntimeError(f"lengths can be at most the padded length {T}, got {lengths.max()}")
    if enforce_sorted:
        if np.any(np.diff(lengths) > 0):
            raise RuntimeError("`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. "
                               "You can pass `enforce_sorted=False` to pack_padded_sequence and/or "
                               "pack_sequence to sidestep this requirement if you do not need ONNX exportability.")
        order, sorted_t, unsorted_t = np.arange(B), None, None
    else:
        order = np.argsort(-lengths, kind="stable")
        sorted_t, unsorted_t = Tensor(order.astype(np.int64)), Tensor(_invert(order).astype(np.int64))
    sorted_lengths = lengths[order]
    t_idx, b_idx = np.nonzero(np.arange(T)[:, None] < sorted_lengths[None, :])  # step-major, as torch packs
    cols = order[b_idx]
    data = input[cols, t_idx] if batch_first else input[t_idx, cols]
    batch_sizes = (np.arange(int(sorted_lengths.max()))[:, None] < sorted_lengths[None, :]).sum(axis=1)
    return PackedSequence(data, Tensor(batch_sizes.astype(np.int64)), sorted_t, unsorted_t)


def _padded_index(sequence: PackedSequence, total_length=None) -> tuple[np.ndarray, np.ndarray, int]:
    """(index (T, B) into data's rows with N = len(data) for padding, lengths (sorted order), T)."""
    lengths = sequence.lengths_sorted()
    T = len(sequence.batch_sizes.data)
    if total_length is not None:
        if total_length < T:
            raise ValueError(f"Expected total_length to be at least the length of the longest sequence in input, "
                             f"but got total_length={total_length} and max sequence length being {T}")
        T = int(total_length)
    valid = np.arange(T)[:, None] < lengths[None, :]
    index = np.full(valid.shape, sequence.data.shape[0], dtype=np.int64)
    index[valid] = np.arange(int(valid.sum()))  # valid's row-major order is the packing order
    return index, lengths, T


def _padded_sorted(sequence: PackedSequence, padding_value: float = 0.0, total_length=None):
    """(padded (T, B, *) in sorted batch order, its lengths): what the RNN layers run on."""
    index, lengths, _ = _padded_index(sequence, total_length)
    data = sequence.data
    pad_row = Tensor(np.full((1,) + tuple(data.shape[1:]), padding_value, dtype=data.dtype))
    return cat([data, pad_row])[index], lengths


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length=None) -> tuple[Tensor, Tensor]:
    """Inverse of pack_padded_sequence: (padded (T, B, *) or (B, T, *), lengths (B,) int64), in the
    batch order the sequences had before packing."""
    padded, lengths = _padded_sorted(sequence, padding_value, total_length)
    if sequence.unsorted_indices is not None:
        unsorted = sequence.unsorted_indices.data
        padded = padded[:, unsorted]
        lengths = lengths[unsorted]
    if batch_first:
        padded = padded.transpose(0, 1)
    return padded, Tensor(lengths.astype(np.int64))


def pack_sequence(sequences, enforce_sorted: bool = True) -> PackedSequence:
    """pad_sequence, then pack_padded_sequence with the sequences' own lengths."""
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def pad_sequence(sequences, batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """Stack sequences of shapes (L_i, *) into (max L, B, *) (or (B, max L, *)), filling with
    padding_value after (padding_side="right") or before ("left") each sequence."""
    if padding_side not in ("right", "left"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    sequences = list(sequences)
    if not sequences:
        raise RuntimeError("received an empty list of sequences")
    trailing = tuple(sequences[0].shape[1:])
    for i, s in enumerate(sequences):
        if tuple(s.shape[1:]) != trailing:
            raise RuntimeError(f"pad_sequence: sequence {i} has trailing shape {tuple(s.shape[1:])}, "
                               f"sequence 0 has {trailing}")
    lengths = np.array([s.shape[0] for s in sequences])
    T, B = int(lengths.max()), len(sequences)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    t = np.arange(T)[:, None]
    offset = t if padding_side == "right" else t - (T - lengths[None, :])
    valid = (offset >= 0) & (offset < lengths[None, :])
    index = np.where(valid, starts[None, :] + offset, lengths.sum())
    pad_row = Tensor(np.full((1,) + trailing, padding_value, dtype=sequences[0].dtype))
    out = cat(list(sequences) + [pad_row])[index]
    return out.transpose(0, 1) if batch_first else out


def unpad_sequence(padded_sequences: Tensor, lengths, batch_first: bool = False) -> list:
    """The list of sequences pad_sequence came from."""
    lengths = _lengths(lengths)
    x = padded_sequences.transpose(0, 1) if batch_first else padded_sequences
    return [x[: int(n), b] for b, n in enumerate(lengths)]


def detach_state(state):
    """Truncated BPTT: the recurrent state (a Tensor or a tuple such as LSTM's (h, c)) cut from the
    graph, so the next chunk's backward stops here instead of running through every earlier chunk."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


__all__ = ["PackedSequence", "detach_state", "pack_padded_sequence", "pack_sequence", "pad_packed_sequence",
           "pad_sequence", "unpad_sequence"]
