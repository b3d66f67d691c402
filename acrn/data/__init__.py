"""AVA clip dataset, frame sampling, transforms, collate and loader (MMAction2 0.x semantics)."""

from acrn.data.config import DataConfig
from acrn.data.dataset import AVADataset
from acrn.data.decode import FrameError
from acrn.data.loader import ShardedSampler, build_loader, collate

__all__ = ["AVADataset", "DataConfig", "FrameError", "ShardedSampler", "build_loader", "collate"]
