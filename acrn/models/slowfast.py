"""``ResNet3dSlowFast`` as in MMAction2: ``slow_path`` and ``fast_path`` with lateral fusion.

Input ``[N, C, T, H, W]``; the slow pathway sees every ``resample_rate``-th frame, the fast
pathway every ``resample_rate // speed_ratio``-th (nearest temporal resampling, as MMAction2).
Returns ``(x_slow, x_fast)`` from the last stage.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig
from .convmodule import init_conv_bn
from .resnet3d import Bottleneck3d, ResNet3dPathway


class ResNet3dSlowFast(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.resample_rate = cfg.resample_rate
        self.speed_ratio = cfg.speed_ratio
        common = dict(
            blocks=cfg.blocks,
            spatial_strides=cfg.spatial_strides,
            in_channels=cfg.in_channels,
            speed_ratio=cfg.speed_ratio,
            channel_ratio=cfg.channel_ratio,
            fusion_kernel=cfg.fusion_kernel,
        )
        self.slow_path = ResNet3dPathway(
            base_channels=cfg.base_channels,
            conv1_kernel=cfg.slow_conv1_kernel,
            inflate=cfg.slow_inflate,
            lateral=True,
            **common,
        )
        self.fast_path = ResNet3dPathway(
            base_channels=cfg.fast_base_channels,
            conv1_kernel=cfg.fast_conv1_kernel,
            inflate=cfg.fast_inflate,
            lateral=False,
            **common,
        )
        self.out_channels = (self.slow_path.out_channels, self.fast_path.out_channels)
        self.init_weights(cfg.zero_init_residual)

    def init_weights(self, zero_init_residual: bool = True) -> None:
        init_conv_bn(self)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck3d):
                    nn.init.zeros_(m.conv3.bn.weight)

    @staticmethod
    def _resample(x: torch.Tensor, rate: int) -> torch.Tensor:
        if rate == 1:
            return x
        # nearest interpolation with scale 1/rate picks frames 0, rate, 2*rate, ...
        return nn.functional.interpolate(x, mode="nearest", scale_factor=(1.0 / rate, 1.0, 1.0))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        slow = self._resample(x, self.resample_rate)
        slow = self.slow_path.maxpool(self.slow_path.conv1(slow))
        fast = self._resample(x, self.resample_rate // self.speed_ratio)
        fast = self.fast_path.maxpool(self.fast_path.conv1(fast))
        slow = torch.cat((slow, self.slow_path.conv1_lateral(fast)), dim=1)
        last = len(self.slow_path.res_layers) - 1
        for i, name in enumerate(self.slow_path.res_layers):
            slow = getattr(self.slow_path, name)(slow)
            fast = getattr(self.fast_path, name)(fast)
            if i != last:
                lateral = getattr(self.slow_path, self.slow_path.lateral_connections[i])
                slow = torch.cat((slow, lateral(fast)), dim=1)
        return slow, fast
