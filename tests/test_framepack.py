"""acrn.framepack: the JPEG stream splitter and the zip index the loader reads members through.

(Extraction into zips, pack/unpack and the digest run on real ffmpeg output in test_frames.py.)
"""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import pytest
from PIL import Image

from acrn import framepack as fp


def _jpeg(seed: int, **kw) -> bytes:
    img = np.random.default_rng(seed).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=95, **kw)
    return buf.getvalue()


def test_splitter_cuts_by_markers_at_any_chunking():
    """Noise at quality 95 has many stuffed 0xFF00 bytes; restart markers (RSTn inside the
    entropy-coded data), progressive JPEGs (several SOS scans, DHT between them) and fill
    bytes before a marker must not end a file early."""
    files = [_jpeg(0), _jpeg(1, progressive=True), _jpeg(2, restart_marker_blocks=1), _jpeg(3)]
    assert b"\xff\xd0" in files[2] and files[1].count(b"\xff\xda") > 1
    files[3] = files[3][:-2] + b"\xff\xff\xff\xd9"  # fill bytes before EOI
    stream = b"".join(files)
    for chunk in (1, 3, 64, 4096, len(stream)):
        s = fp.JpegSplitter()
        out = [f for i in range(0, len(stream), chunk) for f in s.feed(stream[i : i + chunk])]
        s.close()
        assert out == files, chunk
    s = fp.JpegSplitter("x.mkv")
    s.feed(stream[:-10])
    with pytest.raises(fp.FramePackError, match=r"x\.mkv: JPEG 4 of the stream: the stream ends"):
        s.close()
    with pytest.raises(fp.FramePackError, match="not the SOI marker"):
        fp.JpegSplitter().feed(b"\x00\x00" + stream)


def _write_zip(path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)


@pytest.mark.parametrize("zip64_limit", [None, 3000, 300])
def test_zip_index_reads_what_zipfile_reads(tmp_path, monkeypatch, zip64_limit):
    """The compact index (vectorized parse, per-entry fallback) against zipfile itself; with a
    lowered ZIP64 limit zipfile writes the ZIP64 records a > 4 GiB AVA zip has (offsets, then
    sizes too, in the ZIP64 extra field)."""
    members = {f"img_{i:05d}.jpg": _jpeg(i) for i in range(1, 30)}
    members["img_100000.jpg"] = _jpeg(99)  # a 6-digit name: the per-entry parser
    path = tmp_path / "frames.zip"
    if zip64_limit:
        monkeypatch.setattr(zipfile, "ZIP64_LIMIT", zip64_limit)
        monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 7)
    _write_zip(path, members)
    monkeypatch.undo()
    fd = os.open(path, os.O_RDONLY)
    try:
        index = fp.read_zip_index(fd)
        assert index.numbers.tolist() == sorted(int(n[4:-4]) for n in members)
        with zipfile.ZipFile(path) as z:
            for n in members:
                i = index.find(int(n[4:-4]))
                assert fp.read_member(fd, index, i) == z.read(n) == members[n]
        assert index.find(31) is None
    finally:
        os.close(fd)


def test_zip_index_fast_path_equals_the_entry_by_entry_parse(tmp_path):
    path = tmp_path / "frames.zip"
    _write_zip(path, {f"img_{i:05d}.jpg": _jpeg(i) for i in range(1, 20)})
    fd = os.open(path, os.O_RDONLY)
    try:
        count, size, offset = fp._eocd(fd, os.fstat(fd).st_size)
        cd = os.pread(fd, size, offset)
    finally:
        os.close(fd)
    fast = fp._rows_fast(cd, count)
    assert fast is not None and np.array_equal(fast, fp._rows_loop(cd, count))
