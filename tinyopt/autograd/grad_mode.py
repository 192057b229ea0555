"""Grad mode: whether ops record the graph (torch's `no_grad`, `enable_grad`, `set_grad_enabled`).

The mode is per thread, like torch's. Each of the three is a context manager and a decorator.
`inference_mode` is accepted as torch's name for `no_grad` (tinyopt has no separate inference mode).
"""
from __future__ import annotations

import contextlib
import threading

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "grad_enabled", True)


def _set_grad_enabled(mode: bool) -> None:
    _state.grad_enabled = bool(mode)


class set_grad_enabled(contextlib.ContextDecorator):  # noqa: N801 - torch's name
    """Turn graph recording on or off: as a call (`set_grad_enabled(False)`), which takes effect
    at once as in torch, or as a context manager / decorator, which restores the previous mode."""

    def __init__(self, mode: bool):
        if not isinstance(mode, bool):
            raise TypeError(f"set_grad_enabled(mode) takes a bool, got {type(mode).__name__}")
        self.prev = is_grad_enabled()
        self.mode = mode
        _set_grad_enabled(mode)

    def __enter__(self):
        _set_grad_enabled(self.mode)
        return self

    def __exit__(self, *exc):
        _set_grad_enabled(self.prev)
        return False


class _GradMode(contextlib.ContextDecorator):
    mode = True

    def __enter__(self):
        self.prev = is_grad_enabled()
        _set_grad_enabled(self.mode)
        return self

    def __exit__(self, *exc):
        _set_grad_enabled(self.prev)
        return False


class no_grad(_GradMode):  # noqa: N801 - torch's name
    """Context manager / decorator: ops inside record no graph (like `torch.no_grad`)."""

    mode = False


class enable_grad(_GradMode):  # noqa: N801 - torch's name
    mode = True


class inference_mode(no_grad):  # noqa: N801 - torch's name
    """torch's `inference_mode()`: here the same as `no_grad()`. `inference_mode(False)` records."""

    def __init__(self, mode: bool = True):
        self.mode = not mode
