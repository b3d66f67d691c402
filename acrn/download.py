"""Verified, atomic, resumable downloads (http(s), ``file://`` and plain paths), and zip extraction.

``fetch(url, dest)``:

- the bytes go to ``.<name>.part`` next to ``dest``; only a verified file is renamed to ``dest``;
- http(s) transfers use ``requests`` (already a dependency of Snakemake) and resume an existing
  ``.part`` with an HTTP ``Range`` request (a server that ignores it is detected: restart from 0);
- transient failures (connection errors, timeouts, 408/429/5xx, a short body) are retried with
  exponential back-off; a 4xx such as 404 fails at once with the URL and the status;
- the length is checked against ``Content-Length``/``Content-Range`` (and ``size`` if given), the
  content against ``sha256`` if given, else against a ``SHA256SUMS`` file if given, else against the
  8-hex sha256 prefix MMAction2 puts in published checkpoint names (``name-1a2b3c4d.pth``);
- a progress bar (one line every few percent, log-friendly) goes to ``progress`` (stderr).

``extract(zip_path, members, out_dir)`` unpacks only the named members (matched by base name, the
real AVA zips keep their files under a folder), each atomically.

CLI::

    python -m acrn.download fetch URL DEST [--sha256 HEX] [--sums SHA256SUMS] [--size N]
    python -m acrn.download extract ZIP --out DIR MEMBER [MEMBER ...] [--pin MEMBER=SHA256 ...]
    python -m acrn.download same-names REMOTE_LIST SHIPPED_LIST
    python -m acrn.download same-ids ANNOTATIONS_CSV IDS_FILE --out CHECKED
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import sys
import time
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO
from urllib.parse import unquote, urlparse

from acrn.checkpoint import sha8_of_name
from acrn.fsutil import atomic_write, sha256sum

CHUNK = 1 << 20
NET_CHUNK = 1 << 16  # small reads: a dropped connection loses at most this much
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(RuntimeError):
    """A download failed for good; the message names the URL and what went wrong."""


class _Transient(Exception):
    """A failure worth retrying (network error, 5xx, short body)."""


# ---------------------------------------------------------------- verification helpers


def read_sums(path: str | os.PathLike) -> dict[str, str]:
    """Parse a ``sha256sum``-style file into {relative path: hex}; bad lines raise naming the line."""
    out: dict[str, str] = {}
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            m = re.fullmatch(r"([0-9a-fA-F]{64}) [ *](.+)", line)
            if not m:
                raise DownloadError(f"{path}:{lineno}: not a sha256sum line: {line!r}")
            out[m.group(2)] = m.group(1).lower()
    return out


def lookup_sum(sums_path: str | os.PathLike, url: str) -> str:
    """The sha256 that ``sums_path`` records for ``url`` (by path relative to the sums file, else by
    a unique base name)."""
    sums = read_sums(sums_path)
    src = _local_path(url)
    if src is not None:
        with contextlib.suppress(ValueError):
            rel = os.path.relpath(src.resolve(), Path(sums_path).resolve().parent)
            if rel in sums:
                return sums[rel]
    name = Path(unquote(urlparse(url).path)).name if src is None else src.name
    hits = [h for p, h in sums.items() if Path(p).name == name]
    if len(hits) != 1:
        raise DownloadError(
            f"{sums_path}: {'no' if not hits else 'several'} entries for {name!r} (source {url})"
        )
    return hits[0]


def _verify(path: Path, url: str, sha256: str | None, size: int | None, prefix: str | None) -> None:
    n = path.stat().st_size
    if size is not None and n != size:
        raise DownloadError(f"{url}: length mismatch: expected {size} bytes, got {n}")
    if sha256 is None and prefix is None:
        return
    digest = sha256sum(path)
    if sha256 is not None and digest != sha256.lower():
        raise DownloadError(f"{url}: sha256 mismatch: expected {sha256.lower()}, got {digest}")
    if prefix is not None and not digest.startswith(prefix):
        raise DownloadError(
            f"{url}: sha256 mismatch: the name says it starts with {prefix}, got {digest}"
        )


# ---------------------------------------------------------------- progress


class Progress:
    """A log-friendly progress bar: one line per ``step`` fraction (or every ``every`` s)."""

    def __init__(
        self,
        label: str,
        total: int | None,
        stream: TextIO | None,
        start: int = 0,
        step: float = 0.05,
        every: float = 10.0,
    ):
        self.label, self.total, self.stream = label, total, stream
        self.done = start
        self.t0 = time.monotonic()
        self.start = start
        self.step, self.every = step, every
        self.last_frac, self.last_t = -1.0, 0.0

    def update(self, n: int) -> None:
        self.done += n
        self._emit(final=False)

    def close(self) -> None:
        self._emit(final=True)

    def _emit(self, final: bool) -> None:
        if self.stream is None:
            return
        now = time.monotonic()
        frac = self.done / self.total if self.total else 0.0
        if not final and frac - self.last_frac < self.step and now - self.last_t < self.every:
            return
        self.last_frac, self.last_t = frac, now
        rate = (self.done - self.start) / max(now - self.t0, 1e-9)
        mib = 1 << 20
        if self.total:
            bar = "#" * int(frac * 30)
            text = (
                f"[{bar:<30}] {frac * 100:5.1f}% {self.done / mib:9.1f}/{self.total / mib:.1f} MiB "
                f"{rate / mib:7.2f} MiB/s"
            )
        else:
            text = f"{self.done / mib:9.1f} MiB {rate / mib:7.2f} MiB/s"
        print(f"{self.label}: {text}", file=self.stream, flush=True)


# ---------------------------------------------------------------- transfers


def _local_path(url: str) -> Path | None:
    """``file://`` URLs and plain paths map to a local path; http(s) to None."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme and len(parsed.scheme) > 1:
        raise DownloadError(f"{url}: unsupported URL scheme {parsed.scheme!r}")
    return Path(url)


def _copy_local(src: Path, part: Path, url: str, progress: TextIO | None) -> None:
    if not src.is_file():
        raise DownloadError(f"{url}: no such file {src}")
    total = src.stat().st_size
    bar = Progress(src.name, total, progress)
    with open(src, "rb") as fi, open(part, "wb") as fo:
        while block := fi.read(CHUNK):
            fo.write(block)
            bar.update(len(block))
    bar.close()


def _total_from_headers(resp, offset: int) -> int | None:
    if resp.status_code == 206:
        m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", ""))
        if not m or int(m.group(1)) != offset:
            raise _Transient(f"bad Content-Range {resp.headers.get('Content-Range')!r}")
        return None if m.group(3) == "*" else int(m.group(3))
    length = resp.headers.get("Content-Length")
    if length is not None and "Content-Encoding" not in resp.headers:
        return int(length)
    return None


def _http_attempt(session, url: str, part: Path, timeout: float, progress: TextIO | None) -> None:
    """One attempt: resume ``part`` from its current size. Raises _Transient or DownloadError."""
    import requests

    offset = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = session.get(url, headers=headers, stream=True, timeout=timeout, allow_redirects=True)
    except (requests.ConnectionError, requests.Timeout) as e:
        raise _Transient(f"{type(e).__name__}: {e}") from e
    with resp:
        if resp.status_code == 416 and offset:
            # our partial file is at least as long as the resource: check what the server has
            m = re.match(r"bytes \*/(\d+)", resp.headers.get("Content-Range", ""))
            if m and int(m.group(1)) == offset:
                return
            part.unlink()
            raise _Transient("416 Range Not Satisfiable on a stale partial file; restarting")
        if resp.status_code in _RETRY_STATUS:
            raise _Transient(f"HTTP {resp.status_code} {resp.reason}")
        if resp.status_code not in (200, 206):
            raise DownloadError(f"{url}: HTTP {resp.status_code} {resp.reason}")
        if resp.status_code == 200 and offset:
            print(
                f"{url}: server ignored the Range request; restarting from 0",
                file=progress or sys.stderr,
            )
            offset = 0
        total = _total_from_headers(resp, offset)
        bar = Progress(Path(urlparse(url).path).name, total, progress, start=offset)
        got = offset
        try:
            with open(part, "r+b" if offset else "wb") as f:
                f.seek(offset)
                f.truncate()
                for block in resp.iter_content(NET_CHUNK):
                    f.write(block)
                    got += len(block)
                    bar.update(len(block))
                f.flush()
                os.fsync(f.fileno())
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as e:
            raise _Transient(f"interrupted after {got} bytes: {type(e).__name__}") from e
        bar.close()
        if total is not None and got != total:
            raise _Transient(f"short body: got {got} of {total} bytes")


def fetch(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    sums: str | os.PathLike | None = None,
    size: int | None = None,
    retries: int = 5,
    backoff: float = 2.0,
    timeout: float = 60.0,
    progress: TextIO | None = sys.stderr,
) -> Path:
    """Download ``url`` to ``dest``, verified and atomic. Returns ``dest``.

    ``dest`` is left untouched unless the full, verified content is there. A ``.part`` file from an
    interrupted run is resumed. Raises DownloadError naming the URL.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if sha256 is None and sums is not None:
        sha256 = lookup_sum(sums, url)
    prefix = sha8_of_name(dest.name) or sha8_of_name(Path(urlparse(url).path).name)
    part = dest.parent / f".{dest.name}.part"
    local = _local_path(url)
    if local is not None:
        _copy_local(local, part, url, progress)
    else:
        import requests

        delay = backoff
        with requests.Session() as session:
            for attempt in range(retries + 1):
                try:
                    _http_attempt(session, url, part, timeout, progress)
                    break
                except _Transient as e:
                    if attempt == retries:
                        raise DownloadError(
                            f"{url}: giving up after {retries + 1} attempts: {e}"
                        ) from e
                    print(
                        f"{url}: {e}; retry {attempt + 1}/{retries} in {delay:.1f} s",
                        file=progress or sys.stderr,
                        flush=True,
                    )
                    time.sleep(delay)
                    delay *= 2
    try:
        _verify(part, url, sha256, size, prefix)
    except DownloadError:
        part.unlink(missing_ok=True)  # a corrupt partial must not be resumed next time
        raise
    os.replace(part, dest)
    return dest


# ---------------------------------------------------------------- zip members


def extract(
    zip_path: str | os.PathLike,
    members: Iterable[str],
    out_dir: str | os.PathLike,
    pins: dict[str, str] | None = None,
) -> list[Path]:
    """Unpack only ``members`` (base names) of ``zip_path`` into ``out_dir``, each atomically.

    ``pins`` maps a member name to its expected sha256: a member whose bytes differ fails
    (nothing written), naming the expected and the actual digest and how to accept a new release.
    """
    out_dir = Path(out_dir)
    pins = pins or {}
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as e:
        raise DownloadError(f"{zip_path}: not a zip file ({e})") from e
    written = []
    with zf:
        by_name: dict[str, list[zipfile.ZipInfo]] = {}
        for info in zf.infolist():
            if not info.is_dir():
                by_name.setdefault(Path(info.filename).name, []).append(info)
        for member in members:
            hits = by_name.get(member, [])
            if len(hits) != 1:
                have = ", ".join(sorted(by_name))
                what = "no member" if not hits else "several members"
                raise DownloadError(f"{zip_path}: {what} named {member!r} (it holds: {have})")
            target = out_dir / member
            with zf.open(hits[0]) as src, atomic_write(target, "wb") as dst:
                digest = hashlib.sha256()
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                _check_pin(zip_path, member, digest.hexdigest(), pins.get(member))
            written.append(target)
    return written


def _check_pin(zip_path, member: str, actual: str, expected: str | None) -> None:
    if expected is None or actual == expected.lower():
        return
    raise DownloadError(
        f"{zip_path}: member {member} has sha256 {actual}, expected {expected} (pinned in the "
        "config's `pins`). The archive is not the release the pin was taken from: if AVA "
        "published a new release on purpose, check the file and put its sha256 in `pins` "
        f"({member}: {actual}), or remove the pin to accept any content"
    )


def compare_file_lists(remote: str | os.PathLike, shipped: str | os.PathLike) -> list[str]:
    """The names of the remote trainval file list, checked against the shipped one by name.

    A CRLF line end or a missing final newline does not make a different list; a different set
    of names fails, naming the names missing from each (count + the first ones).
    """
    from acrn.formats import FormatError, read_file_list

    try:
        got, want = read_file_list(remote), read_file_list(shipped)
    except FormatError as e:
        raise DownloadError(str(e)) from e
    extra, missing = sorted(set(got) - set(want)), sorted(set(want) - set(got))
    if extra or missing:
        parts = []
        for what, names in (("only in the remote list", extra), ("only in the shipped", missing)):
            if names:
                more = f" and {len(names) - 5} more" if len(names) > 5 else ""
                parts.append(f"{len(names)} {what}: {', '.join(names[:5])}{more}")
        raise DownloadError(
            f"{remote} names other videos than {shipped} ({'; '.join(parts)}): the workflow's "
            "jobs come from the shipped list; update it (config `file_list.shipped`) if AVA "
            "changed its list on purpose"
        )
    return got


def compare_video_ids(annotations: str | os.PathLike, ids_file: str | os.PathLike) -> list[str]:
    """The videos of an annotation CSV, checked against a shipped id list (the val ids the
    workflow planned its val-only jobs from): a difference fails, naming the ids."""
    from acrn.formats import FormatError, read_annotations, read_video_ids

    try:
        want = read_video_ids(ids_file)
        got = list(dict.fromkeys(read_annotations(annotations)["video"].astype(str)))
    except FormatError as e:
        raise DownloadError(str(e)) from e
    extra, missing = sorted(set(got) - set(want)), sorted(set(want) - set(got))
    if extra or missing:
        parts = [
            f"{len(ids)} {what}: {', '.join(ids)}"
            for what, ids in ((f"only in {annotations}", extra), (f"only in {ids_file}", missing))
            if ids
        ]
        raise DownloadError(
            f"{annotations} annotates other videos than {ids_file} lists ({'; '.join(parts)}): "
            "the val-only jobs (frames, inference) come from the shipped list; update it "
            "(config `val_videos`) if AVA changed its split on purpose"
        )
    return got


# ---------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m acrn.download", description=__doc__.split("\n\n")[0]
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download one URL (http(s), file://, path) to DEST, verified")
    f.add_argument("url")
    f.add_argument("dest")
    f.add_argument("--sha256", help="expected sha256 (hex)")
    f.add_argument("--sums", help="a SHA256SUMS file that lists the source")
    f.add_argument("--size", type=int, help="expected length in bytes")
    f.add_argument("--retries", type=int, default=5)
    f.add_argument(
        "--backoff", type=float, default=2.0, help="first retry delay, doubled each time"
    )
    f.add_argument("--timeout", type=float, default=60.0)
    x = sub.add_parser("extract", help="unpack only the named members of a zip")
    x.add_argument("zip")
    x.add_argument("members", nargs="+")
    x.add_argument("--out", required=True)
    x.add_argument(
        "--pin",
        action="append",
        default=[],
        metavar="MEMBER=SHA256",
        help="expected sha256 of a member (repeatable)",
    )
    n = sub.add_parser("same-names", help="check a downloaded file list names the shipped videos")
    n.add_argument("remote")
    n.add_argument("shipped")
    i = sub.add_parser("same-ids", help="check the videos of an annotation CSV against an id list")
    i.add_argument("annotations")
    i.add_argument("ids")
    i.add_argument("--out", required=True, help="written (the ids, one per line) when they agree")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "fetch":
            fetch(
                args.url,
                args.dest,
                sha256=args.sha256,
                sums=args.sums,
                size=args.size,
                retries=args.retries,
                backoff=args.backoff,
                timeout=args.timeout,
            )
            print(f"{args.dest}: ok", file=sys.stderr)
        elif args.cmd == "same-names":
            names = compare_file_lists(args.remote, args.shipped)
            print(f"{args.remote}: the {len(names)} names of {args.shipped}", file=sys.stderr)
        elif args.cmd == "same-ids":
            ids = compare_video_ids(args.annotations, args.ids)
            with atomic_write(args.out) as out:
                out.write("".join(f"{v}\n" for v in sorted(ids)))
            print(f"{args.annotations}: the {len(ids)} videos of {args.ids}", file=sys.stderr)
        else:
            pins = dict(p.split("=", 1) for p in args.pin if "=" in p)
            if len(pins) != len(args.pin):
                ap.error(f"--pin: expected MEMBER=SHA256, got {args.pin}")
            for p in extract(args.zip, args.members, args.out, pins=pins):
                print(f"{p}: ok", file=sys.stderr)
    except DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
