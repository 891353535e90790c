"""Source dataset layouts behind a registry: adding a dataset is one module that registers itself."""

from __future__ import annotations

from .base import LayoutError, Protocol, ScanResult, SourceLayout, SourceRecord

_REGISTRY: dict[str, type[SourceLayout]] = {}


def register_source(cls: type[SourceLayout]) -> type[SourceLayout]:
    """Class decorator: make a layout available under `cls.name`."""
    _REGISTRY[cls.name] = cls
    return cls


def get_source(name: str) -> SourceLayout:
    """The layout registered as `name` (e.g. "prcc", "ltcc"); also accepts "occluded-prcc"."""
    key = name.lower().removeprefix("occluded-").removeprefix("occluded_")
    try:
        return _REGISTRY[key]()
    except KeyError:
        raise KeyError(f"unknown source dataset {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def source_names() -> list[str]:
    return sorted(_REGISTRY)


# Importing the modules registers them.
from . import deepchange, last, ltcc, manifest, prcc, vcclothes  # noqa: E402,F401

__all__ = [
    "LayoutError",
    "Protocol",
    "ScanResult",
    "SourceLayout",
    "SourceRecord",
    "get_source",
    "register_source",
    "source_names",
]
