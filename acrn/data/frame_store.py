"""Members of the per-video frames zips, read by name in the DataLoader workers.

- Each process opens its own handles, lazily, and keeps at most ``MAX_OPEN`` zips open (least
  recently used closed first). The cache belongs to the process that filled it: a forked worker
  finds its parent's entries and drops them before its first read (a zip handle shared across
  ``fork`` corrupts reads: CPython #83544, the shared file position); reads are ``os.pread``
  anyway, which uses no file position.
- An open zip is an fd plus a compact index of its central directory (``acrn.framepack``;
  20 bytes a frame, ~0.55 MB for AVA's 27,030 frames), parsed in a few ms.
- Every member's CRC-32 is checked on read. A damaged zip (truncated, a member whose CRC does
  not match) fails the read with a ``FrameError`` naming the video, the member and the
  keyframe, and is moved aside (``frames.zip.damaged-<UTC time>``, never deleted): re-running
  the workflow extracts that video again (its output ``frames.zip`` is missing).
"""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict

import numpy as np

from acrn import framepack
from acrn.data.decode import FrameError

MAX_OPEN = 64  # zips open per process (fd + index each)


class _OpenZips:
    """path -> (fd, ZipIndex), least recently used first; owned by one process."""

    def __init__(self, capacity: int = MAX_OPEN):
        self.capacity = capacity
        self.pid = os.getpid()
        self.entries: OrderedDict[str, tuple[int, framepack.ZipIndex]] = OrderedDict()

    def _own(self) -> None:
        if self.pid != os.getpid():  # a forked child: the parent's handles are not ours
            for fd, _ in self.entries.values():
                with contextlib.suppress(OSError):
                    os.close(fd)  # our copy of the descriptor only
            self.entries.clear()
            self.pid = os.getpid()

    def get(self, path: str) -> tuple[int, framepack.ZipIndex]:
        self._own()
        hit = self.entries.get(path)
        if hit is not None:
            self.entries.move_to_end(path)
            return hit
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            index = framepack.read_zip_index(fd)
        except BaseException:
            os.close(fd)
            raise
        self.entries[path] = (fd, index)
        while len(self.entries) > self.capacity:
            _, (old, _) = self.entries.popitem(last=False)
            os.close(old)
        return fd, index

    def drop(self, path: str) -> None:
        self._own()
        hit = self.entries.pop(path, None)
        if hit is not None:
            os.close(hit[0])

    def clear(self) -> None:
        self._own()
        for fd, _ in self.entries.values():
            os.close(fd)
        self.entries.clear()


OPEN_ZIPS = _OpenZips()


def _damaged(zip_path: str, name: str, why: str, img_key: str) -> FrameError:
    OPEN_ZIPS.drop(zip_path)
    moved = framepack.quarantine(zip_path)
    video = os.path.basename(os.path.dirname(os.path.abspath(zip_path)))
    where = f"moved aside to {moved.name}" if moved else "already moved aside"
    return FrameError(
        f"{zip_path}: member {name} of video {video}: damaged zip ({why}) (keyframe {img_key}); "
        f"{where}: re-run the workflow (snakemake) to extract video {video} again"
    )


def read_members(frame_dir: str, names: list[str], img_key: str):
    """(``zip:member`` labels, uint8 arrays) of ``names`` in ``frame_dir/frames.zip``."""
    zip_path = os.path.join(frame_dir, framepack.ZIP_NAME)
    labels = [f"{zip_path}:{n}" for n in names]
    try:
        fd, index = OPEN_ZIPS.get(zip_path)
    except FileNotFoundError:
        raise FrameError(
            f"{zip_path}: frames zip missing (needed by keyframe {img_key}); were the video's "
            "frames extracted, in the zip layout (data.frame_layout)? A damaged zip is moved "
            "aside: re-run the workflow to extract the video again"
        ) from None
    except OSError as e:
        raise FrameError(f"{zip_path}: cannot read (keyframe {img_key}): {e}") from None
    except framepack.FramePackError as e:
        raise _damaged(zip_path, names[0], str(e), img_key) from None
    datas = []
    for name, label in zip(names, labels, strict=True):
        m = framepack.FRAME_RE.match(name)
        i = index.find(int(m.group(1))) if m and name == f"img_{int(m.group(1)):05d}.jpg" else None
        if i is None:
            raise FrameError(
                f"{label}: frame missing from the zip (needed by keyframe {img_key}); were all "
                "frames extracted, with the same fps, timestamp window and file name template?"
            )
        try:
            data = framepack.read_member(fd, index, i)
        except framepack.FramePackError as e:
            raise _damaged(zip_path, name, str(e), img_key) from None
        except OSError as e:
            raise FrameError(f"{label}: cannot read (keyframe {img_key}): {e}") from None
        datas.append(np.frombuffer(data, dtype=np.uint8))
    return labels, datas
