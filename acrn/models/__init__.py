"""SlowFast-R50 + ACRN detector, checkpoint-compatible with MMAction2 (see ``detector``)."""

from .config import ModelConfig
from .detector import ACRNDetector, build_detector

__all__ = ["ACRNDetector", "ModelConfig", "build_detector"]
