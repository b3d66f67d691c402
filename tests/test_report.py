"""acrn.report: the results table, SHA256SUMS (checked with the real sha256sum), README section."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from acrn.report import (
    END,
    START,
    ReportError,
    _gpus_cell,
    main,
    not_run_spec,
    render,
    update_readme,
)

ROOT = Path(__file__).resolve().parents[1]


def _metrics(path: Path, m: float, per_class=None, m80=None):
    """A metrics JSON; the mmaction mode's also over the 80-class list (``m80``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "mAP": m,
        "per_class": per_class or {"12": m, "80": None},
        "class_names": {"12": "stand", "80": "watch (a person)"},
    }
    if m80 is not None:
        data["classes_80"] = {"mAP": m80, "per_class": {"12": m, "2": m80 / 2, "80": None}}
    path.write_text(json.dumps(data))
    return str(path)


def _pair(d: Path, m: float, official: float, m80: float) -> dict:
    return {
        "mmaction": _metrics(d / "metrics_mmaction.json", m, m80=m80),
        "official": _metrics(d / "metrics_official.json", official),
    }


def _run(tmp_path: Path, dataset: str) -> dict:
    """A results tree like the workflow's, with relative paths (the workflow runs from the root)."""
    rows = []
    for v, ours, official, ref in (("2.1", 0.27344, 0.26501, 27.1), ("2.2", 0.2790, 0.2701, 27.8)):
        d = Path(f"results/{dataset}/ours/v{v}")
        (d / "train").mkdir(parents=True)
        (d / "train" / "train_log.jsonl").write_text(
            "\n".join(
                json.dumps(
                    {
                        "mode": "train",
                        "epoch": 1,
                        "iter": i,
                        "lr": 0.01 * i,
                        "loss": 1 / i,
                        "time": 0.5,
                        "epoch_len": 3,
                        "global_iter": i,
                    }
                )
                for i in (1, 2, 3)
            )
            + "\n"
        )
        (Path("logs") / v).mkdir(parents=True)
        (Path("logs") / v / "train.log").write_text("Epoch [1][20/40] loss: 0.5\n")
        (d / "published").mkdir()
        (d / "published" / f"name{v}-abcdef12.pth").write_bytes(b"weights" + v.encode())
        rows.append(
            {
                "version": v,
                "name": f"cfg_{v}",
                "reference": ref,
                "gpus": 8 if dataset == "ava" else 0,
                "metrics": _pair(d, ours, official, ours - 0.05),
                "log": str(Path("logs") / v / "train.log"),
                "json": str(d / "train" / "train_log.jsonl"),
                "ckpt": str(d / "published"),
                # v2.1 trained the 8-GPU recipe on 4 GPUs (2 micro-batches per step), best by
                # the default key; v2.2 has a final.json without the spread (an older run: the
                # row's gpus), best by the 80-class mAP
                "run": _final_json(
                    d / "train" / "final.json",
                    **(
                        {"recipe_gpus": 8, "processes_seen": [4], "device": "cuda"}
                        if v == "2.1"
                        else {"key": "80cls_mAP@0.5IOU"}
                    ),
                ),
                "final_metrics": _pair(d.parent.parent / "final" / f"v{v}", ours - 0.01, 0.2, 0.2),
                "released_metrics": None
                if v == "2.2"
                else _pair(d.parent.parent / "released" / f"v{v}", 0.27, 0.26, 0.2233),
            }
        )
    Path("resources/x").mkdir(parents=True)
    Path("resources/x/-vid_a.mkv").write_bytes(b"video")
    return {
        "dataset": dataset,
        "description": f"{dataset} data",
        "kind": "ours",
        "rows": rows,
        "inputs": ["resources/x"],
    }


def _final_json(path: Path, **spread) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    run = {"checkpoint": "x", "epochs": 10, "best_epoch": 7, "key": "mAP@0.5IOU", **spread}
    path.write_text(json.dumps(run))
    return str(path)


def test_table_sums_and_readme(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = _run(tmp_path, "ava")
    rc = main(
        [
            "table",
            "--spec",
            json.dumps(spec),
            "--out",
            "results/README.md",
            "--sums",
            "results/SHA256SUMS",
            "--html",
            "results/ava/report/table.html",
            "--cache",
            "results/ava/.cache.json",
        ]
    )
    assert rc == 0
    text = Path("results/README.md").read_text()
    lines = [ln for ln in text.splitlines() if ln.startswith("| [cfg_")]
    assert len(lines) == 2
    cells = [c.strip() for c in lines[0].strip("|").split("|")]
    # Model, Modality, Pretrained, Backbone, Input, gpus, mAP, epoch, mAP (last), ref., diff.,
    # mAP (official), mAP (80 cls.), released, released (80 cls.), log, json, ckpt, dataset
    assert "| mAP (official) | mAP (80 cls.) | released | released (80 cls.) | log |" in text
    assert cells[1:7] == ["RGB", "Kinetics-400", "ResNet50", "32x2", "8 (on 4)", "27.34"]
    assert cells[7:11] == ["7 of 10", "26.34", "27.1", "+0.24"]
    assert cells[11:15] == ["26.50", "22.34", "27.00", "22.33"] and cells[18] == "AVA v2.1 val"
    assert cells[17].startswith("[ckpt](ava/ours/v2.1/published/name2.1-abcdef12.pth) `")
    v22 = [c.strip() for c in lines[1].strip("|").split("|")]
    assert v22[12] == "22.90" and v22[13:15] == ["-", "-"]  # no released checkpoint configured
    assert v22[7] == "7 of 10 (by 80cls_mAP@0.5IOU)"  # train.best_by other than the default
    assert v22[5] == "8"
    assert "ref." in text and "Synthetic" not in text
    # every artefact is in SHA256SUMS and `sha256sum -c` accepts it from the root
    sums = Path("results/SHA256SUMS").read_text()
    for p in (
        "resources/x/-vid_a.mkv",
        "logs/2.2/train.log",
        "results/ava/ours/v2.2/metrics_official.json",
        "results/ava/ours/v2.1/published/name2.1-abcdef12.pth",
    ):
        assert f"  {p}\n" in sums
    assert subprocess.run(["sha256sum", "-c", "--quiet", "results/SHA256SUMS"]).returncode == 0
    Path("resources/x/-vid_a.mkv").write_bytes(b"tampered")
    assert (
        subprocess.run(
            ["sha256sum", "-c", "--quiet", "results/SHA256SUMS"], capture_output=True
        ).returncode
        != 0
    )
    assert "<table>" in Path("results/ava/report/table.html").read_text()
    # README section between the markers; the rest of the README untouched
    Path("README.md").write_text(f"# Project\n\nintro\n{START}\nold table\n{END}\nafter\n")
    assert main(["readme", "--table", "results/README.md", "--readme", "README.md"]) == 0
    readme = Path("README.md").read_text()
    assert readme.startswith("# Project\n\nintro\n") and readme.endswith(f"{END}\nafter\n")
    assert (
        "old table" not in readme
        and "(results/ava/ours/v2.1/published/name2.1-abcdef12.pth)" in readme
    )


def test_synthetic_run_is_labelled_and_kept_out_of_the_readme(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = _run(tmp_path, "synthetic")
    assert main(["table", "--spec", json.dumps(spec), "--out", "results/README.md"]) == 0
    text = Path("results/README.md").read_text()
    assert "NOT AVA results" in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| [cfg_")]
    assert all(
        "synthetic mini-AVA" in r and "(demo, NOT AVA)" in r and "Kinetics-400" not in r
        for r in rows
    )
    assert len(rows) == 2
    assert all(r.split("|")[11].strip() == "n/a (not AVA)" for r in rows)  # no diff to AVA's mAP
    assert "### AVA2.1\n" not in text
    Path("README.md").write_text(f"{START}\n{END}\n")
    with pytest.raises(ReportError, match="'synthetic' dataset; only real AVA results"):
        update_readme("results/README.md", "README.md")
    assert Path("README.md").read_text() == f"{START}\n{END}\n"


def test_errors_name_the_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    spec = _run(tmp_path, "ava")
    Path(spec["rows"][0]["metrics"]["mmaction"]).write_text(json.dumps({"mAP": 27.2}))
    assert main(["table", "--spec", json.dumps(spec), "--out", "results/README.md"]) == 1
    assert (
        "metrics_mmaction.json: key mAP: expected a fraction in [0, 1], got 27.2"
        in capsys.readouterr().err
    )
    Path(spec["rows"][0]["metrics"]["mmaction"]).write_text(json.dumps({"mAP": 0.272}))
    assert main(["table", "--spec", json.dumps(spec), "--out", "results/README.md"]) == 1
    err = capsys.readouterr().err
    assert (
        "metrics_mmaction.json: key classes_80.mAP: expected a fraction in [0, 1], got None" in err
    )
    Path("README.md").write_text("no markers\n")
    Path("t.md").write_text(f"<!-- acrn-dataset: ava -->\n{START}\nx\n{END}\n")
    with pytest.raises(ReportError, match="README.md: expected exactly one"):
        update_readme("t.md", "README.md")
    assert not Path("results/README.md").exists()


def test_plots(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    spec = _run(tmp_path, "ava")
    row = spec["rows"][0]
    # a reference log in mmcv's format (meta line, no epoch_len), and its text log
    Path("ref.log.json").write_text(
        '{"seed": 0}\n'
        + "".join(
            json.dumps(
                {"mode": "train", "epoch": 1, "iter": i, "lr": 0.01 * i, "loss": 2 / i, "time": 0.4}
            )
            + "\n"
            for i in (1, 2)
        )
        + '{"mode": "val", "epoch": 1, "iter": 7, "lr": 0.03, "mAP@0.5IOU": 0.25}\n'
    )
    Path("ref.log").write_text("... - INFO - Epoch [1][1/3]\tlr: 1.000e-02, loss: 2.0\n")
    args = ["plots", "--log", row["json"], "--metrics", row["metrics"]["mmaction"]]
    args += ["--curves", "c.svg", "--per-class", "p.svg", "--title", "v2.1"]
    assert main(args) == 0
    curves = Path("c.svg").read_text()
    for text in ("training loss", "learning rate", "seconds per iteration", "iteration", "epoch"):
        assert f">{text}" in curves, text
    assert ">ours<" in curves and "MMAction2 0.x log" not in curves
    assert curves.count("no data yet") == 1  # no val line of ours: the mAP panel says so
    assert main([*args, "--reference", "ref.log.json", "--reference-text", "ref.log"]) == 0
    curves = Path("c.svg").read_text()
    assert ">MMAction2 0.x log<" in curves and "no data yet" not in curves
    assert "ours vs MMAction2" in curves and "assumed" not in curves
    per_class = Path("p.svg").read_text()
    assert "12 stand" in per_class and "watch" not in per_class  # class 80 has no AP (null)
    Path("bad.jsonl").write_text('{"mode": "train", "epoch": 1, "iter": 1, "lr": 0.1}\nnot json\n')
    bad = ["plots", "--log", "bad.jsonl", "--metrics", row["metrics"]["mmaction"]]
    assert main([*bad, "--curves", "c.svg", "--per-class", "p.svg"]) == 1
    assert "bad.jsonl:2: not JSON" in capsys.readouterr().err


def test_released_table_has_the_80_class_column(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    row = {"version": "2.1", "name": "cfg", "reference": 27.1, "gpus": 8, "log": None,
           "json": None, "ckpt": None, "metrics": _pair(Path("r"), 0.271, 0.262, 0.2149)}  # fmt: skip
    spec = {"dataset": "ava", "description": "AVA", "kind": "released", "rows": [row]}
    text, _ = render(spec, None, Path("."))
    assert "| mAP | ref. | diff. | mAP (official) | mAP (80 cls.) | log |" in text
    assert "| 27.10 | 27.1 | +0.00 | 26.20 | 21.49 | - | - | - | AVA v2.1 val |" in text


def test_committed_results_readme_is_the_not_yet_run_table():
    """results/README.md in git shows no number a real run did not produce."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    text, artefacts = render(not_run_spec(cfg), None, Path("results"))
    assert artefacts == []
    assert (ROOT / "results" / "README.md").read_text() == text
    assert text.count("not yet run") >= 6 and "27.1" in text and "27.8" in text


def test_sha256sum_tool_present():
    assert shutil.which("sha256sum"), "coreutils sha256sum is needed to check SHA256SUMS"


@pytest.mark.parametrize(
    ("run", "cell"),
    [
        ({"recipe_gpus": 8, "processes_seen": [8], "device": "cuda"}, "8"),
        ({"recipe_gpus": 8, "processes_seen": [2], "device": "cuda"}, "8 (on 2)"),
        ({"recipe_gpus": 8, "processes_seen": [8, 4], "device": "cuda"}, "8 (on 8, 4)"),
        ({"recipe_gpus": 1, "processes_seen": [1], "device": "cpu"}, "1 (CPU)"),
        ({"recipe_gpus": 4, "processes_seen": [2], "device": "cpu"}, "4 (on 2 CPU)"),
        (None, "0 (CPU)"),  # no final.json that says: the row's gpus
    ],
)
def test_gpus_cell_names_the_recipe_and_the_processes(run, cell):
    assert _gpus_cell(0, run) == cell
