"""tinyopt's own exception types (each a subclass of the built-in one torch would raise)."""
from __future__ import annotations


class ShapeError(ValueError):
    """An input whose shape a layer or op cannot take; the message names the layer and both shapes."""
