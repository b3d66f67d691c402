"""``DataConfig``: every path and parameter of the AVA clip dataset and its loader.

Defaults are those of MMAction2 0.x ``AVADataset``, ``SampleAVAFrames`` and the train/val
pipelines of ``configs/detection/acrn/slowfast_acrn_kinetics_pretrained_r50_8x8x1_cosine_10e_ava_rgb.py``.
Everything can be overridden (the demo uses small frames and short clips).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from acrn.config import ConfigError


@dataclasses.dataclass
class DataConfig:
    """Paths and parameters of the AVA clip dataset.

    Paths
        frame_root: folder holding one folder of frames per video (``<frame_root>/<video id>/``).
        frame_layout: what each video folder holds: ``"zip"`` (default, what ``acrn.frames``
            writes and the workflow passes from ``frames.layout``): ``frames.zip``, a stored zip
            whose members are the frame files; ``"dir"``: the frame files themselves
            (MMAction2's rawframes). Explicit, not detected: a folder of the other layout fails
            with a ``FrameError`` naming it. The same bytes either way, so the same clips.
        label_file: the action label map (``.pbtxt``); not used to filter annotations (0.x does
            not either), kept here for evaluation: the class list of the MMAction2-mode mAP
            (``mAP@0.5IOU``; the 60-class list in the workflow).
        label_file_80: AVA's 80-class list (``ava_action_list_v2.x.pbtxt``), optional: the
            MMAction2-mode mAP is also computed over it (``80cls_mAP@0.5IOU``), from the same
            detections (README "Which class list").
        train_annotations, val_annotations: AVA annotation CSVs (8 columns, with person id).
        train_exclusions, val_exclusions: excluded-timestamps CSVs, optional. Only the training
            set drops excluded keyframes (0.x builds the val set in test mode, which keeps them;
            the evaluation ignores them).
        train_proposals, val_proposals: dense person proposals pickles, optional
            (``"video,%04d" -> float[n, 4 | 5]``, normalized x1, y1, x2, y2[, score]).

    Frame sampling (``SampleAVAFrames``)
        filename_tmpl, start_index: frame file ``filename_tmpl.format(index + start_index)``.
        clip_len, frame_interval: 32 frames, every 2nd frame.
        fps, timestamp_start, timestamp_end: the frames of a video cover
            ``[timestamp_start, timestamp_end)`` seconds at ``fps``; keyframe ``t`` sits at
            index ``fps * (t - timestamp_start) + 1``.

    Boxes and labels
        person_det_score_thr: proposals scoring at least this are used (or the best one).
        num_classes: label slots; AVA action id ``k`` sets slot ``k`` (slot 0 unused).
        num_max_proposals: keep at most this many proposals per keyframe.
        val_temporal_jitter: validation clips get the training-time random frame offsets, as
            the ACRN val pipeline of May-June 2021 (before MMAction2 #1432 added
            ``test_mode=True`` to its ``SampleAVAFrames``), the way the released 27.1/27.8
            were computed; seeded per keyframe, so re-runs agree. Default off, as today's 0.x.

    Transforms
        train_scale_range: ``RandomRescale`` short side, closed interval.
        crop_size: ``RandomCrop`` square size.
        flip_ratio: ``Flip`` probability (horizontal).
        test_short_side: ``Resize((-1, test_short_side))`` at validation/test time.
        mean, std: ``Normalize`` per RGB channel, on 0..255 pixel values.

    Loader
        batch_size (0.x ``videos_per_gpu``), val_batch_size, workers (``workers_per_gpu``, per
            process): an integer, or ``"auto"`` (default): the CPUs the process was given
            minus one for the main process (``acrn.data.workers``). The worker count does
            not change the result (each sample's augmentation is seeded).
        decoder: JPEG decoder, ``"opencv"`` (default: ``cv2.imdecode`` + ``cvtColor``, the
            calls of ``mmcv.imfrombytes`` that 0.x decodes with) or ``"pil"`` (Pillow's
            libjpeg-turbo: the same pixels, no OpenCV needed). (``"torchvision"``, the former
            default, is gone: torchvision 0.29 deprecates its JPEG decoding; README
            "Decoder".) ``"pil-reduced"``
            (opt-in, NOT bit-exact) decodes each clip at 1/2, 1/4 or 1/8 size with libjpeg's
            DCT scaling (PIL ``draft``): the largest reduction that divides both frame sides
            and whose decoded frame still covers the resized size (never upsampling; 1/1, the
            exact pixels, when none does), then resizes from there to the same target size.
            Geometry is unchanged: ``img_shape``, resize sizes, crop offsets, flips and
            boxes/proposals are computed from the stored frame size exactly as with the other
            decoders; only pixel values differ, the reduced decode having averaged k x k
            pixels where 0.x's bilinear resize samples 2 x 2 (mean absolute difference
            0.5-1.5 levels of 0..255 on smooth content, 1.3-2.7 on the noisy 1280x720
            benchmark pattern; ``tests/test_data_reduced.py``). Trade-off: 720p AVA frames
            to a short side of 256..320 decode at 1/2, which saves only ~10% of the CPU time
            of a clip's own work and ~6% in the loader (``scripts/bench_loader.py``: the
            entropy decoding of the whole high-quality JPEG remains and dominates), at the
            price of inputs that are no longer bit-equal to 0.x: keep the default to
            reproduce or evaluate 0.x checkpoints bit for bit.
            ``"nvjpeg"`` (opt-in, for GPU training): the workers only read and check the files
            and draw the geometry; the training process decodes each batch on its device
            (nvJPEG, one batched ``decode_jpeg`` call) and resizes, crops, flips and normalizes
            there with the same integer arithmetic (``acrn.data.device_decode``). Bit-exact on
            a CPU device; on a GPU only nvJPEG's decoded pixels differ from libjpeg-turbo's, by
            a few levels on average, more at sharp colour edges (``scripts/bench_loader.py
            --device cuda`` measures both the speed and the difference; figures in
            ``acrn.data.device_decode``).
        resize_backend: ``"opencv"`` (OpenCV's own resize, fastest; needs
            ``opencv-python-headless``), ``"torch"`` (the same arithmetic in torch, crop window
            only) or ``"auto"`` (OpenCV when installed). Same pixels either way.
    """

    frame_root: str = "data/ava/rawframes"
    frame_layout: Literal["zip", "dir"] = "zip"
    label_file: str | None = None
    label_file_80: str | None = None
    train_annotations: str | None = None
    val_annotations: str | None = None
    train_exclusions: str | None = None
    val_exclusions: str | None = None
    train_proposals: str | None = None
    val_proposals: str | None = None

    filename_tmpl: str = "img_{:05}.jpg"
    start_index: int = 0
    clip_len: int = 32
    frame_interval: int = 2
    fps: int = 30
    timestamp_start: int = 900
    timestamp_end: int = 1800

    person_det_score_thr: float = 0.9
    num_classes: int = 81
    num_max_proposals: int = 1000
    val_temporal_jitter: bool = False

    train_scale_range: tuple[int, int] = (256, 320)
    crop_size: int = 256
    flip_ratio: float = 0.5
    test_short_side: int = 256
    mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    std: tuple[float, float, float] = (58.395, 57.12, 57.375)

    batch_size: int = 6
    val_batch_size: int = 1
    workers: int | Literal["auto"] = "auto"
    decoder: Literal["opencv", "pil", "pil-reduced", "nvjpeg"] = "opencv"
    resize_backend: Literal["auto", "torch", "opencv"] = "auto"

    def __post_init__(self) -> None:
        def bad(key: str, why: str) -> ConfigError:
            return ConfigError(f"data.{key}: {why}, got {getattr(self, key)!r}")

        for key in (
            "clip_len",
            "frame_interval",
            "fps",
            "crop_size",
            "test_short_side",
            "num_classes",
            "num_max_proposals",
            "batch_size",
            "val_batch_size",
        ):
            if getattr(self, key) < 1:
                raise bad(key, "must be at least 1")
        if isinstance(self.workers, int) and self.workers < 0:
            raise bad("workers", "must be >= 0")
        if self.timestamp_end <= self.timestamp_start:
            raise bad("timestamp_end", f"must be above timestamp_start {self.timestamp_start}")
        if not 0.0 <= self.person_det_score_thr <= 1.0:
            raise bad("person_det_score_thr", "must lie in [0, 1]")
        if not 0.0 <= self.flip_ratio <= 1.0:
            raise bad("flip_ratio", "must lie in [0, 1]")
        lo, hi = self.train_scale_range
        if not 0 < lo < hi:
            raise bad("train_scale_range", "must be (low, high) with 0 < low < high")
        if self.crop_size > lo:
            raise bad("crop_size", f"must not exceed the smallest train short side {lo}")
        if any(s <= 0 for s in self.std):
            raise bad("std", "must be positive")
        try:
            self.filename_tmpl.format(1)
        except (IndexError, KeyError, ValueError) as e:
            raise bad("filename_tmpl", f"must format one integer ({e})") from None
