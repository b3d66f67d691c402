"""``AVADataset``: one sample per annotated AVA keyframe, as MMAction2 0.x ``AVADataset``.

Facts of 0.x kept here (``mmaction/datasets/ava_dataset.py``, ``pipelines/loading.py``):
- keyframes in order of first appearance in the annotation CSV;
- the rows of one keyframe with the *same box* (exact float equality, in order of first
  appearance) form one ground-truth person: a multi-hot float32 label over ``num_classes``
  slots, slot = AVA action id (slot 0 unused); its entity id is that of the first row;
- training drops keyframes listed in the exclusions file; validation (0.x test mode) keeps
  them;
- proposals: a keyframe absent from the proposals file gets the whole-frame box
  ``[0, 0, 1, 1]`` (score 1); with scores, the proposals scoring at least
  ``min(person_det_score_thr, best score)`` are kept (so at least the best one), in file
  order, then at most ``num_max_proposals``;
- boxes are normalized in the files and scaled by the decoded frame size (float32), then
  follow the clip's resize, crop and flip (see ``acrn.data.transforms``).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch
from torch.utils.data import Dataset

from acrn.data.config import DataConfig
from acrn.data.decode import load_frames, load_frames_reduced
from acrn.data.device_decode import read_encoded_clip
from acrn.data.sampling import clip_frame_indices, draw_skip_offsets
from acrn.data.transforms import (
    Geometry,
    normalize,
    resize_crop_flip,
    train_geometry,
    transform_boxes,
    val_geometry,
)


@dataclasses.dataclass
class Keyframe:
    """The annotations of one keyframe: ``boxes`` float64 [m, 4] normalized, ``labels``
    float32 [m, num_classes] multi-hot, ``entity_ids`` int64 [m]."""

    video: str
    timestamp: int
    img_key: str
    boxes: np.ndarray
    labels: np.ndarray
    entity_ids: np.ndarray


def group_keyframes(ann, num_classes: int, source: str = "annotations") -> list[Keyframe]:
    """Annotation rows (DataFrame with video, second, x1, y1, x2, y2, action, person) ->
    one ``Keyframe`` per (video, second), boxes merged as 0.x ``parse_img_record``."""
    actions = ann["action"].to_numpy().astype(np.int64)
    bad = (actions < 0) | (actions >= num_classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{source}: row {i + 1} (keyframe {ann['video'].iloc[i]},{int(ann['second'].iloc[i]):04d}): "
            f"action id {actions[i]} does not fit num_classes={num_classes}"
        )
    if len(ann) == 0:
        return []
    cols = ["x1", "y1", "x2", "y2"]
    # codes in order of first appearance, as 0.x's dict of keyframes and its box matching
    kf_code = ann.groupby(["video", "second"], sort=False).ngroup().to_numpy()
    keyed = ann[cols].assign(_kf=kf_code)
    person = keyed.groupby(["_kf", *cols], sort=False).ngroup().to_numpy()
    n_person = int(person.max()) + 1
    labels = np.zeros((n_person, num_classes), dtype=np.float32)
    labels[person, actions] = 1.0
    _, first = np.unique(person, return_index=True)  # first row of each person (ascending)
    person_kf = kf_code[first]
    order = np.argsort(person_kf, kind="stable")  # persons grouped by keyframe, in order
    starts = np.searchsorted(person_kf[order], np.arange(int(kf_code.max()) + 2))
    rows = first[order]  # first row of each person, persons grouped by keyframe
    boxes = ann[cols].to_numpy(dtype=np.float64)[rows]
    labels = labels[order]
    entity = ann["person"].to_numpy().astype(np.int64)[rows]
    videos = ann["video"].astype(str).to_numpy()[rows[starts[:-1]]]
    seconds = ann["second"].to_numpy().astype(np.int64)[rows[starts[:-1]]]
    out = []
    for k, (a, b) in enumerate(zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True)):
        video, second = videos[k], int(seconds[k])
        out.append(
            Keyframe(
                video=video,
                timestamp=second,
                img_key=f"{video},{second:04d}",
                boxes=boxes[a:b],
                labels=labels[a:b],
                entity_ids=entity[a:b],
            )
        )
    return out


def select_proposals(
    proposals: dict | None, img_key: str, thr: float, max_num: int
) -> tuple[np.ndarray, np.ndarray]:
    """Normalized proposals float64 [n, 4] and scores [n] of one keyframe, as 0.x."""
    if proposals is None:
        return np.zeros((0, 4)), np.zeros((0,))
    props = proposals.get(img_key)
    if props is None or len(props) == 0:  # 0.x: whole-frame box (it crashes on an empty array)
        return np.array([[0.0, 0.0, 1.0, 1.0]]), np.array([1.0])
    props = np.asarray(props, dtype=np.float64)
    if props.ndim != 2 or props.shape[1] not in (4, 5):
        raise ValueError(f"proposals of {img_key}: expected shape [n, 4|5], got {props.shape}")
    if props.shape[1] == 5:
        keep = props[:, 4] >= min(thr, props[:, 4].max())
        props = props[keep][:max_num]
        return props[:, :4], props[:, 4]
    props = props[:max_num]
    return props, np.ones(len(props))


class AVADataset(Dataset):
    """AVA keyframe clips for training (``split="train"``) or validation/test (``"val"``).

    ``dataset[i]`` is a dict:
        imgs: float32 [3, T, H, W], normalized RGB clip (T = clip_len); bit-equal to 0.x
            except with the opt-in ``decoder="pil-reduced"`` (see ``DataConfig``). With
            ``decoder="nvjpeg"`` the sample holds ``encoded`` instead (an
            ``acrn.data.device_decode.EncodedClip``: the files and the drawn geometry), and the
            training process makes ``imgs`` on its device (``device_decode.batch_images``).
        proposals: float32 [n, 4] person proposals x1, y1, x2, y2 in pixels of ``imgs``
            (n = 0 when no proposals file is configured).
        scores: float32 [n] their detection scores (1 for the whole-frame fallback and for
            4-column proposals).
        gt_bboxes: float32 [m, 4] ground-truth persons, pixels of ``imgs``.
        gt_labels: float32 [m, num_classes] multi-hot action labels.
        entity_ids: int64 [m] person ids of the annotation file.
        img_key: ``"video,%04d"`` keyframe key.
        img_shape: (h, w) of ``imgs``; dividing boxes by (w, h, w, h) gives normalized
            coordinates again (0.x inference does that).
        frame_inds: int64 [T] frame-file indices read.
        flip: whether the clip was flipped.
    Randomness (train only) comes from torch's RNG, which DataLoader seeds per worker.
    """

    def __init__(self, cfg: DataConfig, split: str | None = None, *, mode: str | None = None):
        split = split or mode or "train"
        if split not in ("train", "val"):
            raise ValueError(f"split: expected 'train' or 'val', got {split!r}")
        from acrn import formats

        self.cfg = cfg
        self.split = split
        self.training = split == "train"
        ann_file = cfg.train_annotations if self.training else cfg.val_annotations
        if not ann_file:
            raise ValueError(f"data.{split}_annotations: no annotation file configured")
        ann = formats.read_annotations(ann_file)
        keyframes = group_keyframes(ann, cfg.num_classes, source=str(ann_file))
        if self.training and cfg.train_exclusions:
            excluded = formats.read_exclusions(cfg.train_exclusions)
            keyframes = [k for k in keyframes if k.img_key not in excluded]
        self.keyframes = keyframes
        prop_file = cfg.train_proposals if self.training else cfg.val_proposals
        self.proposals = formats.read_proposals(prop_file) if prop_file else None

    def __len__(self) -> int:
        return len(self.keyframes)

    def __getitem__(self, idx: int) -> dict:
        return self.prepare(idx)

    def prepare(
        self, idx: int, skip_offsets: np.ndarray | None = None, geometry: Geometry | None = None
    ) -> dict:
        """The sample of keyframe ``idx``; ``skip_offsets``/``geometry`` replace the random
        draws of training (tests use them to replay MMAction2's choices)."""
        cfg, kf = self.cfg, self.keyframes[idx]
        if skip_offsets is None and (self.training or cfg.val_temporal_jitter):
            skip_offsets = draw_skip_offsets(cfg.clip_len, cfg.frame_interval)
        inds = clip_frame_indices(
            kf.timestamp,
            clip_len=cfg.clip_len,
            frame_interval=cfg.frame_interval,
            fps=cfg.fps,
            timestamp_start=cfg.timestamp_start,
            timestamp_end=cfg.timestamp_end,
            start_index=cfg.start_index,
            skip_offsets=skip_offsets,
        )
        frame_dir = os.path.join(cfg.frame_root, kf.video)

        def draw(w: int, h: int) -> Geometry:
            if geometry is not None:
                return geometry
            if self.training:
                return train_geometry(w, h, cfg.train_scale_range, cfg.crop_size, cfg.flip_ratio)
            return val_geometry(w, h, cfg.test_short_side)

        if cfg.decoder == "nvjpeg":
            # the files are read and checked here, decoded by the training process on its
            # device (acrn.data.device_decode)
            encoded = read_encoded_clip(frame_dir, inds, cfg, kf.img_key, draw)
            g = encoded.geometry
        elif cfg.decoder == "pil-reduced":
            # the geometry (boxes, img_shape, crop) is that of the stored frame size; only the
            # pixels come from the reduced decode, resized from there to the same new size
            drawn: list[Geometry] = []

            def target(w: int, h: int) -> tuple[int, int]:
                drawn.append(draw(w, h))
                return drawn[0].new_w, drawn[0].new_h

            frames, (w, h), _ = load_frames_reduced(
                frame_dir, inds, cfg.filename_tmpl, kf.img_key, target, cfg.frame_layout
            )
            g = drawn[0]
            if (g.w, g.h) != (w, h):
                raise ValueError(f"geometry expects {g.w}x{g.h} frames, {kf.img_key} has {w}x{h}")
            dh, dw = frames[0].shape[:2]
            pixel_g = dataclasses.replace(g, w=dw, h=dh)
        else:
            frames = load_frames(
                frame_dir, inds, cfg.filename_tmpl, kf.img_key, cfg.decoder, cfg.frame_layout
            )
            h, w = frames[0].shape[:2]
            g = pixel_g = draw(w, h)
        if cfg.decoder != "nvjpeg":
            pixels = normalize(
                resize_crop_flip(frames, pixel_g, cfg.resize_backend), cfg.mean, cfg.std
            )
        props, scores = select_proposals(
            self.proposals, kf.img_key, cfg.person_det_score_thr, cfg.num_max_proposals
        )
        sample = {"encoded": encoded} if cfg.decoder == "nvjpeg" else {"imgs": pixels}
        return {
            **sample,
            "proposals": torch.from_numpy(transform_boxes(props, g)),
            "scores": torch.from_numpy(scores.astype(np.float32)),
            "gt_bboxes": torch.from_numpy(transform_boxes(kf.boxes, g)),
            "gt_labels": torch.from_numpy(kf.labels.copy()),
            "entity_ids": torch.from_numpy(kf.entity_ids.copy()),
            "img_key": kf.img_key,
            "img_shape": g.img_shape,
            "frame_inds": torch.from_numpy(inds),
            "flip": g.flip,
        }
