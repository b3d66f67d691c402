"""``python -m acrn.synthetic --out MIRROR_DIR [--seed 0] ...``: see :mod:`acrn.synthetic.mirror`."""

from __future__ import annotations

import argparse
import sys
import time

from acrn.formats import FormatError
from acrn.synthetic.mirror import (
    SyntheticConfig,
    SyntheticError,
    default_names,
    generate,
)


def _pair(text: str, sep: str, what: str) -> tuple[int, int]:
    a, s, b = text.partition(sep)
    try:
        if not s:
            return int(a), int(a)
        return int(a), int(b)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}: expected N or N{sep}M, got {text!r}") from None


def main(argv=None) -> int:
    d = SyntheticConfig()
    ap = argparse.ArgumentParser(
        prog="python -m acrn.synthetic",
        description="Write the synthetic mini-AVA mirror (laid out like AVA's remote sources).",
    )
    ap.add_argument("--out", required=True, help="mirror folder (must not exist)")
    ap.add_argument("--seed", type=int, default=d.seed)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--videos", type=int, help=f"number of videos (default {len(d.names)})")
    g.add_argument("--names", help="comma-separated video file names (<id>.mkv|.mp4|.webm)")
    ap.add_argument("--val-every", type=int, default=d.val_every, help="every Nth video is val")
    ap.add_argument("--start", type=int, default=d.timestamp_start, help="timestamp_start")
    ap.add_argument("--end", type=int, default=d.timestamp_end, help="timestamp_end")
    ap.add_argument("--size", default=f"{d.width}x{d.height}", help="frame size WxH")
    ap.add_argument("--fps", default=",".join(d.fps), help="source frame rates, cycled")
    ap.add_argument("--actors", default="-".join(map(str, d.actors)), help="actors per video")
    ap.add_argument("--actions", default=",".join(d.actions), help="actions to draw from")
    ap.add_argument("--no-audio", action="store_true", help="videos without an audio track")
    ap.add_argument(
        "--no-quirks",
        action="store_true",
        help="no damaged packets, pixel aspect, extra audio or subtitle streams",
    )
    args = ap.parse_args(argv)
    try:
        names = d.names
        if args.videos is not None:
            names = default_names(args.videos)
        elif args.names:
            names = tuple(n for n in args.names.split(",") if n)
        w, h = _pair(args.size, "x", "--size")
        cfg = SyntheticConfig(
            seed=args.seed,
            names=names,
            val_every=args.val_every,
            timestamp_start=args.start,
            timestamp_end=args.end,
            width=w,
            height=h,
            fps=tuple(f for f in args.fps.split(",") if f),
            actors=_pair(args.actors, "-", "--actors"),
            audio=not args.no_audio,
            quirks={} if args.no_quirks else dict(d.quirks),
            actions=tuple(a for a in args.actions.split(",") if a),
        )
    except (SyntheticError, FormatError, argparse.ArgumentTypeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t = time.monotonic()
    try:
        man = generate(cfg, args.out)
    except FileExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    n = {s: sum(v["split"] == s for v in man["videos"]) for s in ("train", "val")}
    win = man["window"]
    print(
        f"{args.out}: {len(man['videos'])} videos ({n['train']} train, {n['val']} val), "
        f"keyframes {win['keyframes'][0]}..{win['keyframes'][-1]}, frames: --start "
        f"{win['frames']['start']} --duration {win['frames']['duration']} "
        f"({time.monotonic() - t:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
