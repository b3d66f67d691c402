import dataclasses
import os

import pytest

from acrn.config import ConfigError, from_dict, to_dict
from acrn.fsutil import atomic_dir, atomic_write, sha256sum


def test_atomic_write_replaces_only_on_success(tmp_path):
    p = tmp_path / "out.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(p) as f:
        f.write("half")
        raise RuntimeError("boom")
    assert p.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]
    with atomic_write(p) as f:
        f.write("new")
    assert p.read_text() == "new"
    mask = os.umask(0o022)
    os.umask(mask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~mask


def test_atomic_outputs_follow_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "f") as f:
            f.write("x")
        with atomic_dir(tmp_path / "d"):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o750


def test_atomic_dir(tmp_path):
    d = tmp_path / "frames"
    with pytest.raises(ValueError), atomic_dir(d) as t:
        (t / "a").write_text("x")
        raise ValueError
    assert not d.exists() and os.listdir(tmp_path) == []
    with atomic_dir(d) as t:
        (t / "a").write_text("x")
    assert (d / "a").read_text() == "x"
    with pytest.raises(FileExistsError), atomic_dir(d):
        pass


def test_sha256sum(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"abc")
    assert sha256sum(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@dataclasses.dataclass
class Inner:
    lr: float = 0.1
    steps: tuple[int, ...] = (1, 2)


@dataclasses.dataclass
class Outer:
    name: str = "x"
    inner: Inner = dataclasses.field(default_factory=Inner)
    mode: str | None = None


def test_from_dict_roundtrip_and_errors():
    cfg = from_dict(Outer, {"name": "y", "inner": {"lr": 1, "steps": [3]}})
    assert cfg.inner.lr == 1.0 and isinstance(cfg.inner.lr, float) and cfg.inner.steps == (3,)
    assert to_dict(cfg) == {"name": "y", "inner": {"lr": 1.0, "steps": [3]}, "mode": None}
    with pytest.raises(ConfigError, match=r"inner\.lrr"):
        from_dict(Outer, {"inner": {"lrr": 1}})
    with pytest.raises(ConfigError, match=r"inner\.lr: expected float"):
        from_dict(Outer, {"inner": {"lr": "fast"}})
    with pytest.raises(ConfigError, match=r"inner\.steps\[1\]"):
        from_dict(Outer, {"inner": {"steps": [1, "a"]}})
