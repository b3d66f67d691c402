"""Sources: sha256 pins of unpacked annotation members, and the name-based file-list check.

Real AVA files (tests/data/ava-reference, copied from the shared reference folder) in a zip laid
out as AVA's v2.2 zip (flat), real acrn.download CLI.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
import yaml

from acrn.download import DownloadError, compare_file_lists, extract, main

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "tests" / "data" / "ava-reference"
SHARED = ROOT.parent / "shared" / "ava-reference"
PINNED = [
    "ava_val_excluded_timestamps_v2.2.csv",
    "ava_train_excluded_timestamps_v2.2.csv",
    "ava_action_list_v2.2_for_activitynet_2019.pbtxt",
    "ava_action_list_v2.2.pbtxt",  # the 80-class list
]


def pins(config="config/config.yaml") -> dict[str, str]:
    return yaml.safe_load((ROOT / config).read_text())["pins"]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_pins_match_the_real_files():
    p = pins()
    for name in (*PINNED, "ava_val_excluded_timestamps_v2.1.csv",
                 "ava_train_excluded_timestamps_v2.1.csv",
                 "ava_action_list_v2.1_for_activitynet_2018.pbtxt"):  # fmt: skip
        assert p[name] == sha(REF / name), name
        if (SHARED / name).is_file():
            assert p[name] == sha(SHARED / name), name
    assert len((REF / "ava_val_excluded_timestamps_v2.2.csv").read_bytes()) == 629
    assert len((REF / "ava_train_excluded_timestamps_v2.2.csv").read_text().splitlines()) == 161
    demo = pins("config/demo.yaml")
    assert demo and all(p[k] == v for k, v in demo.items())
    assert "ava_action_list_v2.1.pbtxt" not in p  # v2.1's 80-class list: no public checksum


def test_pinned_members_unpack_and_a_changed_one_fails_naming_both_digests(tmp_path):
    real = {n: (REF / n).read_bytes() for n in PINNED}
    z = make_zip(tmp_path / "ava_v2.2.zip", real)
    out = tmp_path / "v2.2"
    written = extract(z, PINNED, out, pins=pins())
    assert [sha(p) for p in written] == [pins()[n] for n in PINNED]

    changed = dict(real)
    name = "ava_val_excluded_timestamps_v2.2.csv"
    changed[name] = real[name] + b"zzzzzzzzzzz,0902\n"  # a new release with one more row
    (tmp_path / "new").mkdir()
    z2 = make_zip(tmp_path / "new" / "ava_v2.2.zip", changed)
    out2 = tmp_path / "v2.2-new"
    with pytest.raises(DownloadError) as e:
        extract(z2, [name], out2, pins=pins())
    msg = str(e.value)
    actual = hashlib.sha256(changed[name]).hexdigest()
    assert f"member {name} has sha256 {actual}, expected {pins()[name]}" in msg
    assert f"put its sha256 in `pins` ({name}: {actual})" in msg
    assert not (out2 / name).exists() and list(out2.glob("*")) == []
    # the CLI, as the unpack rule runs it
    args = ["extract", str(z2), name, "--out", str(out2), "--pin", f"{name}={pins()[name]}"]
    assert main(args) == 1
    assert (
        main(["extract", str(z), name, "--out", str(out2), "--pin", f"{name}={pins()[name]}"]) == 0
    )
    assert sha(out2 / name) == pins()[name]


def test_file_list_compared_by_name(tmp_path, capsys):
    shipped = ROOT / "config" / "ava_file_names_trainval_v2.1.txt"
    text = shipped.read_text()
    names = text.splitlines()
    assert len(names) == 299
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(text.replace("\n", "\r\n").encode())
    no_final = tmp_path / "nofinal.txt"
    no_final.write_text(text.rstrip("\n"))
    for remote in (crlf, no_final):
        assert remote.read_bytes() != shipped.read_bytes()
        assert compare_file_lists(remote, shipped) == names
        assert main(["same-names", str(remote), str(shipped)]) == 0
    other = tmp_path / "other.txt"
    other.write_text("\n".join(names[1:] + ["zzNEWvideo01.mkv"]) + "\n")
    with pytest.raises(DownloadError) as e:
        compare_file_lists(other, shipped)
    msg = str(e.value)
    assert "1 only in the remote list: zzNEWvideo01.mkv" in msg
    assert f"1 only in the shipped: {names[0]}" in msg
    assert main(["same-names", str(other), str(shipped)]) == 1
    assert "zzNEWvideo01.mkv" in capsys.readouterr().err
