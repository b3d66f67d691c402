"""One SlowFast pathway: a 3D ResNet with Bottleneck3d blocks and optional lateral connections.

Module and parameter names follow MMAction2's ``ResNet3dPathway`` (``conv1.conv``, ``conv1.bn``,
``layerN.i.conv{1,2,3}``, ``layerN.0.downsample``, ``conv1_lateral``, ``layerN_lateral``) so that
its checkpoints load with ``strict=True``.
"""

from __future__ import annotations

from torch import nn

from .config import EXPANSION
from .convmodule import ConvBNAct


class Bottleneck3d(nn.Module):
    """ResNet bottleneck, 'pytorch' style (stride on the 3x3 conv), inflate style '3x1x1'."""

    def __init__(self, inplanes, planes, spatial_stride=1, downsample=None, inflate=False):
        super().__init__()
        k1, p1 = ((3, 1, 1), (1, 0, 0)) if inflate else ((1, 1, 1), (0, 0, 0))
        self.conv1 = ConvBNAct(inplanes, planes, k1, 1, p1)
        self.conv2 = ConvBNAct(
            planes, planes, (1, 3, 3), (1, spatial_stride, spatial_stride), (0, 1, 1)
        )
        self.conv3 = ConvBNAct(planes, planes * EXPANSION, 1, act=False)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv3(self.conv2(self.conv1(x)))
        return nn.functional.relu(out + identity, inplace=True)


class ResNet3dPathway(nn.Module):
    """Stem (conv1 + max-pool) and four residual stages; laterals read the fast pathway."""

    def __init__(
        self,
        blocks,
        base_channels,
        conv1_kernel,
        inflate,
        spatial_strides,
        in_channels=3,
        lateral=False,
        speed_ratio=4,
        channel_ratio=8,
        fusion_kernel=7,
    ):
        super().__init__()
        self.lateral = lateral
        self.num_stages = len(blocks)
        self.conv1 = ConvBNAct(
            in_channels,
            base_channels,
            tuple(conv1_kernel),
            (1, 2, 2),
            tuple((k - 1) // 2 for k in conv1_kernel),
        )
        self.maxpool = nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

        def lateral_conv(cin):
            return ConvBNAct(
                cin // channel_ratio,
                cin * 2 // channel_ratio,
                (fusion_kernel, 1, 1),
                (speed_ratio, 1, 1),
                ((fusion_kernel - 1) // 2, 0, 0),
                norm=False,
                act=False,
            )

        if lateral:
            self.conv1_lateral = lateral_conv(base_channels)
        self.res_layers: list[str] = []
        self.lateral_connections: list[str] = []
        inplanes = base_channels
        for i, num_blocks in enumerate(blocks):
            planes = base_channels * 2**i
            extra = inplanes * 2 // channel_ratio if lateral else 0
            name = f"layer{i + 1}"
            self.add_module(
                name,
                self._make_layer(
                    inplanes + extra, planes, num_blocks, spatial_strides[i], inflate[i]
                ),
            )
            self.res_layers.append(name)
            inplanes = planes * EXPANSION
            if lateral and i != self.num_stages - 1:
                self.add_module(f"{name}_lateral", lateral_conv(inplanes))
                self.lateral_connections.append(f"{name}_lateral")
        self.out_channels = inplanes

    @staticmethod
    def _make_layer(inplanes, planes, num_blocks, spatial_stride, inflate):
        downsample = None
        if spatial_stride != 1 or inplanes != planes * EXPANSION:
            downsample = ConvBNAct(
                inplanes, planes * EXPANSION, 1, (1, spatial_stride, spatial_stride), act=False
            )
        layers = [Bottleneck3d(inplanes, planes, spatial_stride, downsample, bool(inflate))]
        layers += [
            Bottleneck3d(planes * EXPANSION, planes, 1, None, bool(inflate))
            for _ in range(1, num_blocks)
        ]
        return nn.Sequential(*layers)
