"""AVA clip dataset, frame sampling, transforms, collate and loader (MMAction2 0.x semantics).

The names below are imported on first use (PEP 562): ``acrn.data.config`` (``DataConfig``) is
read by the workflow at parse time and must not pull in torch.
"""

import importlib

_SOURCES = {
    "AVADataset": "dataset",
    "DataConfig": "config",
    "FrameError": "decode",
    "ShardedSampler": "loader",
    "build_loader": "loader",
    "collate": "loader",
}

__all__ = sorted(_SOURCES)


def __getattr__(name):
    if name not in _SOURCES:
        raise AttributeError(f"module 'acrn.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"acrn.data.{_SOURCES[name]}"), name)
