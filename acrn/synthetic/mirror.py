"""The synthetic mini-AVA mirror: a local folder laid out like AVA's real remote sources.

CLI (the workflow's ``mirror`` rule)::

    python -m acrn.synthetic --out MIRROR_DIR [--seed 0] [--videos N | --names A.mkv,B.mp4,...]
        [--val-every 3] [--start 1] [--end 12] [--size 160x120] [--fps 30,30,25]
        [--actors 2-3] [--no-audio]

``MIRROR_DIR`` (must not exist; written atomically) receives::

    trainval/<id>.mkv|.mp4|.webm                      # s3://ava-dataset/trainval/<file name>
    annotations/ava_file_names_trainval_v2.1.txt      # s3://ava-dataset/annotations/...
    annotations/ava_v2.1.zip, annotations/ava_v2.2.zip  # research.google.com/ava/download/...
    proposals/ava_dense_proposals_{train,val}.FAIR.recall_93.9.pkl   # download.openmmlab.com
    weights/slowfast_tiny_synthetic_init.pth          # stands in for the Kinetics-400 weights
    synthetic.json                                    # parameters and ground truth per video
    SHA256SUMS                                        # sha256sum format, paths relative to it

Zip members (flat, the names of the real AVA zips; unpack by base name):

* ``ava_v2.1.zip``: ``ava_train_v2.1.csv``, ``ava_val_v2.1.csv``, ``ava_test_v2.1.txt``,
  ``ava_train_excluded_timestamps_v2.1.csv``, ``ava_val_excluded_timestamps_v2.1.csv``,
  ``ava_test_excluded_timestamps_v2.1.csv``, ``ava_action_list_v2.1.pbtxt`` (80 classes:
  v2.2's real bytes, v2.1's are not public),
  ``ava_action_list_v2.1_for_activitynet_2018.pbtxt`` (the real 60-class list, byte for byte);
* ``ava_v2.2.zip``: the same with ``v2.2`` plus ``ava_action_list_v2.2.pbtxt`` (the real 80-class
  file), ``ava_action_list_v2.2_for_activitynet_2019.pbtxt`` (real 60-class list) and
  ``ava_included_timestamps_v2.2.txt`` (the synthetic keyframe seconds, ``%04d``).

Time window, as AVA's (frames from second 900 for 901 s, keyframes 902..1798,
``timestamp_start=900, timestamp_end=1800``): frames from ``--start`` for
``end - start + 1`` seconds, keyframes ``start + 2 .. end - 2``, and the videos last
``end + 2`` seconds. The defaults (1, 12) give 8 keyframes per video, 160x120 frames.

Content: 2-3 actors per video (:mod:`acrn.synthetic.scene`), each with one action for the whole
video, mapped onto real AVA class ids (multi-label for wave/clap/talk); a person id per actor
(8-column CSVs). Every third video is a val video (AVA splits by video). In each split one
keyframe of every third video is "excluded" (listed in the excluded-timestamps CSV and left out
of the annotations, as AVA does). Dense proposals: every keyframe of the split's videos, one
detection per actor (box jitter ~3 % of its size, score 0.93-0.999; 5 % of actors only found with
a score below 0.9), plus false positives scoring 0.05-0.85, as float64 [n, 5] like FAIR's.

Real-video quirks (``DEFAULT_QUIRKS``, off with ``--no-quirks``): source rates cycle through
30, 29.97, 25 and 23.976 fps; one val video has damaged packets inside the frames window (the
decoder conceals them and complains: the frames report lists it), one has a non-square pixel
aspect (4:3) and a second audio track, one .webm and the damaged .mkv carry a subtitle stream.

Everything is deterministic from ``--seed`` (each video draws from its own random stream, so
adding videos does not change the others).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import zipfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from acrn import formats
from acrn.fsutil import atomic_dir, atomic_write, sha256sum
from acrn.synthetic import labels as L
from acrn.synthetic import scene
from acrn.synthetic.video import damage_packets, write_video

CHECKPOINT_NAME = "slowfast_tiny_synthetic_init.pth"
PROPOSAL_NAME = "ava_dense_proposals_{split}.FAIR.recall_93.9.pkl"
FILE_LIST_NAME = "ava_file_names_trainval_v2.1.txt"
MANIFEST_NAME = "synthetic.json"
VERSIONS = ("2.1", "2.2")
EVAL_LIST = {
    "2.1": "ava_action_list_v2.1_for_activitynet_2018.pbtxt",
    "2.2": "ava_action_list_v2.2_for_activitynet_2019.pbtxt",
}

DEFAULT_NAMES = (
    "-syn00xQ1aB.mkv",
    "_syn01kP2cD.mp4",
    "syn02-mR3eF.webm",
    "-_syn03nS4g.mkv",
    "syn04_oT5hJ.mp4",
    "_syn05pU6kL.mkv",
    "syn06qV7mN.webm",
    "-syn07rW8pQ.mp4",
    "syn08sX9rS.mkv",
)


# what real AVA videos do to a pipeline, given to some default videos (only names in the
# mirror count): damaged packets inside the window (the decoder conceals them and complains),
# a non-square pixel aspect, a second audio track, a subtitle stream
QUIRKS = ("damaged", "sar", "second_audio", "subtitles")
DEFAULT_QUIRKS = {
    "_syn01kP2cD.mp4": ("sar", "second_audio"),
    "_syn05pU6kL.mkv": ("damaged", "subtitles"),
    "syn06qV7mN.webm": ("subtitles",),
}


class SyntheticError(ValueError):
    pass


def default_names(n: int) -> tuple[str, ...]:
    """``n`` AVA-like file names: ids with leading '-' / '_', all three containers."""
    if n <= len(DEFAULT_NAMES):
        return DEFAULT_NAMES[:n]
    exts = (".mkv", ".mp4", ".webm", ".mkv")
    extra = tuple(
        f"{('-', '_', '', '')[i % 4]}syn{i:02d}z{i % 7}Y{exts[i % 4]}" for i in range(9, n)
    )
    return DEFAULT_NAMES + extra


@dataclass
class SyntheticConfig:
    seed: int = 0
    names: tuple[str, ...] = DEFAULT_NAMES
    val_every: int = 3  # video i is a val video when i % val_every == val_every - 1
    timestamp_start: int = 1
    timestamp_end: int = 12
    width: int = 160
    height: int = 120
    # source frame rates, cycled over the videos: PAL, NTSC and integer rates as AVA has
    fps: tuple[str, ...] = ("30", "30000/1001", "25", "24000/1001")
    actors: tuple[int, int] = (2, 3)
    audio: bool = True
    actions: tuple[str, ...] = tuple(scene.ACTIONS)
    extract_fps: int = 30
    quirks: dict = field(default_factory=lambda: dict(DEFAULT_QUIRKS))  # name -> QUIRKS
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.names:
            raise SyntheticError("no video names")
        ids = [formats.video_id(n) for n in self.names]  # FormatError on a bad extension
        if len(set(ids)) != len(ids):
            raise SyntheticError(f"duplicate video ids in {self.names}")
        for n in self.names:
            if "/" in n or n != n.strip():
                raise SyntheticError(f"bad video file name {n!r}")
        if self.val_every < 2 or self.val_every > len(self.names):
            raise SyntheticError(
                f"val_every={self.val_every}: need 2 <= val_every <= number of videos "
                f"({len(self.names)}) so that both splits have videos"
            )
        if self.timestamp_start < 0 or self.timestamp_end - self.timestamp_start < 4:
            raise SyntheticError(
                f"window [{self.timestamp_start}, {self.timestamp_end}]: need start >= 0 and "
                "end - start >= 4 (keyframes start+2 .. end-2)"
            )
        if self.width % 2 or self.height % 2 or self.width < 64 or self.height < 48:
            raise SyntheticError(f"frame size {self.width}x{self.height}: even, >= 64x48")
        lo, hi = self.actors
        if not 1 <= lo <= hi <= 6:
            raise SyntheticError(f"actors {self.actors}: need 1 <= min <= max <= 6")
        unknown = [a for a in self.actions if a not in scene.ACTIONS]
        if unknown or not self.actions:
            raise SyntheticError(f"unknown actions {unknown}; known: {list(scene.ACTIONS)}")
        for name, q in self.quirks.items():
            if set(q) - set(QUIRKS):
                raise SyntheticError(f"{name}: unknown quirks {sorted(set(q) - set(QUIRKS))}")
        for f in self.fps:
            if not 1 <= float(Fraction(f)) <= 120:
                raise SyntheticError(f"source fps {f!r} outside 1..120")

    # derived
    @property
    def keyframes(self) -> list[int]:
        return list(range(self.timestamp_start + 2, self.timestamp_end - 1))

    @property
    def frames_duration(self) -> int:
        return self.timestamp_end - self.timestamp_start + 1

    @property
    def video_seconds(self) -> int:
        return self.timestamp_end + 2


# --------------------------------------------------------------------------- per-video content


@dataclass
class VideoPlan:
    name: str
    vid: str
    split: str
    fps: str
    actors: list[scene.Actor]
    bg_seed: int
    excluded: list[int]
    quirks: tuple[str, ...] = ()
    damaged: list = field(default_factory=list)  # presentation times of damaged packets


def _rng(cfg: SyntheticConfig, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, index, stream])


def _action_stream(cfg: SyntheticConfig):
    """Actions in rounds of seeded permutations: every action comes up once per round, so the
    mirror covers all of them as soon as it has that many actors."""
    rng = np.random.default_rng([cfg.seed, 2**20])
    while True:
        yield from (str(a) for a in rng.permutation(cfg.actions))


def plan_videos(cfg: SyntheticConfig) -> list[VideoPlan]:
    plans = []
    split_count = {"train": 0, "val": 0}
    stream = _action_stream(cfg)
    pending: list[str] = []
    for i, name in enumerate(cfg.names):
        rng = _rng(cfg, i, 0)
        split = "val" if i % cfg.val_every == cfg.val_every - 1 else "train"
        n = int(rng.integers(cfg.actors[0], cfg.actors[1] + 1))
        actions: list[str] = []
        while len(actions) < n:  # distinct actions within a video (when there are enough)
            a = pending.pop(0) if pending else next(stream)
            if a in actions and len(set(cfg.actions)) > len(actions):
                pending.append(a)
                a = next(stream)
                while a in actions:
                    pending.append(a)
                    a = next(stream)
            actions.append(a)
        actors = scene.make_actors(rng, actions, cfg.width, cfg.height)
        excluded = []
        if split_count[split] % 3 == 0:
            excluded = [int(rng.choice(cfg.keyframes))]
        split_count[split] += 1
        plans.append(
            VideoPlan(
                name=name,
                vid=formats.video_id(name),
                split=split,
                fps=cfg.fps[i % len(cfg.fps)],
                actors=actors,
                bg_seed=int(rng.integers(2**31)),
                excluded=excluded,
                quirks=tuple(cfg.quirks.get(name, ())),
            )
        )
    return plans


def video_frames(cfg: SyntheticConfig, plan: VideoPlan):
    bg = scene.background(np.random.default_rng(plan.bg_seed), cfg.height, cfg.width)
    rate = Fraction(plan.fps)
    n = math.ceil(cfg.video_seconds * rate)
    for k in range(n):
        yield scene.render(bg, plan.actors, float(k / rate))


def annotations(cfg: SyntheticConfig, plans: list[VideoPlan], split: str, version: str):
    rows = []
    for p in plans:
        if p.split != split:
            continue
        for t in cfg.keyframes:
            if t in p.excluded:
                continue
            for a in p.actors:
                x1, y1, x2, y2 = scene.actor_box(a, float(t), cfg.width)
                box = np.clip(
                    [x1 / cfg.width, y1 / cfg.height, x2 / cfg.width, y2 / cfg.height], 0, 1
                )
                for label in a.labels(version):
                    rows.append((p.vid, t, *box.round(3), label, a.person))
    df = pd.DataFrame(rows, columns=formats.ANNOTATION_COLUMNS)
    return df.sort_values(["video", "second", "person", "action"], kind="stable").reset_index(
        drop=True
    )


def proposals(cfg: SyntheticConfig, plans: list[VideoPlan], split: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    W, H = cfg.width, cfg.height
    for i, p in enumerate(plans):
        if p.split != split:
            continue
        rng = _rng(cfg, i, 1)
        for t in cfg.keyframes:
            dets = []
            for a in p.actors:
                x1, y1, x2, y2 = scene.actor_box(a, float(t), W)
                w, h = x2 - x1, y2 - y1
                j = rng.normal(0, 0.03, 4) * [w, h, w, h]
                box = [(x1 + j[0]) / W, (y1 + j[1]) / H, (x2 + j[2]) / W, (y2 + j[3]) / H]
                score = rng.uniform(0.4, 0.88) if rng.random() < 0.05 else rng.uniform(0.93, 0.999)
                dets.append(box + [score])
            for _ in range(int(rng.poisson(0.8))):  # false positives, all below 0.9
                bw, bh = rng.uniform(0.08, 0.2), rng.uniform(0.25, 0.6)
                bx, by = rng.uniform(0, 1 - bw), rng.uniform(0, 1 - bh)
                dets.append([bx, by, bx + bw, by + bh, rng.uniform(0.05, 0.85)])
            arr = np.array(dets, dtype=np.float64)
            arr[:, :4] = np.clip(arr[:, :4], 0, 1).round(3)
            arr[:, 4] = arr[:, 4].round(6)
            arr[:, 2] = np.maximum(arr[:, 2], arr[:, 0] + 0.001)
            arr[:, 3] = np.maximum(arr[:, 3], arr[:, 1] + 0.001)
            out[formats.keyframe_key(p.vid, t)] = arr
    return out


# --------------------------------------------------------------------------- files


def _csv(rows: list[str]) -> bytes:
    return "".join(r + "\n" for r in rows).encode()


def _write_zip(path: Path, members: dict[str, bytes]) -> None:
    with (
        atomic_write(path, "wb") as f,
        zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z,
    ):
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, members[name])


def _annotation_members(cfg, plans, version, tmp: Path) -> dict[str, bytes]:
    v = version
    members: dict[str, bytes] = {}
    for split in ("train", "val"):
        csv_path = tmp / f"ava_{split}_v{v}.csv"
        formats.write_annotations(csv_path, annotations(cfg, plans, split, v))
        members[csv_path.name] = csv_path.read_bytes()
        csv_path.unlink()
        excl = [f"{p.vid},{t:04d}" for p in plans if p.split == split for t in sorted(p.excluded)]
        members[f"ava_{split}_excluded_timestamps_v{v}.csv"] = _csv(excl)
    test_ids = [f"synTEST{k:04d}" for k in range(2)]
    members[f"ava_test_v{v}.txt"] = _csv(test_ids)
    members[f"ava_test_excluded_timestamps_v{v}.csv"] = _csv(
        [f"{test_ids[0]},{cfg.keyframes[0]:04d}"]
    )
    members[f"ava_action_list_v{v}.pbtxt"] = L.pbtxt_80().encode()
    members[EVAL_LIST[v]] = L.pbtxt_60().encode()
    if v == "2.2":
        members["ava_included_timestamps_v2.2.txt"] = _csv([f"{t:04d}" for t in cfg.keyframes])
    return members


def write_init_checkpoint(path: Path, seed: int) -> dict:
    """MMAction2 recognizer format: backbone.* of ``ModelConfig.tiny()`` + a 400-way cls_head."""
    import torch

    from acrn.checkpoint import write_checkpoint
    from acrn.models import ModelConfig, build_detector

    torch.manual_seed(seed)
    cfg = ModelConfig.tiny()
    model = build_detector(cfg)
    sd = {f"backbone.{k}": v for k, v in model.backbone.state_dict().items()}
    g = torch.Generator().manual_seed(seed)
    c = cfg.backbone_out_channels
    sd["cls_head.fc_cls.weight"] = torch.randn(400, c, generator=g) * 0.01
    sd["cls_head.fc_cls.bias"] = torch.zeros(400)
    meta = {
        "note": "synthetic initial weights for the demo (random init, NOT Kinetics-400)",
        "model_config": "acrn.models.ModelConfig.tiny()",
        "seed": seed,
        "CLASSES": None,
    }
    write_checkpoint(path, sd, meta)
    return {"keys": len(sd), "backbone_out_channels": c}


def manifest(cfg: SyntheticConfig, plans: list[VideoPlan]) -> dict:
    return {
        "generator": "acrn.synthetic",
        "config": {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in dataclasses.asdict(cfg).items()
            if k not in ("meta", "quirks")
        },
        "window": {
            "timestamp_start": cfg.timestamp_start,
            "timestamp_end": cfg.timestamp_end,
            "keyframes": cfg.keyframes,
            "frames": {
                "start": cfg.timestamp_start,
                "duration": cfg.frames_duration,
                "fps": cfg.extract_fps,
            },
            "video_seconds": cfg.video_seconds,
        },
        "actions": {
            name: {"labels": list(a.labels), "v2.2_extra": list(a.extra_v22)}
            for name, a in scene.ACTIONS.items()
        },
        "videos": [
            {
                "name": p.name,
                "id": p.vid,
                "split": p.split,
                "fps": p.fps,
                "size": [cfg.width, cfg.height],
                "excluded": p.excluded,
                "quirks": list(p.quirks),
                "damaged_seconds": p.damaged,
                "background_seed": p.bg_seed,
                "actors": [dataclasses.asdict(a) for a in p.actors],
            }
            for p in plans
        ],
        "checkpoint": f"weights/{CHECKPOINT_NAME}",
    }


def _write_mirror_video(cfg: SyntheticConfig, p: VideoPlan, path: Path) -> None:
    write_video(
        path,
        video_frames(cfg, p),
        fps=p.fps,
        audio=cfg.audio,
        sar="4:3" if "sar" in p.quirks else None,
        second_audio="second_audio" in p.quirks,
        subtitles="subtitles" in p.quirks,
    )
    if "damaged" in p.quirks:
        # inside the frames window, between two keyframes
        t = cfg.keyframes[len(cfg.keyframes) // 2]
        p.damaged = [round(x, 3) for x in damage_packets(path, (t + 0.2, t + 0.8))]


def generate(cfg: SyntheticConfig, out: str | os.PathLike) -> dict:
    """Write the mirror into ``out`` (must not exist); returns the manifest."""
    out = Path(out)
    plans = plan_videos(cfg)
    with atomic_dir(out) as tmp:
        for p in plans:
            _write_mirror_video(cfg, p, tmp / "trainval" / p.name)
        ann = tmp / "annotations"
        ann.mkdir()
        with atomic_write(ann / FILE_LIST_NAME) as f:
            f.write("".join(n + "\n" for n in cfg.names))
        for v in VERSIONS:
            _write_zip(ann / f"ava_v{v}.zip", _annotation_members(cfg, plans, v, ann))
        for split in ("train", "val"):
            formats.write_proposals(
                tmp / "proposals" / PROPOSAL_NAME.format(split=split), proposals(cfg, plans, split)
            )
        (tmp / "weights").mkdir()
        write_init_checkpoint(tmp / "weights" / CHECKPOINT_NAME, cfg.seed)
        man = manifest(cfg, plans)
        with atomic_write(tmp / MANIFEST_NAME) as f:
            json.dump(man, f, indent=1)
            f.write("\n")
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        lines = [f"{sha256sum(p)}  {p.relative_to(tmp).as_posix()}" for p in files]
        with atomic_write(tmp / "SHA256SUMS") as f:
            f.write("".join(ln + "\n" for ln in lines))
    return man


def read_zip_member(zip_path: str | os.PathLike, member: str) -> bytes:
    with zipfile.ZipFile(zip_path) as z:
        return z.read(member)


def unpack(zip_path: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """Unpack every member (tests and notebooks; the workflow uses acrn.download extract)."""
    out_dir = Path(out_dir)
    paths = []
    with zipfile.ZipFile(zip_path) as z:
        for name in z.namelist():
            with atomic_write(out_dir / name, "wb") as f:
                f.write(z.read(name))
            paths.append(out_dir / name)
    return paths
