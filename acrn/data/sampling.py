"""Frame indices of the clip around an AVA keyframe, as MMAction2 0.x ``SampleAVAFrames``.

The keyframe at second ``t`` of a video whose frames cover ``[timestamp_start, timestamp_end)``
at ``fps`` sits at the 0-based index ``center = fps * (t - timestamp_start) + 1`` (0.x adds the
1; PySlowFast's index differs by one frame: we follow 0.x). The clip takes
``clip_len // 2`` steps of ``frame_interval`` before the center and ``(clip_len + 1) // 2``
steps from it: ``range(center - (clip_len // 2) * frame_interval,
center + ((clip_len + 1) // 2) * frame_interval, frame_interval)``. In training every index
gets a random offset in ``[(-frame_interval) // 2, (frame_interval + 1) // 2)``
(``{-1, 0}`` for an interval of 2), none at test time. Indices are clipped to the shot
``[0, (timestamp_end - timestamp_start) * fps - 1]``, then ``start_index`` is added: with the
0.x AVA default ``start_index = 0`` and ``img_{:05}.jpg``, keyframe 902 of the standard
window (900 s) reads ``img_00061.jpg``, the frame at 902.0 s when frame 1 shows 900.0 s.
"""

from __future__ import annotations

import numpy as np
import torch


def keyframe_center(timestamp: int, fps: int, timestamp_start: int) -> int:
    """0-based frame index of the keyframe at second ``timestamp`` (0.x: with its +1)."""
    return fps * (timestamp - timestamp_start) + 1


def draw_skip_offsets(
    clip_len: int, frame_interval: int, generator: torch.Generator | None = None
) -> np.ndarray:
    """Training-time random per-frame offsets, uniform over ``[(-fi) // 2, (fi + 1) // 2)``.

    Drawn from torch's RNG (seeded per DataLoader worker and per epoch), not numpy's global
    RNG, so that workers never repeat each other's augmentations.
    """
    low, high = (-frame_interval) // 2, (frame_interval + 1) // 2
    return torch.randint(low, high, (clip_len,), generator=generator).numpy().astype(np.int64)


def clip_frame_indices(
    timestamp: int,
    *,
    clip_len: int,
    frame_interval: int,
    fps: int,
    timestamp_start: int,
    timestamp_end: int,
    start_index: int = 0,
    skip_offsets: np.ndarray | None = None,
) -> np.ndarray:
    """Frame-file indices (int64[clip_len]) of the clip around keyframe ``timestamp``.

    ``skip_offsets`` (int[clip_len]) is added in training (see ``draw_skip_offsets``);
    pass None at test time.
    """
    center = keyframe_center(timestamp, fps, timestamp_start)
    start = center - (clip_len // 2) * frame_interval
    end = center + ((clip_len + 1) // 2) * frame_interval
    inds = np.arange(start, end, frame_interval, dtype=np.int64)
    if skip_offsets is not None:
        skip_offsets = np.asarray(skip_offsets, dtype=np.int64)
        if skip_offsets.shape != inds.shape:
            raise ValueError(f"skip_offsets: expected shape {inds.shape}, got {skip_offsets.shape}")
        inds = inds + skip_offsets
    shot_end = (timestamp_end - timestamp_start) * fps
    return np.clip(inds, 0, shot_end - 1) + start_index
