"""Frame extraction: one ffmpeg pass per video, or MMAction2 0.x's two passes literally.

CLI (called once per video by the workflow's ``extract_frames`` rule; keep it stable)::

    python -m acrn.frames --video PATH --out DIR [--start 900] [--duration 901] [--fps 30]
                          [--quality 1] [--short-side N] [--route one-pass|mmaction2]
                          [--layout zip|dir] [--strict-decode]
    python -m acrn.frames report --out REPORT.md DIR [DIR ...]
    python -m acrn.frames pack DIR | unpack DIR     # convert one video's folder in place

* ``PATH``: a ``.mkv``, ``.mp4`` or ``.webm`` video; its id is the file name without the
  extension (ids may start with ``-``: pass such a path as ``./-id.mkv`` or ``--video=-id.mkv``).
* ``DIR``: the video's frame folder; its name must be the video id. ``--layout zip``
  (default): ``DIR/frames.zip`` (a stored zip of ``img_00001.jpg``, ...: ffmpeg's
  ``image2pipe`` output split into members as it comes, no frame file on disk; renamed into
  place once the count and every member's CRC are verified) and ``DIR/extract.json``.
  ``--layout dir``: ``img_00001.jpg``, ``img_00002.jpg``, ... and ``extract.json``; ``DIR``
  appears only once complete and verified (``acrn.fsutil.atomic_dir``). The members of the
  one are the files of the other, byte for byte (``acrn.framepack``).
* Exit status 0: extracted (or already there, same parameters: skipped); 1: the video is bad
  (corrupt, truncated, too short for the window, missing decoder), the message names it;
  2: bad arguments.
* ``report``: the frames report (Markdown): per video source fps, size, pixel aspect, streams,
  frame count and decoder messages, the videos with messages listed first.

Routes. What MMAction2 0.x did for ACRN (#891, 2021-05-31): ``tools/data/ava/cut_videos.sh`` as
of d2a1302a (#807, 2021-04-14) then ``extract_rgb_frames_ffmpeg.sh``::

    ffmpeg -ss 900 -t 901 -i VIDEO -r 30 -strict experimental videos_15min/NAME   # re-encodes
    ffmpeg -i videos_15min/NAME -r 30 -q:v 1 rawframes/ID/img_%05d.jpg

``--route mmaction2`` runs exactly these (:func:`mmaction2_commands`; byte-identical JPEGs to
the scripts with the same ffmpeg build). ``--route one-pass`` (default) runs ``ffmpeg -ss START
-t DURATION -i VIDEO -r FPS -q:v Q DIR/img_%05d.jpg``: no re-encode (faster, one lossy
generation less). Frame k of both shows the same source frame for every .mp4 and for .mkv/.webm
without audio up to 30 fps; the cut's Vorbis/Opus re-encode (audio priming, Opus pre-skip) and
Matroska/WebM's variable-frame-rate ``-r`` at 50/59.94 fps make the mmaction2 route show a
neighbouring source frame (at most two apart) for part of the frames: README "Frames" has the
per-rate/container shares (``scripts/bench_extract.py --parity``, checked by
``tests/test_frames.py``).

Damaged packets: the decoder's error-level messages are recorded in ``extract.json``
(``decode_errors``) and the video is extracted (ffmpeg conceals the damage); ``--strict-decode``
makes them fatal. A video that cannot give the window's frames still fails (frame count check).

Frame count check: ``n = round(duration * fps)`` frames are expected; the extraction is accepted
if it produced ``n - 2 .. n + 2`` frames (``FRAME_TOLERANCE``). Why: the rate conversion ends on
the last source frame's duration, which adds 0 to 2 frames at the end depending on the source
frame rate (measured: +0 at 10/12/15/24/25/30, +1 at 23.976/29.97, +2 at 48/50/59.94/60/120 fps;
the two-pass route gave the same counts wherever compared, 15-60 fps); the sampler of MMAction2's AVADataset reads at most
frame ``(duration - 1) * fps + 1`` (27001 of AVA's ~27030), so two missing frames at the end
are harmless, while a larger shortfall (a video that ends inside the window, a truncated
download, ``-r`` in the wrong place) fails here, naming the video, instead of as a
FileNotFoundError deep in training.

``DIR/extract.json`` records the video, the parameters, the layout, the frame count, the
``frames_digest`` (sha256 over ``name crc32 size`` of every frame, the same for both layouts;
``frames_digest(DIR)`` recomputes it), the source stream (codec, size, frame rate), the exact
ffmpeg command and the ffmpeg build (``ffmpeg -version``: the version line and the
configuration line; frame counts and even mAP have been seen to move with the ffmpeg version).
A re-run with the same parameters and layout finds it and skips the video; a re-run with
different parameters fails (delete ``DIR`` first), one with the other layout names the
``pack``/``unpack`` command; a zip-layout ``DIR`` whose ``frames.zip`` is missing (the loader
moves a damaged zip aside) or damaged is extracted again.

``.webm`` videos are VP8/VP9: the vpx decoder (ffmpeg's native ``vp8``/``vp9`` or ``libvpx``)
must be available, else the video fails with a message saying so.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import ffmpeg

from acrn import framepack
from acrn.framepack import (
    INFO_NAME,
    LAYOUTS,
    ZIP_NAME,
    FramePackError,
    frames_digest,
    pack,
    unpack,
)
from acrn.fsutil import atomic_dir, atomic_write
from acrn.preflight import ffmpeg_problem

__all__ = ["extract_frames", "frames_digest", "frames_report", "pack", "unpack"]

VIDEO_EXTENSIONS = (".mkv", ".mp4", ".webm")
FRAME_TEMPLATE = "img_{:05d}.jpg"
FFMPEG_PATTERN = "img_%05d.jpg"
FRAME_TOLERANCE = 2
ROUTES = ("one-pass", "mmaction2")
PIPE = "pipe:1"  # the zip layout: ffmpeg writes the JPEGs to its stdout (-f image2pipe)


class FrameExtractionError(RuntimeError):
    """A video could not be turned into verified frames; the message names the video."""


# --------------------------------------------------------------------------- ffmpeg facts


@functools.lru_cache(maxsize=1)
def ffmpeg_build() -> dict:
    """``ffmpeg -version``: the binary's path, version line and configuration line."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise FrameExtractionError(
            "ffmpeg not found on PATH (install the system package: apt-get install ffmpeg)"
        )
    out = subprocess.run(
        [exe, "-hide_banner", "-version"], capture_output=True, text=True, check=True
    ).stdout
    lines = out.splitlines()
    configuration = next((ln for ln in lines if ln.startswith("configuration:")), "")
    return {
        "path": exe,
        "version": lines[0] if lines else "",
        "built_with": lines[1] if len(lines) > 1 else "",
        "configuration": configuration.removeprefix("configuration:").strip(),
    }


@functools.lru_cache(maxsize=1)
def ffmpeg_decoders() -> frozenset[str]:
    """Names of the video decoders this ffmpeg has (``ffmpeg -decoders``)."""
    out = subprocess.run(
        [ffmpeg_build()["path"], "-hide_banner", "-decoders"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] == "V":
            names.add(parts[1])
    return frozenset(names)


def check_decoder(codec: str, video: str, decoders: frozenset[str] | None = None) -> None:
    """Fail clearly when this ffmpeg cannot decode ``codec`` (VP8/VP9 need the vpx decoder)."""
    decoders = ffmpeg_decoders() if decoders is None else decoders
    if codec in ("vp8", "vp9"):
        wanted = {codec, "libvpx" if codec == "vp8" else "libvpx-vp9"}
        if not wanted & decoders:
            raise FrameExtractionError(
                f"{video}: {codec.upper()} video needs the vpx decoder ({' or '.join(sorted(wanted))})"
                f", which this ffmpeg lacks ({ffmpeg_build()['version']}); install a full ffmpeg "
                "build (Debian: apt-get install ffmpeg)"
            )
    elif codec not in decoders:
        raise FrameExtractionError(f"{video}: this ffmpeg has no decoder for codec {codec!r}")


def _input_name(path: Path) -> str:
    # "file:" keeps ffmpeg from reading a leading '-' as an option or a 'x:' as a protocol
    return "file:" + str(path.resolve())


def probe_video(video: str | os.PathLike) -> dict:
    """The first video stream (codec, size, pixel aspect, frame rate) and the other streams."""
    video = Path(video)
    try:
        info = ffmpeg.probe(_input_name(video))
    except ffmpeg.Error as e:
        msg = (e.stderr or b"").decode(errors="replace").strip().splitlines()
        raise FrameExtractionError(
            f"{video}: not a readable video (ffprobe: {msg[-1] if msg else 'failed'})"
        ) from e
    streams = info.get("streams") or []
    vstreams = [s for s in streams if s.get("codec_type") == "video"]
    if not vstreams:
        raise FrameExtractionError(f"{video}: no video stream")
    s = vstreams[0]
    fmt = info.get("format", {})
    return {
        "codec": s.get("codec_name"),
        "width": int(s.get("width") or 0),
        "height": int(s.get("height") or 0),
        "sample_aspect_ratio": s.get("sample_aspect_ratio") or "1:1",
        "r_frame_rate": s.get("r_frame_rate"),
        "avg_frame_rate": s.get("avg_frame_rate"),
        "container": fmt.get("format_name"),
        "duration": float(fmt["duration"]) if fmt.get("duration") else None,
        "streams": [f"{x.get('codec_type')}:{x.get('codec_name')}" for x in streams],
    }


# --------------------------------------------------------------------------- helpers


def video_id(path: str | os.PathLike) -> str:
    name = os.path.basename(os.fspath(path))
    for ext in VIDEO_EXTENSIONS:
        if name.endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)]
    raise FrameExtractionError(f"{path}: not a {'/'.join(VIDEO_EXTENSIONS)} video file name")


def _num(x: float) -> str:
    """A number as ffmpeg reads it exactly (900, 0.5, 30000/1001)."""
    if isinstance(x, Fraction):
        return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def expected_frames(duration: float, fps: float) -> int:
    """``round(duration * fps)``, computed exactly."""
    exact = Fraction(duration).limit_denominator(10**6) * Fraction(fps).limit_denominator(10**6)
    return round(exact)


def resized(width: int, height: int, short_side: int | None) -> tuple[int, int] | None:
    """Output size for a short-side resize (long side rounded to the nearest pixel), or None."""
    if not short_side:
        return None
    if width <= 0 or height <= 0:
        raise ValueError(f"bad frame size {width}x{height}")
    if width <= height:
        return short_side, max(1, round(height * short_side / width))
    return max(1, round(width * short_side / height)), short_side


frame_files = framepack.frame_files


def _pattern(out_dir: Path) -> str:
    """``out_dir/img_%05d.jpg`` with any '%' of the folder's path escaped for ffmpeg."""
    pattern = str(out_dir.resolve() / FFMPEG_PATTERN.replace("%05d", "\0")).replace("%", "%%")
    return pattern.replace("\0", "%05d")


def _head() -> list[str]:
    return [ffmpeg_build()["path"], "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error"]


def build_command(
    video: Path,
    out_dir: Path | None,
    start: float,
    duration: float,
    fps: float,
    quality: int,
    size: tuple[int, int] | None = None,
) -> list[str]:
    """The one-pass ffmpeg command (an argument list, never a shell string): JPEG files in
    ``out_dir``, or (``out_dir=None``) the same JPEGs back to back on stdout (image2pipe)."""
    out_opts: dict = {"r": _num(fps), "q:v": str(quality), "an": None, "sn": None}
    if size is not None:
        # -s (not -vf scale): a filter graph would change ffmpeg's frame-rate conversion
        out_opts["s"] = f"{size[0]}x{size[1]}"
    if out_dir is None:
        out_opts["f"] = "image2pipe"
    stream = ffmpeg.input(_input_name(video), ss=_num(start), t=_num(duration))
    stream = ffmpeg.output(stream, PIPE if out_dir is None else _pattern(out_dir), **out_opts)
    return _head() + stream.get_args()


def mmaction2_commands(
    video: Path,
    cut: Path,
    out_dir: Path | None,
    start: float,
    duration: float,
    fps: float,
    quality: int,
) -> list[list[str]]:
    """MMAction2 0.x's two commands, as ACRN's frames were made (argument lists).

    ``tools/data/ava/cut_videos.sh`` as of d2a1302a (#807, 2021-04-14; unchanged at ACRN's
    commit 7ea0e01d, #891, 2021-05-31), then ``extract_rgb_frames_ffmpeg.sh``::

        ffmpeg -ss 900 -t 901 -i VIDEO -r 30 -strict experimental videos_15min/NAME
        ffmpeg -i videos_15min/NAME -r 30 -q:v 1 rawframes/ID/img_%05d.jpg

    ``cut`` must carry the video's file name (its extension picks the cut's container and so
    ffmpeg's default codecs: .mkv H.264 + Vorbis, .mp4 H.264 + AAC, .webm VP9 + Opus). Only
    logging options are added (they do not change the output); ``out_dir=None`` (the zip
    layout) sends the second command's JPEGs to stdout (``-f image2pipe pipe:1``).
    """
    first = [_input_name(video), "-r", _num(fps), "-strict", "experimental"]
    first = ["-ss", _num(start), "-t", _num(duration), "-i", *first, "file:" + str(cut.resolve())]
    second = ["-i", "file:" + str(cut.resolve()), "-r", _num(fps), "-q:v", str(quality)]
    target = ["-f", "image2pipe", PIPE] if out_dir is None else [_pattern(out_dir)]
    return [_head() + first, _head() + second + target]


def _params(start, duration, fps, quality, short_side, route="one-pass") -> dict:
    return {
        "start": float(start),
        "duration": float(duration),
        "fps": float(fps),
        "quality": int(quality),
        "short_side": int(short_side) if short_side else None,
        "route": route,
    }


def _existing(out: Path, video: Path, params: dict, layout: str) -> dict | None:
    """The record of a complete extraction in ``out`` with these parameters and layout (skip),
    or None when the zip layout must be (re-)extracted into ``out`` (no zip: it was moved
    aside as damaged, or a run stopped); fails on anything else, naming what to do."""
    try:
        info = framepack.read_info(out)
    except FramePackError as e:
        raise FrameExtractionError(f"{e}; delete {out} to extract {video} again") from None
    if info is None:
        if layout == "zip" and not frame_files(out):
            return None  # an empty folder, damaged or temporary zips only
        raise FrameExtractionError(
            f"{out}: exists but has no readable {INFO_NAME} (not made by acrn.frames?); "
            f"delete it to extract {video} again"
        )
    recorded_layout = info.get("layout", "dir")
    if layout == "zip" and recorded_layout == "zip" and not (out / ZIP_NAME).is_file():
        return None
    if recorded_layout != layout:
        how = "pack" if layout == "zip" else "unpack"
        raise FrameExtractionError(
            f"{out}: extracted in the {recorded_layout!r} layout, not {layout!r}; convert it with "
            f"`python -m acrn.frames {how} {out}` (or delete it to extract {video} again)"
        )
    recorded = dict(info.get("params") or {})
    recorded.setdefault("route", "one-pass")  # records written before routes existed
    if recorded != params:
        raise FrameExtractionError(
            f"{out}: already extracted with {recorded}, not {params}; delete it to "
            f"extract {video} again"
        )
    if layout == "zip":
        try:
            n = len(framepack.zip_entries(out / ZIP_NAME, verify=False))
        except FramePackError:
            framepack.quarantine(out / ZIP_NAME)  # damaged: moved aside, extracted again
            return None
    else:
        n = len(frame_files(out))
    if n != info.get("frames"):
        raise FrameExtractionError(
            f"{out}: {INFO_NAME} records {info.get('frames')} frames but {n} are there; delete "
            f"it to extract {video} again"
        )
    return info


def _remove_stale_temp_dirs(out: Path) -> None:
    """Temp folders ``.<id>.*.tmp`` a killed run left next to ``out`` (``atomic_dir`` and the
    mmaction2 route's cut folder are named so), and temporary zips in ``out``; each can hold
    tens of thousands of JPEGs or a 15-minute video. One job per video (as Snakemake runs it)
    is assumed: a concurrent extraction of the same video would lose its temp files and fail."""
    framepack.remove_stale_temps(out)
    if not out.parent.is_dir():
        return
    for p in out.parent.glob(f".{glob.escape(out.name)}.*.tmp"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


# --------------------------------------------------------------------------- extraction


def _run(cmd: list[str], video: Path, what: str, sink=None) -> list[str]:
    """Run one ffmpeg command; its error-level messages (decoder complaints), or fail.
    ``sink(jpeg_bytes)`` receives each JPEG of an image2pipe command as it comes."""
    if sink is None:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
        stderr, rc = proc.stderr, proc.returncode
    else:
        stderr, rc = _run_piped(cmd, video, sink)
    messages = [ln for ln in stderr.splitlines() if ln.strip()]
    if rc != 0:
        raise FrameExtractionError(
            f"{video}: ffmpeg failed{what} (exit {rc}): "
            + (" | ".join(messages[-5:]) or "no message")
        )
    return messages


def _run_piped(cmd: list[str], video: Path, sink) -> tuple[str, int]:
    """ffmpeg writing JPEGs to its stdout: split them (``framepack.JpegSplitter``) into
    ``sink`` as they come; no frame touches the file system. (stderr, exit status)."""
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    err: list[bytes] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
    reader.start()
    splitter = framepack.JpegSplitter(f"{video}: ffmpeg's image2pipe output")
    try:
        fd = proc.stdout.fileno()
        while chunk := os.read(fd, 1 << 16):
            for jpeg in splitter.feed(chunk):
                sink(jpeg)
    except BaseException:
        proc.kill()
        raise
    finally:
        proc.stdout.close()
        rc = proc.wait()
        reader.join()
        proc.stderr.close()
    if rc == 0:
        splitter.close()
    return b"".join(err).decode(errors="replace"), rc


def _run_route(route, video, tmp, out, start, duration, fps, quality, size, sink=None):
    """Run the route's ffmpeg command(s) into ``tmp`` (``sink``: piped JPEGs, ``tmp`` None);
    (commands as recorded, messages)."""
    if route == "one-pass":
        cmd = build_command(video, tmp, start, duration, fps, quality, size)
        return [cmd], _run(cmd, video, "", sink)
    with tempfile.TemporaryDirectory(
        dir=out.parent, prefix=f".{out.name}.cut.", suffix=".tmp"
    ) as d:
        cut = Path(d) / video.name
        cmds = mmaction2_commands(video, cut, tmp, start, duration, fps, quality)
        messages = _run(cmds[0], video, " cutting the window (cut_videos.sh)")
        what = " extracting the cut (extract_rgb_frames_ffmpeg.sh)"
        messages += [f"[cut] {m}" for m in _run(cmds[1], video, what, sink)]
    cut_name = cmds[0][-1]
    return [[c.replace(cut_name, f"file:CUT/{video.name}") for c in cmd] for cmd in cmds], messages


def _verify_frames(video: Path, names: list[str], source: dict, expected: int, params: dict):
    """Fail naming the video unless ``names`` are img_00001.jpg.. with about ``expected`` frames."""
    n = len(names)
    if abs(n - expected) > FRAME_TOLERANCE:
        where = (
            f", the video lasts {source['duration']:.3f} s"
            if source.get("duration") is not None
            else ""
        )
        raise FrameExtractionError(
            f"{video}: {n} frames extracted, expected {expected} +- {FRAME_TOLERANCE} "
            f"({params['duration']:g} s from second {params['start']:g} at {params['fps']:g} fps"
            f"{where}): the video is truncated, corrupt or shorter than the window"
        )
    if names != [FRAME_TEMPLATE.format(i) for i in range(1, n + 1)]:
        raise FrameExtractionError(f"{video}: frame files are not numbered 1..{n}")


def _check_decode(video: Path, errors: list[str], strict: bool) -> None:
    if errors and strict:
        raise FrameExtractionError(
            f"{video}: ffmpeg reported {len(errors)} decoding error(s) (damaged packets) and "
            "strict decoding is on: " + " | ".join(errors[:5])
        )


def _extract_dir(job: dict) -> dict:
    """The ``dir`` layout: ffmpeg writes the files into a temporary folder, renamed into place."""
    video, out = job["video"], job["out"]
    with atomic_dir(out) as tmp:
        cmds, errors = _run_route(job["route"], video, tmp, out, *job["ffmpeg"])
        _check_decode(video, errors, job["strict"])
        entries = framepack.dir_entries(tmp)
        _verify_frames(video, [e[0] for e in entries], *job["verify"])
        empty = [name for name, _, size in entries if size == 0]
        if empty:
            raise FrameExtractionError(f"{video}: empty frame file(s) {empty[:5]}")
        cmds = [[c.replace(str(tmp.resolve()), str(out)) for c in cmd] for cmd in cmds]
        info = job["record"](cmds, errors, entries)
        framepack.write_info(tmp, info)
    return info


def _extract_zip(job: dict) -> dict:
    """The ``zip`` layout: ffmpeg's image2pipe output split into the members of a temporary
    zip as it comes; verified (count, every member's CRC), renamed to ``frames.zip``, then
    ``extract.json`` is written."""
    video, out = job["video"], job["out"]
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with framepack.ZipFrameWriter(out, FRAME_TEMPLATE) as w:
            cmds, errors = _run_route(job["route"], video, None, out, *job["ffmpeg"], sink=w.add)
            _check_decode(video, errors, job["strict"])
            w.commit(lambda names: _verify_frames(video, names, *job["verify"]))
    except BaseException as e:
        if created:  # leave nothing behind
            with contextlib.suppress(OSError):
                out.rmdir()
        if isinstance(e, FramePackError):
            raise FrameExtractionError(f"{video}: {e}") from None
        raise
    info = job["record"](cmds, errors, w.entries)
    framepack.write_info(out, info)
    return info


def extract_frames(
    video: str | os.PathLike,
    out: str | os.PathLike,
    start: float = 900,
    duration: float = 901,
    fps: float = 30,
    quality: int = 1,
    short_side: int | None = None,
    strict_decode: bool = False,
    route: str = "one-pass",
    allow_decode_errors: bool | None = None,
    layout: str = "zip",
) -> dict:
    """Extract ``video``'s window into ``out`` (named by the video id); returns the info record.

    ``route``: ``"one-pass"`` (default) or ``"mmaction2"`` (0.x's two commands literally, see
    :func:`mmaction2_commands`). ``layout``: ``"zip"`` (default: ``out/frames.zip`` +
    ``out/extract.json``) or ``"dir"`` (``out/img_00001.jpg``, ...; see ``acrn.framepack``).
    Decoder messages (damaged packets, which ffmpeg conceals) are recorded in
    ``decode_errors``; ``strict_decode=True`` makes them fatal.
    (``allow_decode_errors`` is the former name of the opposite switch: ``False`` means strict.)
    Skips (``info["skipped"] = True``) when ``out`` already holds a complete extraction with the
    same parameters and layout; a zip layout folder whose ``frames.zip`` is missing (moved
    aside as damaged) is extracted again. Raises :class:`FrameExtractionError` naming the
    video otherwise.
    """
    video, out = Path(video), Path(out)
    if allow_decode_errors is not None:
        strict_decode = not allow_decode_errors
    vid = video_id(video)
    if out.name != vid:
        raise FrameExtractionError(
            f"{out}: the frame folder must be named by the video id {vid!r} of {video}"
        )
    _check_args(start, duration, fps, quality, short_side, route, layout)
    params = _params(start, duration, fps, quality, short_side, route)
    if out.exists():
        info = _existing(out, video, params, layout)
        if info is not None:
            info["skipped"] = True
            return info
    if not video.is_file():
        raise FrameExtractionError(f"{video}: no such video file")

    source = probe_video(video)
    check_decoder(source["codec"], str(video))
    _remove_stale_temp_dirs(out)
    size = resized(source["width"], source["height"], short_side)
    expected = expected_frames(duration, fps)
    t0 = time.monotonic()

    def record(cmds: list, errors: list, entries: list) -> dict:
        info = {
            "video": video.name,
            "video_id": vid,
            "video_bytes": video.stat().st_size,
            "params": params,
            "layout": layout,
            "frames": len(entries),
            "frames_digest": framepack.digest_of(entries),
            "frames_bytes": sum(e[2] for e in entries),
            "expected_frames": expected,
            "tolerance": FRAME_TOLERANCE,
            "frame_template": FRAME_TEMPLATE.replace("{:05d}", "%05d"),
            "frame_size": list(size) if size else [source["width"], source["height"]],
            "source": source,
            "decode_errors": errors,
            "ffmpeg": ffmpeg_build(),
            "commands": cmds,
            "seconds": round(time.monotonic() - t0, 3),
        }
        info["command"] = info["commands"][-1] if route == "one-pass" else None
        return info

    job = {
        "video": video,
        "out": out,
        "route": route,
        "ffmpeg": (start, duration, fps, quality, size),
        "strict": strict_decode,
        "verify": (source, expected, params),
        "record": record,
    }
    info = (_extract_zip if layout == "zip" else _extract_dir)(job)
    info["skipped"] = False
    return info


def _check_args(start, duration, fps, quality, short_side, route, layout) -> None:
    if route not in ROUTES:
        raise ValueError(f"bad parameter: route={route!r}, expected one of {ROUTES}")
    if layout not in LAYOUTS:
        raise ValueError(f"bad parameter: layout={layout!r}, expected one of {LAYOUTS}")
    if not (start >= 0 and duration > 0 and fps > 0 and 1 <= int(quality) <= 31):
        raise ValueError(
            f"bad parameters: start={start} (>= 0), duration={duration} (> 0), fps={fps} (> 0), "
            f"quality={quality} (1..31)"
        )
    if short_side is not None and short_side < 1:
        raise ValueError(f"bad parameter: short_side={short_side} (>= 1)")
    if short_side and route == "mmaction2":
        raise ValueError(
            "bad parameters: route='mmaction2' runs 0.x's commands literally, which do not resize"
            f" (short_side={short_side}); use route='one-pass' for resized frames"
        )


# --------------------------------------------------------------------------- report


def _rate_text(rate: str | None) -> str:
    if not rate or rate == "0/0":
        return "?"
    f = Fraction(rate)
    return f"{float(f):.3f}".rstrip("0").rstrip(".") + ("" if f.denominator == 1 else f" ({rate})")


def frames_report(folders: list[str | os.PathLike], title: str = "Frames") -> str:
    """Markdown: one row per extracted video (source fps, size, pixel aspect, streams, frames,
    decoder messages), the videos with decoder messages listed first with their messages."""
    infos = []
    for d in folders:
        p = Path(d) / INFO_NAME
        try:
            infos.append(json.loads(p.read_text()))
        except (OSError, ValueError) as e:
            raise FrameExtractionError(f"{p}: not a readable extraction record ({e})") from e
    damaged = [i for i in infos if i.get("decode_errors")]
    routes = sorted({(i.get("params") or {}).get("route", "one-pass") for i in infos})
    lines = [f"# {title}", ""]
    lines += [
        f"{len(infos)} videos extracted (route: {', '.join(routes) or '-'}); "
        f"{len(damaged)} with decoder messages (damaged packets, concealed by ffmpeg).",
        "",
    ]
    if damaged:
        lines += ["## Videos with decoder messages", ""]
        for i in damaged:
            errs = i["decode_errors"]
            lines.append(f"- `{i['video']}`: {len(errs)} message(s)")
            lines += [f"  - `{m}`" for m in errs[:10]]
            if len(errs) > 10:
                lines.append(f"  - ... {len(errs) - 10} more in its `{INFO_NAME}`")
        lines.append("")
    lines += ["## All videos", ""]
    lines.append(
        "| video | source fps | size | pixel aspect | streams | frames | decoder messages |"
    )
    lines.append("| --- | --: | --: | --: | --- | --: | --: |")
    for i in sorted(infos, key=lambda x: x["video"]):
        s = i.get("source", {})
        lines.append(
            f"| `{i['video']}` | {_rate_text(s.get('r_frame_rate'))} | {s.get('width')}x"
            f"{s.get('height')} | {s.get('sample_aspect_ratio', '1:1')} | "
            f"{' '.join(s.get('streams', [])) or s.get('codec')} | {i['frames']} | "
            f"{len(i.get('decode_errors') or [])} |"
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- CLI


def _report_main(argv) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m acrn.frames report",
        description="Write the frames report (Markdown) of extracted frame folders.",
    )
    ap.add_argument("--out", required=True, help="the report, a .md file")
    ap.add_argument("--title", default="Frames")
    ap.add_argument("folders", nargs="+", help="frame folders (each with its extract.json)")
    args = ap.parse_args(argv)
    try:
        text = frames_report(args.folders, args.title)
    except FrameExtractionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    with atomic_write(args.out) as f:
        f.write(text)
    print(f"{args.out}: {len(args.folders)} videos")
    return 0


def _convert_main(what: str, argv) -> int:
    ap = argparse.ArgumentParser(
        prog=f"python -m acrn.frames {what}",
        description=(
            "Convert one video's frame folder in place: img_NNNNN.jpg files (dir layout, "
            "MMAction2's rawframes) -> one stored frames.zip"
            if what == "pack"
            else "Convert one video's frame folder in place: frames.zip -> img_NNNNN.jpg files"
        )
        + "; extract.json's layout is rewritten, its frames_digest is kept (and checked).",
    )
    ap.add_argument("folder", help="the video's frame folder (with extract.json, if any)")
    args = ap.parse_args(argv)
    try:
        info = (pack if what == "pack" else unpack)(args.folder)
    except (FramePackError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{args.folder}: {info.get('frames')} frames, layout {info.get('layout')}")
    return 0


SUBCOMMANDS = """subcommands:
  python -m acrn.frames report --out REPORT.md DIR [DIR ...]
      the frames report (Markdown) of extracted frame folders
  python -m acrn.frames pack DIR
      convert one video's folder from the dir layout (img_NNNNN.jpg) to frames.zip
  python -m acrn.frames unpack DIR
      convert one video's folder from frames.zip back to img_NNNNN.jpg files
"""


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["report"]:
        return _report_main(argv[1:])
    if argv[:1] in (["pack"], ["unpack"]):
        return _convert_main(argv[0], argv[1:])
    ap = argparse.ArgumentParser(
        prog="python -m acrn.frames",
        description="Extract a video's AVA window as JPEG frames.",
        epilog=SUBCOMMANDS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--video", required=True, help="the .mkv/.mp4/.webm video")
    ap.add_argument("--out", required=True, help="the frame folder, named by the video id")
    ap.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="zip",
        help="zip (default): DIR/frames.zip + DIR/extract.json; dir: one JPEG file per frame",
    )
    ap.add_argument("--start", type=float, default=900, help="window start, seconds (900)")
    ap.add_argument("--duration", type=float, default=901, help="window length, seconds (901)")
    ap.add_argument("--fps", type=float, default=30, help="output frame rate (30)")
    ap.add_argument("--quality", type=int, default=1, help="JPEG -q:v, 1 (best) .. 31 (1)")
    ap.add_argument("--short-side", type=int, default=None, help="resize (default: original)")
    ap.add_argument(
        "--route",
        choices=ROUTES,
        default="one-pass",
        help="one-pass (default): one ffmpeg run; mmaction2: 0.x's cut then extract, literally",
    )
    ap.add_argument(
        "--strict-decode",
        action="store_true",
        help="fail a video ffmpeg reports decoding errors for (default: extract, record them)",
    )
    ap.add_argument(
        "--ffmpeg-major",
        default="any",
        help="fail unless ffmpeg and ffprobe have this major version (default: any)",
    )
    ap.add_argument("--allow-decode-errors", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    try:
        pinned = args.ffmpeg_major if args.ffmpeg_major == "any" else int(args.ffmpeg_major)
    except ValueError:
        ap.error(f"--ffmpeg-major: a major version number or 'any', got {args.ffmpeg_major!r}")
    problem = ffmpeg_problem(pinned)  # on the node that extracts (it may not be the login node)
    if problem:
        print(f"error: {args.video}: {problem}", file=sys.stderr)
        return 1
    try:
        info = extract_frames(
            args.video,
            args.out,
            start=args.start,
            duration=args.duration,
            fps=args.fps,
            quality=args.quality,
            short_side=args.short_side,
            strict_decode=args.strict_decode,
            route=args.route,
            layout=args.layout,
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (FrameExtractionError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    what = "already extracted, skipped" if info["skipped"] else f"{info['frames']} frames"
    n_err = len(info.get("decode_errors") or [])
    if n_err:
        what += f", {n_err} decoder message(s) recorded in {INFO_NAME}"
    print(f"{args.video}: {what} -> {args.out} ({info['ffmpeg']['version']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
