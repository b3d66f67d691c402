"""One video's frames as one stored zip (``frames.zip``, the default layout) or as files (``dir``).

- ``zip``: ``<frames>/<id>/frames.zip`` (``ZIP_STORED``, members ``img_00001.jpg``, ... holding
  the bytes ffmpeg wrote) next to ``extract.json``: 2 files per video instead of ~27,000.
- ``dir``: ``<frames>/<id>/img_00001.jpg``, ... and ``extract.json`` (MMAction2's rawframes).

``extract.json`` says which (``"layout"``; a record without it is ``dir``) and carries
``"frames_digest"``: sha256 over the lines ``f"{name} {crc32:08x} {size}\\n"`` of every frame in
name order, the same for both layouts of the same bytes (:func:`frames_digest` recomputes it).

Writing (:class:`ZipFrameWriter`): members go into a temporary zip next to ``frames.zip`` as they
come (:class:`JpegSplitter` cuts ffmpeg's ``image2pipe`` stream into JPEG files by their markers);
the zip is renamed into place only once every member was read back with a matching CRC.
:func:`pack` / :func:`unpack` convert one video's folder in place; the commit point is
``extract.json`` (its ``layout`` is rewritten atomically, the other layout's files go after it).
:func:`quarantine` moves a damaged zip aside (``frames.zip.damaged-<UTC time>``, never deleted),
so that the workflow sees a missing output and extracts the video again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import re
import shutil
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from acrn.fsutil import atomic_write

ZIP_NAME = "frames.zip"
INFO_NAME = "extract.json"
LAYOUTS = ("zip", "dir")
FRAME_RE = re.compile(r"^img_(\d{5,})\.jpg$")
# fixed member metadata: the same frames give the same zip bytes
_DATE = (1980, 1, 1, 0, 0, 0)
# the first marker after entropy-coded data: 0xFF followed by neither a stuffed 0x00, a restart
# marker RST0-7 nor a fill byte 0xFF
_MARKER_AFTER_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8)])  # TEM, RSTn: markers without a length


class FramePackError(RuntimeError):
    """A frames zip or folder is malformed, damaged or inconsistent; the message names it."""


# --------------------------------------------------------------------------- digest


def digest_of(entries: Iterable[tuple[str, int, int]]) -> str:
    """sha256 hex over ``f"{name} {crc32:08x} {size}\\n"`` of ``(name, crc32, size)`` in name order."""
    h = hashlib.sha256()
    for name, crc, size in sorted(entries):
        h.update(f"{name} {crc:08x} {size}\n".encode())
    return h.hexdigest()


def read_info(folder: str | os.PathLike) -> dict | None:
    """``folder/extract.json`` as a dict, or None when there is none."""
    p = Path(folder) / INFO_NAME
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise FramePackError(f"{p}: not a readable extraction record ({e})") from e


def write_info(folder: str | os.PathLike, info: dict) -> None:
    with atomic_write(Path(folder) / INFO_NAME) as f:
        json.dump(info, f, indent=1)
        f.write("\n")


def frame_files(folder: Path) -> list[Path]:
    """The ``img_NNNNN.jpg`` files of a ``dir`` folder, in name order."""
    return sorted(p for p in Path(folder).iterdir() if FRAME_RE.match(p.name))


def layout_of(folder: str | os.PathLike) -> str:
    """``extract.json``'s layout; without a record: ``zip`` when ``frames.zip`` is there, else ``dir``."""
    info = read_info(folder)
    if info is not None:
        return info.get("layout", "dir")
    return "zip" if (Path(folder) / ZIP_NAME).is_file() else "dir"


def _zip_entries(zf: zipfile.ZipFile, where: str, verify: bool) -> list[tuple[str, int, int]]:
    entries = []
    for zi in zf.infolist():
        if not FRAME_RE.match(zi.filename):
            raise FramePackError(f"{where}: unexpected member {zi.filename!r}")
        if zi.compress_type != zipfile.ZIP_STORED:
            raise FramePackError(f"{where}: member {zi.filename} is compressed, not stored")
        if verify:
            try:
                zf.read(zi)  # zipfile compares the data's CRC-32 with the recorded one
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
                raise FramePackError(f"{where}: member {zi.filename}: {e}") from e
        entries.append((zi.filename, zi.CRC, zi.file_size))
    return entries


def zip_entries(path: str | os.PathLike, verify: bool = True) -> list[tuple[str, int, int]]:
    """``(name, crc32, size)`` of every member; ``verify`` reads each one and checks its CRC."""
    try:
        with zipfile.ZipFile(path) as zf:
            return _zip_entries(zf, str(path), verify)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise FramePackError(f"{path}: damaged or unreadable zip ({e})") from e


def dir_entries(folder: str | os.PathLike) -> list[tuple[str, int, int]]:
    """``(name, crc32, size)`` of every frame file, CRCs computed from the bytes."""
    out = []
    for p in frame_files(Path(folder)):
        data = p.read_bytes()
        out.append((p.name, zlib.crc32(data), len(data)))
    return out


def frames_digest(folder: str | os.PathLike, verify: bool = True) -> str:
    """The ``frames_digest`` of a video's folder, recomputed from its frames.

    ``zip``: from the members' CRC-32 and sizes; ``verify`` (default) reads every member and
    checks its data against the stored CRC first (``verify=False`` trusts the zip's directory).
    ``dir``: CRC-32 of every file. Both give the same digest for the same bytes."""
    folder = Path(folder)
    if layout_of(folder) == "zip":
        entries = zip_entries(folder / ZIP_NAME, verify=verify)
    else:
        entries = dir_entries(folder)
    if not entries:
        raise FramePackError(f"{folder}: no frames")
    return digest_of(entries)


# --------------------------------------------------------------------------- reading


_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_EOCD64_LOC = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_CDIR = struct.Struct("<4s6H3L5H2L")  # central directory entry, 46 bytes
_LOCAL = struct.Struct("<4s5H3L2H")  # local file header, 30 bytes


@dataclasses.dataclass
class ZipIndex:
    """Where each frame member of a stored zip is: ``numbers`` (the N of img_NNNNN.jpg,
    ascending), the offset of its local header, its size and its CRC-32 (compact: 20 bytes a
    frame, so a worker can keep many videos' indices)."""

    numbers: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray
    crcs: np.ndarray

    def find(self, number: int) -> int | None:
        i = int(np.searchsorted(self.numbers, number))
        return i if i < len(self.numbers) and self.numbers[i] == number else None


def _eocd(fd: int, file_size: int) -> tuple[int, int, int]:
    """(entries, central directory size, offset) from the end records (ZIP64 too)."""
    tail_len = min(file_size, _EOCD.size + 0xFFFF)
    tail = os.pread(fd, tail_len, file_size - tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + _EOCD.size > len(tail):
        raise FramePackError("no end-of-central-directory record (truncated?)")
    _, _, _, _, count, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, at)
    if 0xFFFF in (count,) or 0xFFFFFFFF in (cd_size, cd_offset):
        loc_at = at - _EOCD64_LOC.size
        if loc_at < 0:
            raise FramePackError("ZIP64 end record locator missing")
        sig, _, eocd64_offset, _ = _EOCD64_LOC.unpack_from(tail, loc_at)
        rec = os.pread(fd, _EOCD64.size, eocd64_offset)
        if sig != b"PK\x06\x07" or len(rec) < _EOCD64.size or rec[:4] != b"PK\x06\x06":
            raise FramePackError("damaged ZIP64 end record")
        _, _, _, _, _, _, _, count, cd_size, cd_offset = _EOCD64.unpack(rec)
    return count, cd_size, cd_offset


def _zip64_extra(extra: bytes, need: list[bool]) -> list[int]:
    """The 8-byte values of the ZIP64 extra field (id 1) for the fields marked in ``need``."""
    i = 0
    while i + 4 <= len(extra):
        tag, size = struct.unpack_from("<2H", extra, i)
        if tag == 1:
            values = list(struct.unpack_from(f"<{size // 8}Q", extra, i + 4))
            return [values.pop(0) if n else None for n in need]
        i += 4 + size
    raise FramePackError("ZIP64 sizes/offset without a ZIP64 extra field")


def _u(buf: np.ndarray, at: np.ndarray, width: int) -> np.ndarray:
    """Little-endian unsigned integers of ``width`` bytes at positions ``at`` of ``buf``."""
    out = np.zeros(len(at), dtype=np.int64)
    for k in range(width):
        out |= buf[at + k].astype(np.int64) << (8 * k)
    return out


def _rows_fast(cd: bytes, count: int) -> np.ndarray | None:
    """The central directory parsed with numpy: [number, offset, size, crc] per entry, or None
    when it is not the regular shape of a frames zip (the per-entry parser decides then)."""
    buf = np.frombuffer(cd, dtype=np.uint8)
    if len(buf) < 46:
        return None
    sig = np.flatnonzero(
        (buf[:-3] == 0x50) & (buf[1:-2] == 0x4B) & (buf[2:-1] == 1) & (buf[3:] == 2)
    )
    if len(sig) != count or (len(sig) and (sig[0] != 0 or sig[-1] + 46 > len(buf))):
        return None
    nlen, xlen, clen = _u(buf, sig + 28, 2), _u(buf, sig + 30, 2), _u(buf, sig + 32, 2)
    if not np.array_equal(np.append(sig[1:], len(buf)), sig + 46 + nlen + xlen + clen):
        return None  # a signature inside a record: not a plain chain
    method, flags = _u(buf, sig + 10, 2), _u(buf, sig + 8, 2)
    usize, csize, offset = _u(buf, sig + 24, 4), _u(buf, sig + 20, 4), _u(buf, sig + 42, 4)
    if (method != 0).any() or (flags & 1).any() or (nlen != 13).any():
        return None
    if (usize == 0xFFFFFFFF).any() or (csize == 0xFFFFFFFF).any():
        return None
    names = buf[(sig + 46)[:, None] + np.arange(13)]
    if (
        not (names[:, :4] == np.frombuffer(b"img_", np.uint8)).all()
        or not (names[:, 9:] == np.frombuffer(b".jpg", np.uint8)).all()
    ):
        return None
    digits = names[:, 4:9].astype(np.int64) - 48
    if ((digits < 0) | (digits > 9)).any():
        return None
    numbers = digits @ np.array([10000, 1000, 100, 10, 1])
    big = offset == 0xFFFFFFFF  # past 4 GiB: the offset is in the ZIP64 extra field
    if big.any():
        x = sig[big] + 46 + 13
        if (_u(buf, x, 2) != 1).any() or (xlen[big] < 12).any():
            return None
        offset[big] = _u(buf, x + 4, 8)
    return np.stack([numbers, offset, usize, _u(buf, sig + 16, 4)], axis=1)


def _rows_loop(cd: bytes, count: int) -> np.ndarray:
    """The central directory parsed entry by entry (any stored frames zip)."""
    rows, i = [], 0
    for _ in range(count):
        if cd[i : i + 4] != b"PK\x01\x02":
            raise FramePackError(f"damaged central directory (entry {len(rows) + 1})")
        f = _CDIR.unpack_from(cd, i)
        flags, method, crc, csize, usize, nlen, xlen, clen, offset = (
            f[3], f[4], f[7], f[8], f[9], f[10], f[11], f[12], f[16]
        )  # fmt: skip
        name = cd[i + 46 : i + 46 + nlen].decode("utf-8", "replace")
        m = FRAME_RE.match(name)
        if m is None or method != zipfile.ZIP_STORED or flags & 1:
            raise FramePackError(f"member {name!r} is not a stored frame")
        if 0xFFFFFFFF in (usize, csize, offset):
            extra = cd[i + 46 + nlen : i + 46 + nlen + xlen]
            u, _, o = _zip64_extra(extra, [v == 0xFFFFFFFF for v in (usize, csize, offset)])
            usize, offset = u if u is not None else usize, o if o is not None else offset
        rows.append((int(m.group(1)), offset, usize, crc))
        i += 46 + nlen + xlen + clen
    return np.array(rows, dtype=np.int64).reshape(-1, 4)


def read_zip_index(fd: int) -> ZipIndex:
    """Parse a frames zip's central directory (stored members named img_NNNNN.jpg only);
    ``FramePackError`` (without the path: the caller adds it) when it is damaged."""
    file_size = os.fstat(fd).st_size
    count, cd_size, cd_offset = _eocd(fd, file_size)
    if cd_offset + cd_size > file_size:
        raise FramePackError("central directory beyond the end of the file (truncated?)")
    cd = os.pread(fd, cd_size, cd_offset)
    rows = _rows_fast(cd, count)
    if rows is None:
        rows = _rows_loop(cd, count)
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    if (rows[:, 1] + rows[:, 2] > file_size).any():
        raise FramePackError("a member lies beyond the end of the file (truncated?)")
    return ZipIndex(
        rows[:, 0].astype(np.int32),
        rows[:, 1].copy(),
        rows[:, 2].astype(np.int32),
        rows[:, 3].astype(np.uint32),
    )


def read_member(fd: int, index: ZipIndex, i: int) -> bytes:
    """The bytes of member ``i`` of ``index`` (``os.pread``: no shared file position), its
    CRC-32 checked; ``FramePackError`` naming what is wrong."""
    offset, size = int(index.offsets[i]), int(index.sizes[i])
    head = os.pread(fd, _LOCAL.size + 64 + size, offset)  # header, name, extra, data
    if len(head) < _LOCAL.size or head[:4] != b"PK\x03\x04":
        raise FramePackError("no local header where the directory says (truncated?)")
    nlen, xlen = _LOCAL.unpack_from(head)[9:11]
    start = _LOCAL.size + nlen + xlen
    data = head[start : start + size]
    if len(data) < size and len(head) == _LOCAL.size + 64 + size:  # a long extra field
        data = os.pread(fd, size, offset + start)
    if len(data) != size:
        raise FramePackError(f"{len(data)} of {size} bytes (truncated)")
    crc = zlib.crc32(data)
    if crc != int(index.crcs[i]):
        raise FramePackError(f"CRC-32 {crc:08x}, the zip records {int(index.crcs[i]):08x}")
    return data


# --------------------------------------------------------------------------- JPEG stream


class JpegSplitter:
    """Cuts a stream of back-to-back JPEG files (ffmpeg ``-f image2pipe``) into files.

    Parsed by the markers, not by searching for FFD9: SOI, marker segments by their lengths,
    SOS then entropy-coded data (where 0xFF is followed by a stuffed 0x00 or a restart marker)
    up to the next marker, ... EOI. ``feed(data)`` returns the files completed so far;
    ``close()`` fails if a file is left incomplete."""

    def __init__(self, where: str = "stream"):
        self.where = where
        self.buf = bytearray()
        self.pos = 0  # parse position in buf (the current file starts at 0)
        self.scan = None  # inside entropy-coded data: where to resume the marker search
        self.count = 0

    def _fail(self, why: str):
        raise FramePackError(f"{self.where}: JPEG {self.count + 1} of the stream: {why}")

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        out = []
        while (end := self._parse()) is not None:
            out.append(bytes(self.buf[:end]))
            del self.buf[:end]
            self.pos, self.scan = 0, None
            self.count += 1
        return out

    def _parse(self) -> int | None:
        """Advance through the current file; its length once complete, None for more data."""
        if self.pos == 0:
            if len(self.buf) < 2:
                return None
            if self.buf[0] != 0xFF or self.buf[1] != 0xD8:
                self._fail(f"starts with {bytes(self.buf[:2]).hex()}, not the SOI marker ffd8")
            self.pos = 2
        while True:
            if self.scan is not None:  # entropy-coded data: find the marker that ends it
                m = _MARKER_AFTER_SCAN.search(self.buf, self.scan)
                if m is None:
                    self.scan = max(self.scan, len(self.buf) - 1)
                    return None
                self.pos, self.scan = m.start(), None
            step = self._segment()
            if step is None or step > 0:
                return step  # more data needed, or the end of the file (after EOI)

    def _segment(self) -> int | None:
        """One marker at ``pos``: 0 after stepping over it, the file's length at EOI, None
        when the buffer ends first."""
        buf, n, i = self.buf, len(self.buf), self.pos
        while i + 1 < n and buf[i] == 0xFF and buf[i + 1] == 0xFF:
            i += 1  # fill bytes before a marker
        if i + 2 > n:
            return None
        if buf[i] != 0xFF:
            self._fail(f"byte {buf[i]:02x} at offset {i} where a marker was expected")
        marker = buf[i + 1]
        if marker == 0xD9:  # EOI
            return i + 2
        if marker == 0xD8:
            self._fail(f"SOI inside the file at offset {i}")
        if marker in _STANDALONE:
            self.pos = i + 2
            return 0
        if i + 4 > n:
            return None
        length = (buf[i + 2] << 8) | buf[i + 3]
        if length < 2:
            self._fail(f"marker ff{marker:02x} at offset {i} with length {length}")
        if i + 2 + length > n:
            return None
        self.pos = i + 2 + length
        if marker == 0xDA:  # SOS: entropy-coded data follows its header
            self.scan = self.pos
        return 0

    def close(self) -> None:
        if self.buf:
            self._fail(f"the stream ends inside it ({len(self.buf)} bytes, no EOI marker)")


def check_jpeg(data: bytes, where: str) -> None:
    """A frame must start with SOI and end with EOI (ffmpeg's files always do)."""
    if len(data) < 4 or data[:2] != b"\xff\xd8" or data[-2:] != b"\xff\xd9":
        raise FramePackError(f"{where}: not a complete JPEG ({len(data)} bytes)")


# --------------------------------------------------------------------------- writing


def _member(name: str) -> zipfile.ZipInfo:
    zi = zipfile.ZipInfo(name, date_time=_DATE)
    zi.compress_type = zipfile.ZIP_STORED
    zi.external_attr = 0o644 << 16
    return zi


class ZipFrameWriter:
    """``with ZipFrameWriter(folder) as w: w.add(data); ...; w.commit(check)``.

    Members ``img_00001.jpg``, ... are written, in order, to a temporary zip in ``folder``;
    ``commit(check)`` closes it, reads every member back (CRC check), calls ``check(names)``
    (e.g. the frame count), then renames it to ``folder/frames.zip``. Leaving the block without
    a commit (an exception) removes the temporary zip."""

    def __init__(self, folder: str | os.PathLike, template: str = "img_{:05d}.jpg"):
        self.folder = Path(folder)
        self.template = template
        self.entries: list[tuple[str, int, int]] = []
        self._ctx = None

    def __enter__(self) -> ZipFrameWriter:
        self._ctx = atomic_write(self.folder / ZIP_NAME, "w+b")
        self._file = self._ctx.__enter__()
        self._zip = zipfile.ZipFile(self._file, "w", zipfile.ZIP_STORED, allowZip64=True)
        self._committed = False
        return self

    def add(self, data: bytes) -> str:
        name = self.template.format(len(self.entries) + 1)
        check_jpeg(data, f"{self.folder}: {name}")
        zi = _member(name)
        self._zip.writestr(zi, data)
        self.entries.append((name, zi.CRC, zi.file_size))
        return name

    def commit(self, check=None) -> str:
        """Verify and rename into place; returns the frames digest."""
        self._zip.close()
        self._file.flush()
        self._file.seek(0)
        where = f"{self.folder / ZIP_NAME} (being written)"
        try:
            with zipfile.ZipFile(self._file) as zf:
                read_back = _zip_entries(zf, where, verify=True)
        except zipfile.BadZipFile as e:
            raise FramePackError(f"{where}: {e}") from e
        if read_back != self.entries:
            raise FramePackError(f"{where}: the members read back differ from those written")
        if check is not None:
            check([name for name, _, _ in self.entries])
        self._committed = True
        return digest_of(self.entries)

    def __exit__(self, et, ev, tb):
        if et is None and self._committed:
            return self._ctx.__exit__(None, None, None)  # fsync, rename into place
        with contextlib.suppress(Exception):
            self._zip.close()
        err = ev if et is not None else FramePackError(f"{self.folder}: zip left without commit")
        try:
            self._ctx.__exit__(type(err), err, tb)  # removes the temporary zip
        except BaseException as e:
            if e is not err:
                raise
        if et is None:
            raise err
        return False


def remove_stale_temps(folder: Path) -> None:
    """Temporary zips ``.frames.zip.*.tmp`` a killed run left in ``folder``."""
    if folder.is_dir():
        for p in folder.glob(f".{ZIP_NAME}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


# --------------------------------------------------------------------------- damage


def quarantine(zip_path: str | os.PathLike) -> Path | None:
    """Move a damaged ``frames.zip`` aside to ``frames.zip.damaged-<UTC time>`` (never deleted),
    so that the workflow sees the output missing and extracts the video again. None when it
    is already gone (another process moved it)."""
    zip_path = Path(zip_path)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = zip_path.with_name(f"{zip_path.name}.damaged-{stamp}")
    try:
        os.rename(zip_path, target)
    except FileNotFoundError:
        return None
    return target


# --------------------------------------------------------------------------- pack / unpack


def _record(folder: Path) -> dict:
    info = read_info(folder)
    if info is not None:
        return info
    # MMAction2 rawframes made elsewhere: a minimal record (no extraction parameters)
    return {"video_id": folder.name, "layout": "dir", "params": None, "made_by": "pack"}


def _check_digest(folder: Path, info: dict, digest: str, n: int) -> None:
    recorded = info.get("frames_digest")
    if recorded is not None and recorded != digest:
        raise FramePackError(
            f"{folder}: the frames' digest {digest} differs from the one {INFO_NAME} records "
            f"({recorded}): frames changed since the extraction; extract the video again"
        )
    if info.get("frames") not in (None, n):
        raise FramePackError(
            f"{folder}: {INFO_NAME} records {info['frames']} frames, {n} are there"
        )


def _finish(folder: Path, info: dict, layout: str, entries: list) -> None:
    """Rewrite the record (the commit point of a conversion): layout, count, digest, bytes."""
    digest, n = digest_of(entries), len(entries)
    _check_digest(folder, info, digest, n)
    write_info(folder, {**info, "layout": layout, "frames": n, "frames_digest": digest,
                        "frames_bytes": sum(e[2] for e in entries)})  # fmt: skip


def pack(folder: str | os.PathLike) -> dict:
    """``dir`` -> ``zip`` in place: ``frames.zip`` written and verified, ``extract.json``
    rewritten (layout zip, the same digest), then the JPEG files removed. Re-running after an
    interruption finishes the job."""
    folder = Path(folder)
    info = _record(folder)
    files = frame_files(folder)
    if info.get("layout", "dir") == "zip":  # done, or interrupted after the commit
        entries = zip_entries(folder / ZIP_NAME, verify=False)
        if files and len(files) != len(entries):
            raise FramePackError(
                f"{folder}: {len(files)} JPEG files beside a {len(entries)}-member zip"
            )
        for p in files:
            p.unlink()
        return info
    if not files:
        raise FramePackError(f"{folder}: no img_NNNNN.jpg files to pack")
    names = [p.name for p in files]
    if names != [f"img_{i:05d}.jpg" for i in range(1, len(names) + 1)]:
        raise FramePackError(f"{folder}: frame files are not numbered 1..{len(names)}")
    remove_stale_temps(folder)
    with ZipFrameWriter(folder) as w:
        for p in files:
            w.add(p.read_bytes())
        w.commit(lambda names: _check_digest(folder, info, digest_of(w.entries), len(names)))
    _finish(folder, info, "zip", w.entries)
    for p in files:
        p.unlink()
    return read_info(folder)


def unpack(folder: str | os.PathLike) -> dict:
    """``zip`` -> ``dir`` in place: members written as files (through a temporary folder, CRC
    checked), ``extract.json`` rewritten (layout dir, the same digest), then ``frames.zip``
    removed. Re-running after an interruption finishes the job."""
    folder = Path(folder)
    info = read_info(folder)
    zpath = folder / ZIP_NAME
    if info is None or info.get("layout") != "zip":
        if info is not None and zpath.exists() and frame_files(folder):
            zpath.unlink()  # interrupted after the commit
            return info
        raise FramePackError(f"{folder}: not in the zip layout ({INFO_NAME} says so)")
    entries = []
    tmp = Path(tempfile.mkdtemp(prefix=".unpack.", suffix=".tmp", dir=folder))
    try:
        with zipfile.ZipFile(zpath) as zf:
            for zi in zf.infolist():
                if not FRAME_RE.match(zi.filename):
                    raise FramePackError(f"{zpath}: unexpected member {zi.filename!r}")
                data = zf.read(zi)  # CRC checked by zipfile
                (tmp / zi.filename).write_bytes(data)
                entries.append((zi.filename, zi.CRC, len(data)))
        _check_digest(folder, info, digest_of(entries), len(entries))
        for name, _, _ in entries:
            os.replace(tmp / name, folder / name)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise FramePackError(f"{zpath}: damaged or unreadable zip ({e})") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _finish(folder, info, "dir", entries)
    zpath.unlink()
    return read_info(folder)
