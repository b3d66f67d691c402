"""acrn.frames: one ffmpeg pass, frame for frame like MMAction2 0.x's two-pass route.

Real ffmpeg on small frame-number-coded videos (each frame carries its source index).
"""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from acrn import frames as fr
from acrn.synthetic.framecode import draw_code, read_code
from acrn.synthetic.video import write_video

W, H = 128, 64


def coded_frames(n: int):
    for i in range(n):
        img = np.full((H, W, 3), 90, np.uint8)
        draw_code(img, i)
        yield img


def make_video(path: Path, fps: str, seconds: float, audio: bool) -> Path:
    n = int(round(float(Fraction(fps)) * seconds))
    return write_video(path, coded_frames(n), fps=fps, audio=audio)


def codes(folder: Path) -> list[int]:
    files = sorted(folder.glob("img_*.jpg"))
    return [read_code(np.asarray(Image.open(f).convert("RGB"))) for f in files]


def two_pass(video: Path, work: Path, start, duration) -> Path:
    """MMAction2 0.x: cut_videos.sh then extract_rgb_frames_ffmpeg.sh (their exact options)."""
    cut = work / ("cut" + video.suffix)
    out = work / "rawframes"
    out.mkdir(parents=True)
    q = ["ffmpeg", "-nostdin", "-loglevel", "error"]
    subprocess.run(
        q + ["-ss", str(start), "-t", str(duration), "-i", str(video)]
        + ["-strict", "experimental", str(cut)],
        check=True,
    )  # fmt: skip
    subprocess.run(
        q + ["-i", str(cut), "-r", "30", "-q:v", "1", str(out / "img_%05d.jpg")], check=True
    )
    return out


# id, source rate, audio track; ids start with '-' / '_' like some AVA ids
CASES = {
    ".mkv": ("-5KQ66BBWC4", "30", True),
    ".mp4": ("_145Aa_xkuE", "25", False),
    ".webm": ("-IELREHX_js", "24", True),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    return {
        ext: make_video(d / f"{vid}{ext}", fps, 7, audio)
        for ext, (vid, fps, audio) in CASES.items()
    }


@pytest.mark.parametrize("ext", list(CASES))
def test_frame_k_is_the_two_pass_frame_k(videos, tmp_path, ext):
    video = videos[ext]
    vid, fps, _ = CASES[ext]
    start, duration = 2, 4
    out = tmp_path / vid
    info = fr.extract_frames(video, out, start=start, duration=duration, fps=30)
    ours = codes(out)
    ref = codes(two_pass(video, tmp_path / "ref", start, duration))
    assert len(ours) == len(ref) == info["frames"]
    assert abs(info["frames"] - duration * 30) <= fr.FRAME_TOLERANCE
    assert ours == ref
    # frame k shows a source frame within one frame period of the instant start + (k - 1) / 30
    # (exactly that frame for a 30 fps source)
    rate = Fraction(fps)
    instants = [(start + Fraction(k, 30)) * rate for k in range(len(ours))]
    assert all(abs(c - t) < 1 for c, t in zip(ours, instants, strict=True))
    assert all(b - a in (0, 1) for a, b in zip(ours, ours[1:], strict=False))
    if rate == 30:
        assert ours == [int(t) for t in instants]


def test_ntsc_rate_within_one_source_frame_of_two_pass(tmp_path):
    # 29.97 fps: the two-pass re-encode moves where -r 30 duplicates a frame (module docstring)
    video = make_video(tmp_path / "ntsc.mkv", "30000/1001", 14, False)
    out = tmp_path / "ntsc"
    fr.extract_frames(video, out, start=2, duration=11)
    ours, ref = codes(out), codes(two_pass(video, tmp_path / "ref", 2, 11))
    assert len(ours) == len(ref)
    assert max(abs(a - b) for a, b in zip(ours, ref, strict=True)) <= 1
    assert ours[:60] == ref[:60]


def test_record_rerun_skip_and_parameter_change(videos, tmp_path):
    video = videos[".mkv"]
    out = tmp_path / CASES[".mkv"][0]
    stale = tmp_path / f".{out.name}.k1ll3d.tmp"  # left by a killed run
    stale.mkdir()
    (stale / "img_00001.jpg").write_bytes(b"x")
    info = fr.extract_frames(video, out, start=1, duration=3)
    assert not info["skipped"] and not stale.exists()
    rec = json.loads((out / fr.INFO_NAME).read_text())
    version = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout
    assert rec["ffmpeg"]["version"] == version.splitlines()[0]
    assert rec["ffmpeg"]["configuration"] and rec["ffmpeg"]["configuration"] in version
    assert rec["frames"] == len(list(out.glob("img_*.jpg")))
    assert rec["params"] == {
        "start": 1.0,
        "duration": 3.0,
        "fps": 30.0,
        "quality": 1,
        "short_side": None,
    }
    assert rec["command"][rec["command"].index("-q:v") + 1] == "1"
    first = out / "img_00001.jpg"
    mtime = first.stat().st_mtime_ns
    again = fr.extract_frames(video, out, start=1, duration=3)
    assert again["skipped"] and first.stat().st_mtime_ns == mtime
    with pytest.raises(fr.FrameExtractionError, match="already extracted with"):
        fr.extract_frames(video, out, start=1, duration=2)
    (out / "img_00002.jpg").unlink()
    with pytest.raises(fr.FrameExtractionError, match="records"):
        fr.extract_frames(video, out, start=1, duration=3)


def _assert_nothing_left(parent: Path, name: str):
    assert not (parent / name).exists()
    assert [p.name for p in parent.iterdir() if name in p.name] == []


def test_window_past_the_end_fails_and_leaves_nothing(videos, tmp_path):
    video = videos[".mp4"]
    vid = CASES[".mp4"][0]
    with pytest.raises(fr.FrameExtractionError, match=r"frames extracted, expected 150 \+- 2") as e:
        fr.extract_frames(video, tmp_path / vid, start=3, duration=5)  # video: 7 s
    assert video.name in str(e.value)
    _assert_nothing_left(tmp_path, vid)


def test_truncated_and_corrupt_videos_fail_naming_the_video(videos, tmp_path):
    data = videos[".mkv"].read_bytes()
    truncated = tmp_path / "trunc_vid.mkv"
    truncated.write_bytes(data[: len(data) // 2])
    corrupt = tmp_path / "corrupt_vid.mkv"
    rng = np.random.default_rng(0)
    b = bytearray(data)
    i = len(b) // 3
    b[i : i + 2000] = rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
    corrupt.write_bytes(bytes(b))
    garbage = tmp_path / "garbage_vid.webm"
    garbage.write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    for video in (truncated, corrupt, garbage):
        out = tmp_path / "frames" / video.name.rsplit(".", 1)[0]
        with pytest.raises(fr.FrameExtractionError) as e:
            fr.extract_frames(video, out, start=1, duration=5)
        assert str(video) in str(e.value)
        _assert_nothing_left(out.parent, out.name)


def test_truncated_video_fails_on_frame_count_even_when_errors_are_allowed(videos, tmp_path):
    data = videos[".mp4"].read_bytes()
    video = tmp_path / "short.mp4"
    video.write_bytes(data[: len(data) // 2])
    with pytest.raises(fr.FrameExtractionError, match=r"short\.mp4"):
        fr.extract_frames(video, tmp_path / "short", start=1, duration=5, allow_decode_errors=True)
    assert not (tmp_path / "short").exists()


def test_short_side_resize_keeps_the_frame_selection(videos, tmp_path):
    video = videos[".webm"]
    vid = CASES[".webm"][0]
    full = fr.extract_frames(video, tmp_path / "a" / vid, start=1, duration=3)
    small = fr.extract_frames(video, tmp_path / "b" / vid, start=1, duration=3, short_side=48)
    assert small["frame_size"] == [96, 48] and full["frame_size"] == [W, H]
    assert Image.open(tmp_path / "b" / vid / "img_00001.jpg").size == (96, 48)
    assert codes(tmp_path / "a" / vid) == codes(tmp_path / "b" / vid)


def test_vpx_decoder_check():
    have = fr.ffmpeg_decoders()
    fr.check_decoder("vp9", "x.webm", have)  # Debian's ffmpeg has it
    with pytest.raises(fr.FrameExtractionError, match=r"x\.webm: VP9 video needs the vpx decoder"):
        fr.check_decoder("vp9", "x.webm", have - {"vp9", "libvpx-vp9"})
    with pytest.raises(fr.FrameExtractionError, match="no decoder for codec 'nope'"):
        fr.check_decoder("nope", "y.mkv", have)


def test_folder_must_be_named_by_the_video_id(videos, tmp_path):
    with pytest.raises(fr.FrameExtractionError, match="named by the video id '-5KQ66BBWC4'"):
        fr.extract_frames(videos[".mkv"], tmp_path / "frames", start=1, duration=2)
    assert fr.video_id("a/-x_y.webm") == "-x_y"
    with pytest.raises(fr.FrameExtractionError, match="not a .mkv/.mp4/.webm"):
        fr.video_id("clip.avi")


def test_cli_with_a_leading_dash_id(videos, tmp_path):
    video = videos[".mkv"]
    out = tmp_path / "frames" / video.stem
    cmd = [sys.executable, "-m", "acrn.frames", f"--video={video}", "--out", str(out)]
    cmd += ["--start", "1", "--duration", "2"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "60 frames" in p.stdout or "61 frames" in p.stdout
    assert (out / "img_00060.jpg").is_file()
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0 and "skipped" in p.stdout
    bad = subprocess.run(
        cmd[:-4] + ["--start", "5", "--duration", "9"], capture_output=True, text=True
    )
    assert bad.returncode == 1 and "already extracted" in bad.stderr
    p = subprocess.run(cmd + ["--quality", "0"], capture_output=True, text=True)
    assert p.returncode == 2 and "quality=0" in p.stderr
