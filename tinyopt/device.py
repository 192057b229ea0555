"""Devices: tinyopt computes on the CPU only, but accepts the device boilerplate most torch scripts
start with (`device = to.device("cuda" if to.cuda.is_available() else "cpu")`, `model.to(device)`).

Asking for another device is refused with a clear message, never ignored: code written for a GPU
would otherwise seem to run on one.
"""
from __future__ import annotations


class device:  # noqa: N801 - torch's name
    """A device name: "cpu" (or "cpu:0"). Other types can be named (as torch allows) but not used."""

    def __init__(self, type: str, index: int | None = None):  # noqa: A002 - torch's names
        if isinstance(type, device):
            type, index = type.type, type.index
        if not isinstance(type, str):
            raise TypeError(f"device() takes a string such as 'cpu', got {type!r}")
        name, _, number = type.partition(":")
        self.type = name
        self.index = int(number) if number else index

    def __eq__(self, other):
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        return f"device(type='{self.type}'" + ("" if self.index is None else f", index={self.index}") + ")"


def check_device(where) -> None:
    """Accept the CPU; refuse any other device with the fix."""
    d = device(where) if not isinstance(where, device) else where
    if d.type != "cpu":
        raise RuntimeError(
            f"tinyopt runs on the CPU only; device {str(d)!r} is not available. Use 'cpu' (e.g. "
            "device = to.device('cuda' if to.cuda.is_available() else 'cpu'), which gives 'cpu' here)"
        )
