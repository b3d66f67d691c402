"""Conv + optional BN + optional ReLU with MMCV ``ConvModule``'s parameter names (``conv``, ``bn``)."""

from __future__ import annotations

import torch
from torch import nn


class ConvBNAct(nn.Module):
    """``conv`` (Conv3d, no bias) then ``bn`` (BatchNorm3d, eps 1e-5, momentum 0.1) then ReLU."""

    def __init__(
        self, cin, cout, kernel_size, stride=1, padding=0, dilation=1, norm=True, act=True
    ):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, kernel_size, stride, padding, dilation, bias=False)
        self.bn = nn.BatchNorm3d(cout) if norm else None
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.act:
            x = nn.functional.relu(x, inplace=True)
        return x


def init_conv_bn(module: nn.Module) -> None:
    """MMCV's ``kaiming_init`` (fan_out, relu, normal) for Conv3d, ``constant_init(bn, 1)``."""
    for m in module.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
