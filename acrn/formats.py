"""AVA file formats: strict, fast (pandas) readers and atomic writers.

Formats (see https://research.google.com/ava/download.html and MMAction2 0.x):

* annotation CSV, no header: ``video,second,x1,y1,x2,y2,action[,person]`` (8 columns in the
  AVA releases, 7 without the person id); boxes are normalized to [0, 1];
* detection CSV: ``video,second,x1,y1,x2,y2,action,score`` (MMAction2 0.x ``results2csv``:
  the second as a plain integer, floats with 3 decimals);
* label map pbtxt, ``item { name: "..." id: N }`` or ``label { name: "..." label_id: N
  label_type: T }``;
* excluded-timestamps CSV ``video,second``;
* dense-proposal pickle: dict ``"video,%04d"`` -> float array [n, 4] or [n, 5]
  (x1, y1, x2, y2[, score], normalized);
* the trainval file list: one video file name per line.

Every reader raises :class:`FormatError` naming the file, the line (or key) and the value.
The fast path hands the whole file to pandas; only when pandas reports a problem is the file
scanned again line by line, to name the first bad line precisely.
"""

from __future__ import annotations

import csv
import importlib
import math
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pandas as pd

from acrn.fsutil import atomic_write

VIDEO_EXTENSIONS = (".mkv", ".mp4", ".webm")

ANNOTATION_COLUMNS = ["video", "second", "x1", "y1", "x2", "y2", "action", "person"]
DETECTION_COLUMNS = ["video", "second", "x1", "y1", "x2", "y2", "action", "score"]
BOX_COLUMNS = ["x1", "y1", "x2", "y2"]

_INT = "integer"
_FLOAT = "number"


class FormatError(ValueError):
    """A file does not follow its AVA format; the message names file, line/key and value."""


def keyframe_key(video: str, second) -> str:
    """The AVA image key ``"%s,%04d" % (video, int(second))``."""
    return f"{video},{int(second):04d}"


def video_id(file_name: str) -> str:
    """Video id of a file name of the trainval list (strips .mkv/.mp4/.webm)."""
    name = os.path.basename(file_name)
    for ext in VIDEO_EXTENSIONS:
        if name.endswith(ext):
            return name[: -len(ext)]
    raise FormatError(f"{file_name!r}: not a video file name (expected {VIDEO_EXTENSIONS})")


# --------------------------------------------------------------------------- CSV tables


def _first_line(path: Path) -> str:
    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    with open(path, newline="") as f:
        for line in f:
            return line.rstrip("\r\n")
    raise FormatError(f"{path}: empty file")


def _check_field(path: Path, lineno: int, name: str, kind: str, value: str) -> None:
    try:
        if kind == _INT:
            int(value)
        else:
            v = float(value)
            if not math.isfinite(v):
                raise ValueError
    except ValueError:
        raise FormatError(
            f"{path}:{lineno}: column {name!r} is not a finite {kind}: {value!r}"
        ) from None


def _diagnose(path: Path, names: list[str], kinds: dict[str, str], counts=None) -> None:
    """Scan the file line by line and raise a FormatError for the first bad line
    (``counts``: the column counts a row may have; default ``len(names)``)."""
    counts = counts or (len(names),)
    with open(path, newline="") as f:
        for lineno, row in enumerate(csv.reader(f), start=1):
            if len(row) not in counts:
                expected = " or ".join(str(n) for n in counts)
                raise FormatError(
                    f"{path}:{lineno}: expected {expected} columns ({','.join(names)}), "
                    f"got {len(row)}: {','.join(row)!r}"
                )
            if not row[0]:
                raise FormatError(f"{path}:{lineno}: empty video id: {','.join(row)!r}")
            for name, value in zip(names, row, strict=False):
                if name in kinds:
                    _check_field(path, lineno, name, kinds[name], value)


def _has_empty_first_field(path: Path, chunk: int = 1 << 26) -> bool:
    """Whether a line starts with a comma (an empty video id); a byte scan, no parsing."""
    with open(path, "rb") as f:
        block = f.read(chunk)
        if block.startswith(b","):
            return True
        tail = b""
        while block:
            if b"\n," in tail + block[:1] or b"\n," in block:
                return True
            tail = block[-1:]
            block = f.read(chunk)
    return False


def _read_table(
    path, layouts: dict[int, list[str]], kinds: dict[str, str], per_row: bool = False
) -> pd.DataFrame:
    """Read a header-less CSV whose column count is one of ``layouts`` (count -> names).

    ``per_row``: every row may have any of the counts, as the official ``read_csv`` allows
    (the layouts must be prefixes of the widest; missing trailing fields are NaN).
    """
    path = Path(path)
    first = _first_line(path)
    ncols = len(next(csv.reader([first]))) if first else 0
    if ncols not in layouts:
        expected = " or ".join(str(n) for n in sorted(layouts))
        raise FormatError(f"{path}:1: expected {expected} columns, got {ncols}: {first!r}")
    names = layouts[max(layouts)] if per_row else layouts[ncols]
    counts = tuple(sorted(layouts)) if per_row else None
    optional = set(names) - set(layouts[min(layouts)]) if per_row else set()
    # floats typed up front (faster); integer columns inferred, so "12.0" is not taken for 12
    dtypes = {c: np.float64 for c, kind in kinds.items() if kind == _FLOAT}
    try:
        df = pd.read_csv(
            path,
            header=None,
            names=names,
            dtype={"video": str, **{c: t for c, t in dtypes.items() if c in names}},
            na_filter=False,
            skip_blank_lines=False,
            engine="c",
        )
    except (pd.errors.ParserError, ValueError):
        _diagnose(path, names, kinds, counts)
        raise
    short = np.zeros(len(df), dtype=bool)
    for c in optional:  # rows without the optional trailing fields: "" (or NaN)
        col = df[c]
        if not pd.api.types.is_numeric_dtype(col):
            missing = (col.astype(str) == "").to_numpy()
            try:
                df[c] = pd.to_numeric(col.where(~missing, "-1"), errors="raise")
            except (ValueError, TypeError):
                _diagnose(path, names, kinds, counts)
                raise
        else:
            missing = col.isna().to_numpy()
            df[c] = col.where(~missing, -1)
        short |= missing
    if per_row:
        df.attrs["short_rows"] = short
    bad = any(
        not (
            pd.api.types.is_integer_dtype(df[c])
            if kind == _INT
            else pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
        )
        for c, kind in kinds.items()
        if c in df
    )
    if bad or _has_empty_first_field(path):
        _diagnose(path, names, kinds, counts)
        raise FormatError(f"{path}: unreadable table")  # pragma: no cover (diagnose raises)
    for c, kind in kinds.items():
        if c in df and kind == _FLOAT:
            col = df[c] = df[c].astype(np.float64)
            finite = np.isfinite(col.to_numpy())
            if not finite.all():
                i = int(np.argmin(finite))
                raise FormatError(
                    f"{path}:{i + 1}: column {c!r} is not a finite number: {float(col.iloc[i])!r}"
                )
    if "video" in df:
        df["video"] = df["video"].astype(object)
    return df


def _fail_row(path: Path, df: pd.DataFrame, mask: np.ndarray, what: str, cols: list[str]):
    i = int(np.flatnonzero(mask)[0])
    values = ",".join(str(df[c].iloc[i]) for c in cols)
    raise FormatError(f"{path}:{i + 1}: {what}: {values}")


def _check_boxes(path: Path, df: pd.DataFrame) -> None:
    x1, y1, x2, y2 = (df[c].to_numpy() for c in BOX_COLUMNS)
    inside = (x1 >= 0) & (y1 >= 0) & (x2 >= 0) & (y2 >= 0)
    inside &= (x1 <= 1) & (y1 <= 1) & (x2 <= 1) & (y2 <= 1)
    if not inside.all():
        _fail_row(path, df, ~inside, "box coordinate outside [0, 1] (x1,y1,x2,y2)", BOX_COLUMNS)
    ordered = (x2 >= x1) & (y2 >= y1)
    if not ordered.all():
        _fail_row(path, df, ~ordered, "box with x2 < x1 or y2 < y1 (x1,y1,x2,y2)", BOX_COLUMNS)


def _check_common(path: Path, df: pd.DataFrame, label_map: dict[int, str] | None) -> None:
    sec = df["second"].to_numpy()
    if (sec < 0).any():
        _fail_row(path, df, sec < 0, "negative second", ["second"])
    _check_boxes(path, df)
    action = df["action"].to_numpy()
    if label_map is not None:
        known = np.isin(action, np.fromiter(label_map, dtype=np.int64, count=len(label_map)))
        if not known.all():
            _fail_row(path, df, ~known, "action id not in the label map", ["action"])
    elif (action < 1).any():
        _fail_row(path, df, action < 1, "action id < 1", ["action"])


def read_annotations(path, label_map: dict[int, str] | None = None) -> pd.DataFrame:
    """Read an AVA annotation CSV (8 columns with person id, or 7 without; row by row, as the
    official ``read_csv`` does, so one file may mix both).

    Returns a DataFrame with columns ``video, second, x1, y1, x2, y2, action, person``
    (``person`` is -1 on 7-column rows; ``df.attrs["columns"]`` holds 7, 8 or "7/8").
    With ``label_map``, every action id must be one of its ids.
    """
    path = Path(path)
    kinds = {"second": _INT, "action": _INT, "person": _INT}
    kinds.update(dict.fromkeys(BOX_COLUMNS, _FLOAT))
    df = _read_table(path, {8: ANNOTATION_COLUMNS, 7: ANNOTATION_COLUMNS[:7]}, kinds, per_row=True)
    short = df.attrs.pop("short_rows")
    person = df["person"].to_numpy()
    if ((person < 0) & ~short).any():
        _fail_row(path, df, (person < 0) & ~short, "negative person id", ["person"])
    ncols = 7 if short.all() else 8 if not short.any() else "7/8"
    _check_common(path, df, label_map)
    df = df.astype({"second": np.int64, "action": np.int64, "person": np.int64})
    df.attrs["columns"] = ncols
    return df


def read_detections(path, label_map: dict[int, str] | None = None) -> pd.DataFrame:
    """Read a detection CSV ``video,second,x1,y1,x2,y2,action,score`` (8 columns). An empty
    file (no score above the threshold anywhere) is an empty table, as the official reader has it.
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        return pd.DataFrame(
            {c: pd.Series(dtype=object if c == "video" else np.float64) for c in DETECTION_COLUMNS}
        ).astype({"second": np.int64, "action": np.int64})
    kinds = {"second": _INT, "action": _INT, "score": _FLOAT}
    kinds.update(dict.fromkeys(BOX_COLUMNS, _FLOAT))
    df = _read_table(path, {8: DETECTION_COLUMNS}, kinds)
    _check_common(path, df, label_map)
    return df.astype({"second": np.int64, "action": np.int64})


def _check_frame(df: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df]
    if missing:
        raise FormatError(f"{what}: DataFrame lacks columns {missing}")


def write_annotations(path, df: pd.DataFrame, float_format: str = "%.3f") -> None:
    """Write an annotation CSV atomically, in the AVA release layout.

    8 columns (``video,%04d,x1,y1,x2,y2,action,person``) unless every ``person`` is -1 (or
    the column is absent), then 7. Floats use ``float_format`` (AVA releases: 3 decimals).
    """
    cols = ANNOTATION_COLUMNS
    if "person" not in df or (df["person"].to_numpy() == -1).all():
        cols = ANNOTATION_COLUMNS[:7]
    _check_frame(df, cols, str(path))
    out = df[cols].copy()
    out["second"] = out["second"].map("{:04d}".format)
    with atomic_write(path, "w", newline="") as f:
        out.to_csv(f, header=False, index=False, float_format=float_format, lineterminator="\n")


def write_detections(path, df: pd.DataFrame) -> None:
    """Write a detection CSV atomically, as MMAction2 0.x ``results2csv`` does.

    ``results2csv`` writes ``video,second,x1,y1,x2,y2,action,score`` with ``str()`` of the
    integer second (no zero padding) and the action id, and every float as ``f"{v:.3f}"``.
    """
    _check_frame(df, DETECTION_COLUMNS, str(path))
    out = df[DETECTION_COLUMNS].astype({"second": np.int64, "action": np.int64})
    with atomic_write(path, "w", newline="") as f:
        out.to_csv(f, header=False, index=False, float_format="%.3f", lineterminator="\n")


# --------------------------------------------------------------------------- label map

_SPACE = re.compile(r"\s*")
_PBTXT_TOKEN = re.compile(
    r'(?:(#[^\n]*)|([A-Za-z_]+)\s*:\s*("(?:[^"\\]|\\.)*"|[^\s{}]+)|([A-Za-z_]+)\s*\{|(\}))'
)


def _close_block(path: Path, block: dict, block_line: int, result: dict[int, str]) -> None:
    """Add a finished ``item``/``label`` block to ``result`` (checked)."""
    id_key = "id" if "id" in block else "label_id"
    if "name" not in block or id_key not in block:
        raise FormatError(f"{path}:{block_line}: entry lacks a name or an id: {block}")
    raw_id, id_line = block[id_key]
    try:
        class_id = int(raw_id)
    except ValueError:
        raise FormatError(f"{path}:{id_line}: id is not an integer: {raw_id!r}") from None
    if class_id < 1:
        raise FormatError(f"{path}:{id_line}: id must be >= 1: {class_id}")
    if class_id in result:
        raise FormatError(f"{path}:{id_line}: duplicate id: {class_id}")
    result[class_id] = block["name"][0]


def _add_field(path: Path, lineno: int, block: dict | None, key: str, value: str) -> None:
    if block is None:
        raise FormatError(f"{path}:{lineno}: field outside an item/label block: {key!r}")
    if key not in ("name", "id", "label_id", "label_type", "display_name"):
        raise FormatError(f"{path}:{lineno}: unknown field {key!r}")
    if key in block:
        raise FormatError(f"{path}:{lineno}: repeated field {key!r}")
    if key in ("name", "display_name"):
        if not (value.startswith('"') and value.endswith('"')):
            raise FormatError(f"{path}:{lineno}: {key} must be quoted: {value!r}")
        value = value[1:-1]
    block[key] = (value, lineno)


def _pbtxt_tokens(path: Path, text: str):
    """``(lineno, key, value, opener, closer)`` of every token but comments."""
    pos = 0
    while True:
        pos = _SPACE.match(text, pos).end()
        if pos >= len(text):
            return
        lineno = text.count("\n", 0, pos) + 1
        m = _PBTXT_TOKEN.match(text, pos)
        if not m:
            snippet = text[pos:].splitlines()[0]
            raise FormatError(f"{path}:{lineno}: cannot parse: {snippet!r}")
        pos = m.end()
        comment, key, value, opener, closer = m.groups()
        if not comment:
            yield lineno, key, value, opener, closer


def read_label_map(path) -> dict[int, str]:
    """Read a label map pbtxt in either AVA form; returns ``{id: name}`` in file order.

    ``item { name: "..." id: N }`` (ActivityNet) and ``label { name: "..." label_id: N
    label_type: T }`` (AVA v2.2) are both accepted.
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    text = path.read_text()
    if not text.strip():
        raise FormatError(f"{path}: empty file")
    result: dict[int, str] = {}
    block: dict[str, tuple[str, int]] | None = None
    block_line = 0
    for lineno, key, value, opener, closer in _pbtxt_tokens(path, text):
        if opener:
            if block is not None or opener not in ("item", "label"):
                raise FormatError(f"{path}:{lineno}: unexpected block {opener!r}")
            block, block_line = {}, lineno
        elif closer:
            if block is None:
                raise FormatError(f"{path}:{lineno}: unmatched '}}'")
            _close_block(path, block, block_line, result)
            block = None
        else:
            _add_field(path, lineno, block, key, value)
    if block is not None:
        raise FormatError(f"{path}:{block_line}: unterminated block")
    if not result:
        raise FormatError(f"{path}: no item/label entries")
    return result


# --------------------------------------------------------------------------- exclusions


def read_exclusions(path) -> set[str]:
    """Read an excluded-timestamps CSV ``video,second``; returns the set of keyframe keys."""
    path = Path(path)
    df = _read_table(path, {2: ["video", "second"]}, {"second": _INT})
    sec = df["second"].to_numpy()
    if (sec < 0).any():
        _fail_row(path, df, sec < 0, "negative second", ["second"])
    return {keyframe_key(v, s) for v, s in zip(df["video"], sec, strict=True)}


# --------------------------------------------------------------------------- proposals

_KEY = re.compile(r"^[^,]+,\d{4}$")


_SHOW_BAD = 5


def _proposal_problem(key, arr) -> str | None:
    if not isinstance(key, str) or not _KEY.match(key):
        return "expected a 'video,%04d' key"
    if not isinstance(arr, np.ndarray) or arr.dtype.kind != "f":
        return f"expected a float ndarray, got {getattr(arr, 'dtype', type(arr).__name__)}"
    if arr.size == 0 and arr.ndim in (1, 2):
        return None  # a keyframe without detections
    if arr.ndim != 2 or arr.shape[1] not in (4, 5):
        return f"expected shape [n, 4] or [n, 5], got {arr.shape}"
    if not np.isfinite(arr).all():
        return "non-finite value"
    return None


def _check_proposals(where: str, proposals) -> None:
    """Every malformed entry named at once (count + the first ones), not the first only."""
    if not isinstance(proposals, dict):
        raise FormatError(f"{where}: expected a dict, got {type(proposals).__name__}")
    if not proposals:
        raise FormatError(f"{where}: empty proposal dict")
    bad = []
    for key, arr in proposals.items():
        problem = _proposal_problem(key, arr)
        if problem is not None:
            bad.append(f"{key!r}: {problem}")
    if bad:
        more = f"; ... {len(bad) - _SHOW_BAD} more" if len(bad) > _SHOW_BAD else ""
        raise FormatError(
            f"{where}: {len(bad)} malformed entr{'y' if len(bad) == 1 else 'ies'} of "
            f"{len(proposals)}: " + "; ".join(bad[:_SHOW_BAD]) + more
        )


# what a proposal pickle may name: numpy arrays and dtypes (numpy 1.x and 2 spellings of the
# array-reconstruction helpers), and dicts; everything else (os.system, builtins.eval, ...) is
# refused before anything is called
_NUMPY_CORE = ("numpy.core.multiarray", "numpy._core.multiarray")
_NUMPY_NUMERIC = ("numpy.core.numeric", "numpy._core.numeric")
_ALLOWED_GLOBALS = {
    **{(m, "_reconstruct"): ("multiarray", "_reconstruct") for m in _NUMPY_CORE},
    **{(m, "scalar"): ("multiarray", "scalar") for m in _NUMPY_CORE},
    **{(m, "_frombuffer"): ("numeric", "_frombuffer") for m in _NUMPY_NUMERIC},
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("collections", "OrderedDict"): ("collections", "OrderedDict"),
    # bytes in a protocol-2 pickle written by Python 3 (numpy 1.x array data)
    ("_codecs", "encode"): ("_codecs", "encode"),
}


def _allowed_global(where: str, module: str, name: str):
    target = _ALLOWED_GLOBALS.get((module, name))
    if target is None:
        raise FormatError(
            f"{where}: refused: the pickle names the global {module}.{name}, which a proposal "
            "file never holds (only dicts, strings, numbers, numpy arrays and dtypes); it may "
            "have been tampered with"
        )
    kind, attr = target
    if kind == "numpy":
        return getattr(np, attr)
    if kind in ("collections", "_codecs"):
        return getattr(importlib.import_module(kind), attr)
    try:  # numpy 2 keeps these under numpy._core; numpy 1.x under numpy.core
        import numpy._core as core
    except ImportError:  # pragma: no cover - numpy 1.x
        import numpy.core as core
    return getattr(getattr(core, kind), attr)


class _ProposalUnpickler(pickle.Unpickler):
    def __init__(self, f, where: str):
        super().__init__(f)
        self._where = where

    def find_class(self, module, name):
        return _allowed_global(self._where, module, name)

    def persistent_load(self, pid):
        raise FormatError(f"{self._where}: refused: persistent id {pid!r} in a proposal pickle")


def read_proposals(path) -> dict[str, np.ndarray]:
    """Read a dense-proposal pickle: dict ``"video,%04d"`` -> float ndarray [n, 4] or [n, 5].

    The pickle is read with a restricted unpickler that admits only dicts, strings, numbers,
    numpy arrays and dtypes: a file naming any other global (one that would run code when
    unpickled) is refused, naming the global, before anything is called. Empty arrays (a
    keyframe without detections) are accepted.
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise FormatError(f"{path}: empty file")
    try:
        with open(path, "rb") as f:
            proposals = _ProposalUnpickler(f, str(path)).load()
    except FormatError:
        raise
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a format error
        raise FormatError(f"{path}: not a readable pickle: {e}") from e
    _check_proposals(str(path), proposals)
    return proposals


def write_proposals(path, proposals: dict[str, np.ndarray]) -> None:
    """Write a dense-proposal pickle atomically (same layout as :func:`read_proposals`)."""
    _check_proposals(str(path), proposals)
    with atomic_write(path, "wb") as f:
        pickle.dump(proposals, f, protocol=pickle.HIGHEST_PROTOCOL)


# --------------------------------------------------------------------------- file list


def read_file_list(path) -> list[str]:
    """Read the trainval file list (one ``<video id>.<mkv|mp4|webm>`` per line)."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    names: list[str] = []
    seen: set[str] = set()
    with open(path) as f:
        for lineno, line in enumerate(f, start=1):
            name = line.rstrip("\r\n")
            if not name or name != name.strip() or "/" in name:
                raise FormatError(f"{path}:{lineno}: not a video file name: {name!r}")
            if not name.endswith(VIDEO_EXTENSIONS) or name in VIDEO_EXTENSIONS:
                raise FormatError(
                    f"{path}:{lineno}: expected a {'/'.join(VIDEO_EXTENSIONS)} file: {name!r}"
                )
            vid = video_id(name)
            if vid in seen:
                raise FormatError(f"{path}:{lineno}: duplicate video id: {vid!r}")
            seen.add(vid)
            names.append(name)
    if not names:
        raise FormatError(f"{path}: empty file")
    return names


def read_video_ids(path) -> list[str]:
    """Read a list of video ids (one per line, e.g. ``config/ava_val_video_ids.txt``)."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    ids: list[str] = []
    with open(path) as f:
        for lineno, line in enumerate(f, start=1):
            vid = line.rstrip("\r\n")
            if not vid or vid != vid.strip() or "/" in vid or "." in vid:
                raise FormatError(f"{path}:{lineno}: not a video id: {vid!r}")
            if vid in ids:
                raise FormatError(f"{path}:{lineno}: duplicate video id: {vid!r}")
            ids.append(vid)
    if not ids:
        raise FormatError(f"{path}: empty file")
    return ids
