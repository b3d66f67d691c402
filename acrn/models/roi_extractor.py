"""``SingleRoIExtractor3D`` of MMAction2 0.x, with ``torchvision.ops.roi_align`` as the RoI layer.

Forward ``(feats, rois) -> (roi_feats, context)``:

1. the pathway outputs are brought to the largest temporal length (nearest interpolation);
2. with ``with_temporal_pool`` each is pooled over time (``max`` in the ACRN config, or ``avg``)
   and the pathways are concatenated along channels -> ``context`` ``[N, C, T', H, W]``;
3. per remaining time step, RoIAlign (output ``output_size``, spatial scale ``1/featmap_stride``,
   ``sampling_ratio`` 0 = adaptive, ``aligned=True``: pixel centres shifted by -0.5, avg pooling
   of the bilinear samples in each bin); with ``with_global`` the frame's adaptive-avg-pooled
   map is appended along channels -> ``roi_feats`` ``[K, C', T', S, S]``.

``torchvision.ops.roi_align`` and mmcv's ``RoIAlign`` (``pool_mode='avg'``) compute the same
function; ``tests/test_model_roi.py`` checks it against a direct bilinear implementation of
mmcv's definition. ``context`` is what ``ACRNHead`` receives as ``feat``.

Step 1+2 shortcut: when pooling over time and the longest length is a multiple of a pathway's
length, nearest up-sampling only repeats every frame equally often, so pooling the pathway
directly gives the identical result without materialising the repeated tensor.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import roi_align


class SingleRoIExtractor3D(nn.Module):
    def __init__(
        self,
        featmap_stride: int = 16,
        output_size: int = 8,
        sampling_ratio: int = 0,
        aligned: bool = True,
        with_temporal_pool: bool = True,
        temporal_pool_mode: str = "max",
        with_global: bool = False,
    ):
        super().__init__()
        if temporal_pool_mode not in ("max", "avg"):
            raise ValueError(
                f"temporal_pool_mode: expected 'max' or 'avg', got {temporal_pool_mode!r}"
            )
        self.spatial_scale = 1.0 / featmap_stride
        self.output_size = output_size
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned
        self.with_temporal_pool = with_temporal_pool
        self.temporal_pool_mode = temporal_pool_mode
        self.with_global = with_global
        self.global_pool = nn.AdaptiveAvgPool2d(output_size)

    def _pool_time(self, x: torch.Tensor) -> torch.Tensor:
        if self.temporal_pool_mode == "avg":
            return x.mean(2, keepdim=True)
        return x.amax(2, keepdim=True)

    def forward(self, feats, rois: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(feats, torch.Tensor):
            feats = (feats,)
        feats = list(feats)
        max_t = max(x.shape[2] for x in feats)
        out = []
        for x in feats:
            if x.shape[3:] != feats[0].shape[3:] or (
                x.shape[2] != max_t and not (self.with_temporal_pool and max_t % x.shape[2] == 0)
            ):
                x = nn.functional.interpolate(x, (max_t, *feats[0].shape[3:]))
            out.append(self._pool_time(x) if self.with_temporal_pool else x)
        context = torch.cat(out, dim=1).contiguous()

        rois = rois.to(context.device)
        roi_feats = []
        for t in range(context.shape[2]):
            frame = context[:, :, t].contiguous()
            # box coordinates stay in (at least) fp32: with bf16/fp16 features RoIAlign runs in
            # fp32, as torchvision's autocast rule for roi_align does
            dtype = torch.promote_types(frame.dtype, rois.dtype)
            r = roi_align(
                frame.to(dtype),
                rois.to(dtype),
                self.output_size,
                spatial_scale=self.spatial_scale,
                sampling_ratio=self.sampling_ratio,
                aligned=self.aligned,
            ).to(frame.dtype)
            if self.with_global:
                g = self.global_pool(frame)[rois[:, 0].long()]
                r = torch.cat([r, g], dim=1)
            roi_feats.append(r)
        return torch.stack(roi_feats, dim=2), context
