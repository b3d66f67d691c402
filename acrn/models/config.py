"""``ModelConfig``: every knob of the SlowFast-R50 + ACRN detector, with the paper's defaults.

The defaults reproduce MMAction2 0.x ``configs/detection/acrn/
slowfast_acrn_kinetics_pretrained_r50_8x8x1_cosine_10e_ava_rgb.py``:
ResNet3dSlowFast (resample_rate 4, speed_ratio 4, channel_ratio 8; slow: depth 50, lateral,
fusion_kernel 7, conv1 (1,7,7), inflate (0,0,1,1); fast: base_channels 8, conv1 (5,7,7);
spatial_strides (1,2,2,1)), SingleRoIExtractor3D (RoIAlign 8x8, aligned, sampling_ratio 0,
temporal max pooling), ACRNHead (4608 -> 2304), BBoxHeadAVA (2304 -> 81, dropout 0.5).

Channel counts are *derived*, never configured twice: the fast pathway's base width is
``base_channels // channel_ratio``; the ACRN head's input is ``(2 if with_global else 1) * C + C``
and its output defaults to ``C`` where ``C`` is the concatenated width of both pathways' last stage.

``ModelConfig.tiny()`` gives a small model for CPU tests and the demo (one bottleneck per stage,
slow base width 8, fast base width 2): forward+backward of a ``[2, 3, 8, 64, 64]`` clip with a
few RoIs takes a few hundredths of a second on 2 CPU cores. Its clips need ``T % 4 == 0``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from acrn.config import ConfigError

STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
EXPANSION = 4  # Bottleneck3d


@dataclass
class ModelConfig:
    # ---- backbone: ResNet3dSlowFast ----
    depth: int = 50
    stage_blocks: tuple[int, ...] | None = None  # overrides depth when set (4 stages)
    in_channels: int = 3
    base_channels: int = 64  # slow pathway; fast = base_channels // channel_ratio
    resample_rate: int = 4
    speed_ratio: int = 4
    channel_ratio: int = 8
    fusion_kernel: int = 7
    slow_conv1_kernel: tuple[int, int, int] = (1, 7, 7)
    fast_conv1_kernel: tuple[int, int, int] = (5, 7, 7)
    slow_inflate: tuple[int, ...] = (0, 0, 1, 1)
    fast_inflate: tuple[int, ...] = (1, 1, 1, 1)
    spatial_strides: tuple[int, ...] = (1, 2, 2, 1)
    zero_init_residual: bool = True
    # ---- RoI extractor: SingleRoIExtractor3D ----
    roi_output_size: int = 8
    roi_sampling_ratio: int = 0
    roi_aligned: bool = True
    with_temporal_pool: bool = True
    temporal_pool_mode: str = "max"  # 0.x config; the 1.x ava21 config falls back to "avg"
    with_global: bool = False
    # ---- shared head: ACRNHead ----
    acrn_out_channels: int | None = None  # None: the backbone's output width (2304 for R50)
    acrn_stride: int = 1
    acrn_num_convs: int = 1
    # ---- bbox head: BBoxHeadAVA ----
    num_classes: int = 81
    dropout_ratio: float = 0.5
    dropout_before_pool: bool = True
    head_temporal_pool: str = "avg"
    head_spatial_pool: str = "max"
    topk: tuple[int, ...] = (3, 5)
    focal_gamma: float = 0.0
    focal_alpha: float = 1.0

    def __post_init__(self) -> None:
        """Validate; errors are ``acrn.config.ConfigError`` (a ``ValueError``) naming the field."""
        blocks = self.blocks
        if len(blocks) != 4 or any(b < 1 for b in blocks):
            raise ConfigError(f"ModelConfig.stage_blocks: need 4 positive ints, got {blocks!r}")
        for name in ("slow_inflate", "fast_inflate", "spatial_strides"):
            if len(getattr(self, name)) != 4:
                raise ConfigError(f"ModelConfig.{name}: need 4 values, got {getattr(self, name)!r}")
        if self.base_channels % self.channel_ratio or self.base_channels < self.channel_ratio:
            raise ConfigError(
                f"ModelConfig.base_channels={self.base_channels} must be a positive multiple of "
                f"channel_ratio={self.channel_ratio}"
            )
        if self.resample_rate % self.speed_ratio:
            raise ConfigError(
                f"ModelConfig.resample_rate={self.resample_rate} must be a multiple of "
                f"speed_ratio={self.speed_ratio}"
            )
        for name, allowed in (
            ("temporal_pool_mode", ("max", "avg")),
            ("head_temporal_pool", ("max", "avg")),
            ("head_spatial_pool", ("max", "avg")),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"ModelConfig.{name}: expected one of {allowed}, got {getattr(self, name)!r}"
                )
        if any(k >= self.num_classes for k in self.topk):
            raise ConfigError(f"ModelConfig.topk={self.topk!r}: each k must be < num_classes")
        if not 0.0 <= self.dropout_ratio < 1.0:
            raise ConfigError(
                f"ModelConfig.dropout_ratio: expected [0, 1), got {self.dropout_ratio!r}"
            )

    # ---- derived quantities ----
    @property
    def blocks(self) -> tuple[int, ...]:
        if self.stage_blocks is not None:
            return tuple(self.stage_blocks)
        if self.depth not in STAGE_BLOCKS:
            raise ConfigError(
                f"ModelConfig.depth: expected one of {sorted(STAGE_BLOCKS)}, got {self.depth!r}"
            )
        return STAGE_BLOCKS[self.depth]

    @property
    def fast_base_channels(self) -> int:
        return self.base_channels // self.channel_ratio

    @property
    def slow_out_channels(self) -> int:
        return self.base_channels * 2 ** (len(self.blocks) - 1) * EXPANSION

    @property
    def fast_out_channels(self) -> int:
        return self.fast_base_channels * 2 ** (len(self.blocks) - 1) * EXPANSION

    @property
    def backbone_out_channels(self) -> int:
        return self.slow_out_channels + self.fast_out_channels

    @property
    def featmap_stride(self) -> int:
        stride = 4  # conv1 and max-pool, spatial stride 2 each
        for s in self.spatial_strides:
            stride *= s
        return stride

    @property
    def acrn_in_channels(self) -> int:
        c = self.backbone_out_channels
        return (2 if self.with_global else 1) * c + c

    @property
    def head_in_channels(self) -> int:
        return self.acrn_out_channels or self.backbone_out_channels

    @property
    def min_frames(self) -> int:
        return self.resample_rate

    def replace(self, **changes) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def tiny(cls, **changes) -> ModelConfig:
        """A small model with the same structure for CPU tests and the demo."""
        base = dict(stage_blocks=(1, 1, 1, 1), base_channels=8, channel_ratio=4)
        base.update(changes)
        return cls(**base)
