"""The real MMAction2 sample files of ``tests/data/ava-reference`` as DataConfig paths."""

from __future__ import annotations

from pathlib import Path

REF = Path(__file__).parent / "data" / "ava-reference"
SAMPLE_CSV = REF / "sample_ava_sample.csv"
SAMPLE_EXCL = REF / "sample_ava_excluded_timestamps_sample.csv"
SAMPLE_PROPS = REF / "sample_ava_proposals_sample.pkl"


def sample_paths(frame_root: Path, exclusions: bool = True) -> dict[str, str | None]:
    """DataConfig path fields: the sample annotations/proposals for both splits."""
    excl = str(SAMPLE_EXCL) if exclusions else None
    return dict(
        frame_root=str(frame_root),
        frame_layout="dir",
        train_annotations=str(SAMPLE_CSV),
        val_annotations=str(SAMPLE_CSV),
        train_exclusions=excl,
        val_exclusions=excl,
        train_proposals=str(SAMPLE_PROPS),
        val_proposals=str(SAMPLE_PROPS),
    )


# --- video-like JPEG frames for the sample keyframes (videos 0f39OWEqJ24, _-Z6wFjXtGQ) -------

W, H = 336, 184  # multiples of 8: every libjpeg reduction applies


def video_frame(index: int, w: int = W, h: int = H):
    """uint8 [3, h, w]: smooth gradients and waves, a few hard edges, mild sensor noise."""
    import torch

    g = torch.Generator().manual_seed(index)
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    img = torch.stack(
        [
            x * 180.0 / w + 2 * index + 20,
            128 + 80 * torch.sin(x / 23.0 + y / 31.0 + index / 5),
            y * 200.0 / h + 40 * ((x // 48) % 2) + 10,
        ]
    )
    img = img + 2 * torch.randn(img.shape, generator=g)
    return img.clamp(0, 255).to(torch.uint8)


def encode_jpeg(img, quality: int = 90) -> bytes:
    """uint8 [3, h, w] (torch) -> JPEG bytes, libjpeg 4:2:0 through Pillow (torchvision.io's
    codecs are deprecated since torchvision 0.29)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img.permute(1, 2, 0).contiguous().numpy()).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def write_video_frames(root: Path, count: int = 40, w: int = W, h: int = H) -> Path:
    """Frames img_00001.jpg.. of both sample videos under ``root`` (JPEG quality 90)."""
    for video in ("0f39OWEqJ24", "_-Z6wFjXtGQ"):
        d = root / video
        d.mkdir(parents=True, exist_ok=True)
        for i in range(1, count + 1):
            (d / f"img_{i:05d}.jpg").write_bytes(encode_jpeg(video_frame(i, w, h), quality=90))
    return root


def small_data_cfg(root: Path, size: int, exclusions: bool, **kw):
    """DataConfig on the sample keyframes with short clips (4 x 2 at 4 fps, shot 900-910 s),
    train short side ``size``..``5 size / 4`` cropped to ``size``, test short side ``size``;
    ``kw`` overrides."""
    from acrn.data import DataConfig

    base = dict(
        **sample_paths(root, exclusions=exclusions),
        clip_len=4,
        frame_interval=2,
        fps=4,
        timestamp_start=900,
        timestamp_end=910,
        train_scale_range=(size, size * 5 // 4),
        crop_size=size,
        test_short_side=size,
        workers=0,
    )
    base.update(kw)
    return DataConfig(**base)
