"""acrn.data ``decoder="nvjpeg"``: files read by the workers, decoded by the training process.

On a CPU device the whole path (header size, geometry, batched decode, batched integer resize,
normalize table) must give exactly the default path's samples. On a GPU (run where one is
lent) only the decoded pixels may differ, by a few levels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from data_samples import (  # noqa: E402
    H,
    W,
    encode_jpeg,
    small_data_cfg,
    video_frame,
    write_video_frames,
)

from acrn.data import AVADataset, DataConfig, FrameError, build_loader, collate
from acrn.data.decode import read_frame_files
from acrn.data.device_decode import (
    batch_images,
    decode_batch,
    jpeg_size,
    resize_crop_flip_tchw,
)
from acrn.data.transforms import Geometry, _resize_torch

# decoder="nvjpeg" (opt-in, GPU) still decodes through torchvision.io.decode_jpeg, deprecated
# since torchvision 0.29 (README "Decoder": its TorchCodec successor needs a GPU session to be
# re-measured); the warning is expected here, and only here
pytestmark = pytest.mark.filterwarnings(
    "ignore:The image decoding and encoding capabilities of TorchVision:DeprecationWarning"
)


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    return write_video_frames(tmp_path_factory.mktemp("frames"))


def _cfg(root: Path, **kw) -> DataConfig:
    return small_data_cfg(root, 64, False, **kw)


def _pair(frames, split, seed, i, **kw):
    exact = AVADataset(_cfg(frames, decoder="opencv", **kw), split)
    device = AVADataset(_cfg(frames, decoder="nvjpeg", **kw), split)
    torch.manual_seed(seed)
    np.random.seed(seed)
    a = exact[i]
    torch.manual_seed(seed)
    np.random.seed(seed)
    b = device[i]
    return a, b


def _same_but_imgs(a: dict, b: dict) -> None:
    assert set(a) - {"imgs"} == set(b) - {"encoded"}
    for key in ("proposals", "scores", "gt_bboxes", "gt_labels", "entity_ids", "frame_inds"):
        assert torch.equal(a[key], b[key]), key
    for key in ("img_key", "img_shape", "flip"):
        assert a[key] == b[key], key


def test_jpeg_size_reads_the_frame_header(tmp_path):
    for w, h in ((W, H), (17, 9), (1280, 720)):
        data = np.frombuffer(encode_jpeg(video_frame(1, w, h), quality=90), np.uint8)
        assert jpeg_size(data, "f.jpg", "k") == (w, h)
    # ffmpeg's JPEGs (JFIF + comment segments before the frame header), a real one
    ref = Path(__file__).parent / "data"
    jpgs = sorted(ref.rglob("*.jpg"))
    for p in jpgs[:3]:
        from PIL import Image

        with Image.open(p) as im:
            assert jpeg_size(np.fromfile(p, dtype=np.uint8), str(p), "k") == im.size
    with pytest.raises(
        FrameError, match=r"bad\.jpg: corrupt JPEG, no frame header \(keyframe v,0902\)"
    ):
        jpeg_size(np.array([0xFF, 0xD8, 0xFF, 0xD9], dtype=np.uint8), "bad.jpg", "v,0902")
    data = np.frombuffer(encode_jpeg(video_frame(1), quality=90), np.uint8)
    with pytest.raises(FrameError, match="no frame header"):
        jpeg_size(data[:20], "cut.jpg", "k")


@pytest.mark.parametrize(
    "g",
    [
        Geometry(W, H, 146, 80, 30, 8, 64, 64, flip=False),
        Geometry(W, H, 146, 80, 30, 8, 64, 64, flip=True),
        Geometry(W, H, 117, 64),  # val: resize only
        Geometry(W, H, 500, 274, 100, 3, 200, 150, flip=True),  # upsampling
        Geometry(W, H, W, H),  # identity
    ],
)
def test_batched_resize_equals_the_frame_by_frame_one(g):
    frames = [video_frame(i).permute(1, 2, 0).contiguous() for i in range(3)]
    want = _resize_torch(frames, g)  # [T, h, w, 3], itself checked against OpenCV
    got = resize_crop_flip_tchw(torch.stack([f.permute(2, 0, 1) for f in frames]), g)
    assert torch.equal(got.permute(0, 2, 3, 1), want)


def test_cpu_device_path_is_bit_exact_in_training(frames):
    flips = set()
    n = len(AVADataset(_cfg(frames), "train"))
    for seed in range(4):
        for i in range(n):
            a, b = _pair(frames, "train", seed, i)
            _same_but_imgs(a, b)
            assert "imgs" not in b
            imgs = decode_batch([b["encoded"]], "cpu")
            assert imgs.dtype == torch.float32 and torch.equal(imgs[0], a["imgs"])
            flips.add(a["flip"])
    assert flips == {False, True}


def test_cpu_device_path_is_bit_exact_in_validation(frames):
    a, b = _pair(frames, "val", 0, 0)
    _same_but_imgs(a, b)
    assert torch.equal(decode_batch([b["encoded"]], "cpu")[0], a["imgs"])


def test_repeated_frames_are_read_once(tmp_path):
    # clip_len 12 x interval 2 around keyframe 902 at fps 4 reaches below the shot start:
    # clipped indices repeat, and the encoded clip holds each file once
    root = write_video_frames(tmp_path, count=20)
    for video in ("0f39OWEqJ24", "_-Z6wFjXtGQ"):  # the clipped index 0
        (root / video / "img_00000.jpg").write_bytes((root / video / "img_00001.jpg").read_bytes())
    ds = AVADataset(_cfg(root, decoder="nvjpeg", clip_len=12), "val")
    s = ds[0]
    enc = s["encoded"]
    inds = s["frame_inds"].tolist()
    assert len(inds) == 12 and len(set(inds)) < 12
    assert len(enc.sizes) == len(set(inds)) == len(enc.paths)
    assert sum(enc.sizes) == enc.data.numel()
    names = [Path(enc.paths[j]).name for j in enc.order]
    assert names == [f"img_{i:05d}.jpg" for i in inds]


def test_loader_batches_through_workers(frames):
    exact = AVADataset(_cfg(frames, decoder="opencv"), "train")
    device = AVADataset(_cfg(frames, decoder="nvjpeg"), "train")
    want = next(iter(build_loader(exact, 3, 2, seed=5)))
    got = next(iter(build_loader(device, 3, 2, seed=5)))
    assert "imgs" not in got and len(got["encoded"]) == 3
    assert got["img_keys"] == want["img_keys"]
    assert torch.equal(batch_images(got, "cpu"), want["imgs"])
    cl = batch_images(got, "cpu", torch.channels_last_3d)
    assert cl.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.equal(batch_images(want, "cpu"), want["imgs"])


def test_errors_name_the_file_and_keyframe(frames, tmp_path):
    root = tmp_path / "frames"
    write_video_frames(root, count=12)
    ds = AVADataset(_cfg(root, decoder="nvjpeg"), "val")
    s = ds[0]
    key = s["img_key"]
    video = key.split(",")[0]
    # a corrupt scan header with intact start/end markers passes the reading checks and
    # fails the decode, which names the file
    p = Path(s["encoded"].paths[1])
    data = bytearray(p.read_bytes())
    sos = data.index(b"\xff\xda")
    data[sos + 4] = 7  # components in the scan
    p.write_bytes(bytes(data))
    enc = ds[0]["encoded"]
    with pytest.raises(FrameError, match=rf"{p.name}: corrupt JPEG \(keyframe {key}\)"):
        decode_batch([enc], "cpu")
    # a frame of another size: named while reading, before any decoding
    q = Path(s["encoded"].paths[2])
    q.write_bytes(encode_jpeg(video_frame(3, W - 8, H), quality=90))
    with pytest.raises(FrameError, match=rf"{q.name}: frame size \({H}, {W - 8}\) differs"):
        ds[0]
    # a missing frame: the reading check names it
    q.unlink()
    with pytest.raises(
        FrameError, match=rf"{q.name}: frame file missing \(needed by keyframe {video}"
    ):
        ds[0]


def test_read_frame_files_dedups(frames):
    d = str(frames / "0f39OWEqJ24")
    unique, paths, datas = read_frame_files(d, np.array([3, 3, 4, 3]), "img_{:05}.jpg", "k")
    assert unique == [3, 4] and len(paths) == len(datas) == 2


def test_collate_rejects_mixed_sizes_on_decode(frames):
    ds = AVADataset(_cfg(frames, decoder="nvjpeg"), "val")
    small = AVADataset(_cfg(frames, decoder="nvjpeg", test_short_side=48), "val")
    batch = collate([ds[0], small[0]])
    with pytest.raises(ValueError, match="clips of different shapes"):
        decode_batch(batch["encoded"], "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU (nvJPEG)")
def test_nvjpeg_on_gpu_differs_only_in_decoded_pixels(frames):
    cfg = _cfg(frames)
    std = torch.tensor(cfg.std).view(3, 1, 1, 1)
    diffs = []
    for seed in range(3):
        for i in range(len(AVADataset(cfg, "train"))):
            a, b = _pair(frames, "train", seed, i)
            _same_but_imgs(a, b)
            imgs = decode_batch([b["encoded"]], "cuda")[0].cpu()
            assert imgs.shape == a["imgs"].shape
            diffs.append(float(((imgs - a["imgs"]) * std).abs().mean()))
    # nvJPEG vs libjpeg-turbo: a different IDCT/upsampling, not a different image
    assert max(diffs) < 2.0, diffs


def test_inference_with_device_decode_writes_the_same_detections(frames, tmp_path):
    """``acrn.infer`` on a CPU device: decoder nvjpeg -> byte-identical detection CSV."""
    from acrn.experiment import ExperimentConfig, TrainConfig
    from acrn.infer import run
    from acrn.models import ModelConfig, build_detector

    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.pth"
    torch.save({"state_dict": build_detector(ModelConfig.tiny()).state_dict()}, ckpt)
    out = {}
    for decoder in ("opencv", "nvjpeg"):
        exp = ExperimentConfig(
            model=ModelConfig.tiny(),
            data=_cfg(frames, decoder=decoder, clip_len=8),
            train=TrainConfig(device="cpu", action_thr=0.0),
        )
        run(exp, ckpt, tmp_path / f"{decoder}.csv")
        out[decoder] = (tmp_path / f"{decoder}.csv").read_bytes()
    assert out["nvjpeg"] == out["opencv"] and out["nvjpeg"].count(b"\n") > 10
