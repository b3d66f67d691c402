"""Package names imported on first use (PEP 562), so that light modules of a package (its
config dataclasses, read by the workflow at parse time) do not pull in torch."""

from __future__ import annotations

import importlib


def lazy_getattr(package: str, sources: dict[str, str]):
    """A module ``__getattr__`` giving ``name`` from ``package.<sources[name]>``."""

    def __getattr__(name: str):
        if name not in sources:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{sources[name]}"), name)

    return __getattr__
