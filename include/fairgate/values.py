"""A value from a frame as JSON and YAML hold it: :func:`plain`."""

from __future__ import annotations

from typing import Any


def plain(value: Any) -> Any:
    """A time as ISO 8601, a numpy scalar as its Python value, anything else as it is."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value
