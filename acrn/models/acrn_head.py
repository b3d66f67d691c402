"""``ACRNHead`` (Actor-Centric Relation Network, arXiv:1807.10982) as MMAction2 0.x defines it.

``forward(x, feat, rois)``: the RoI feature ``x`` ``[K, C1, T, S, S]`` is max-pooled to a vector,
tiled over the context map's ``H x W``, concatenated with the context ``feat[rois[:, 0]]``
``[K, C2, T', H, W]`` and passed through ``conv1`` (1x1x1) and ``conv2`` (1x3x3, stride
``(1, stride, stride)``) (+ ``num_convs - 1`` more 1x3x3 convs), each Conv3d + BN3d + ReLU.
Output ``[K, out_channels, T', H', W']``.
"""

from __future__ import annotations

import torch
from torch import nn

from .convmodule import ConvBNAct, init_conv_bn


class ACRNHead(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, num_convs: int = 1):
        super().__init__()
        if num_convs < 1:
            raise ValueError(f"ACRNHead num_convs: expected >= 1, got {num_convs}")
        self.in_channels = in_channels
        self.conv1 = ConvBNAct(in_channels, out_channels, 1)
        self.conv2 = ConvBNAct(
            out_channels, out_channels, (1, 3, 3), (1, stride, stride), (0, 1, 1)
        )
        self.convs = nn.ModuleList(
            ConvBNAct(out_channels, out_channels, (1, 3, 3), 1, (0, 1, 1))
            for _ in range(num_convs - 1)
        )
        init_conv_bn(self)

    def forward(self, x: torch.Tensor, feat: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        x = x.amax(dim=(2, 3, 4), keepdim=True)
        gfeat = feat[rois[:, 0].long()]
        t, h, w = gfeat.shape[2:]
        x = x.expand(-1, -1, t, h, w)
        if x.shape[1] + gfeat.shape[1] != self.in_channels:
            raise ValueError(
                f"ACRNHead: RoI feature ({x.shape[1]} ch) + context ({gfeat.shape[1]} ch) != "
                f"in_channels {self.in_channels}"
            )
        y = self.conv2(self.conv1(torch.cat([x, gfeat], dim=1)))
        for conv in self.convs:
            y = conv(y)
        return y
