"""AVA clip dataset, frame sampling, transforms, collate and loader (MMAction2 0.x semantics).

The names below are imported on first use (PEP 562): ``acrn.data.config`` (``DataConfig``) is
read by the workflow at parse time and must not pull in torch.
"""

from acrn.lazy import lazy_getattr

_SOURCES = {
    "AVADataset": "dataset",
    "DataConfig": "config",
    "FrameError": "decode",
    "ShardedSampler": "loader",
    "build_loader": "loader",
    "collate": "loader",
}

__all__ = sorted(_SOURCES)

__getattr__ = lazy_getattr("acrn.data", _SOURCES)
