"""The README's demo command, end to end, on the synthetic mini-AVA (about 5 min on 2 cores).

In a scratch copy of the repository: `snakemake --cores all --configfile config/demo.yaml` from
the mirror generation to results/demo/README.md; then the table, SHA256SUMS, protected outputs,
Snakemake's rerun triggers after touching only the evaluation code, and `snakemake --report`.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess

import pytest
import yaml

# ~5 min on an idle 2-core machine; the limits leave room for a loaded one
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


@pytest.fixture(scope="module")
def demo(demo_run):
    print(f"demo workflow: {demo_run.seconds:.0f} s")
    return demo_run.repo, demo_run.log


def _rows(table: str) -> list[list[str]]:
    return [
        [c.strip() for c in ln.strip().strip("|").split("|")]
        for ln in table.splitlines()
        if ln.startswith("| [")
    ]


def test_demo_table_says_synthetic_and_matches_the_metrics(demo):
    repo, _ = demo
    table = (repo / "results" / "demo" / "README.md").read_text()
    assert "<!-- acrn-dataset: synthetic -->" in table and "NOT AVA results" in table
    assert "not yet run" not in table
    rows = _rows(table)
    assert len(rows) == 2
    for row, v in zip(rows, ("2.1", "2.2"), strict=True):
        # Model .. gpus, mAP, epoch, mAP (last), ref., diff., mAP (official), mAP (80 cls.),
        # released, released (80 cls.), log, json, ckpt, dataset
        assert row[18] == f"synthetic mini-AVA {v} (demo, NOT AVA)"
        run = repo / f"results/demo/ours/v{v}"
        for col, kind, mode in ((6, "ours", "mmaction"), (11, "ours", "official"),
                                (8, "final", "mmaction")):  # fmt: skip
            m = json.loads((repo / f"results/demo/{kind}/v{v}/metrics_{mode}.json").read_text())
            assert row[col] == f"{m['mAP'] * 100:.2f}"
        mm = json.loads((run / "metrics_mmaction.json").read_text())
        assert row[12] == f"{mm['classes_80']['mAP'] * 100:.2f}"
        ref = 27.1 if v == "2.1" else 27.8
        assert row[9] == f"{ref:.1f}"
        assert row[10] == "n/a (not AVA)" and row[13] == row[14] == "-"  # no released checkpoint
        # validated every epoch; the best epoch (mmcv EvalHook) is the one published and scored
        best = json.loads((run / "train" / "best.json").read_text())
        epochs = yaml.safe_load((repo / "config" / "demo.yaml").read_text())["experiment"]["train"][
            "epochs"
        ]
        assert sorted(map(int, best["scores"])) == list(range(1, epochs + 1))
        assert row[7] == f"{best['best_epoch']} of {epochs}"
        published = json.loads((run / "published" / f"{row[0].split(']')[0][1:]}.json").read_text())
        assert published["selected"] == "best" and published["epoch"] == best["best_epoch"]
        val = json.loads((run / "train" / "val" / f"epoch_{best['best_epoch']}.json").read_text())
        ours = json.loads((run / "metrics_mmaction.json").read_text())
        assert ours["mAP"] == val["mmaction"]["mAP"] == best["best_score"]
        # log, json and ckpt link to files that exist, with their sha256 prefix
        for cell in row[15:18]:
            m = re.fullmatch(r"\[\w+\]\(([^)]+)\) `([0-9a-f]{12})`", cell)
            assert m, cell
            assert (repo / "results" / "demo" / m.group(1)).is_file()


def test_demo_scores_both_class_lists_and_they_differ_only_by_the_extra_class(demo):
    """The mirror's 80-class list is unpacked and scored (evaluation, validation, the val log
    line): the 60 classes keep their AP, the 80-class mAP adds the one class with val ground
    truth outside the 60 (25 "dig", the synthetic bend actors), and so differs from the 60's."""
    repo, _ = demo
    for v in ("2.1", "2.2"):
        assert (repo / f"resources/demo/annotations/v{v}/ava_action_list_v{v}.pbtxt").is_file()
        run = repo / f"results/demo/ours/v{v}"
        mm = json.loads((run / "metrics_mmaction.json").read_text())
        c80 = mm["classes_80"]
        assert c80["labelmap"]["path"].endswith(f"v{v}/ava_action_list_v{v}.pbtxt")
        assert all(c80["per_class"][c] == ap for c, ap in mm["per_class"].items())
        with_gt = {c for c, n in c80["num_groundtruth"].items() if n}
        assert with_gt - set(mm["per_class"]) == {"25"}
        aps = [c80["per_class"][c] for c in with_gt]
        assert c80["mAP"] == pytest.approx(sum(aps) / len(aps), abs=1e-12)
        assert c80["mAP"] != mm["mAP"]
        best = json.loads((run / "train" / "best.json").read_text())
        e = best["best_epoch"]
        val = json.loads((run / "train" / "val" / f"epoch_{e}.json").read_text())
        log = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
        line = [r for r in log if r.get("mode") == "val" and r["epoch"] == e][-1]
        assert line["80cls_mAP@0.5IOU"] == val["mmaction"]["classes_80"]["mAP"] == c80["mAP"]
        compare = (repo / f"results/demo/report/v{v}_compare.txt").read_text()
        assert "class list: the reference log holds 80cls_mAP@0.5IOU" in compare


def test_demo_frames_report_lists_the_damaged_video(demo):
    """The demo mirror has a video with damaged packets inside the window, NTSC rates and a
    non-square pixel aspect: the run finishes, and the frames report (linked from the table)
    lists the damaged video first with its decoder messages."""
    repo, _ = demo
    report = (repo / "results" / "demo" / "frames_report.md").read_text()
    damaged = report.split("## Videos with decoder messages")[1].split("## All videos")[0]
    assert "_syn05pU6kL" in damaged and "message(s)" in damaged
    extract = json.loads(
        (repo / "resources" / "demo" / "frames" / "_syn05pU6kL" / "extract.json").read_text()
    )
    assert extract["decode_errors"], extract
    rates, aspects = set(), set()
    for p in (repo / "resources" / "demo" / "frames").glob("*/extract.json"):
        source = json.loads(p.read_text())["source"]
        rates.add(source["r_frame_rate"])
        aspects.add(source["sample_aspect_ratio"])
    assert {"24000/1001", "30000/1001"} <= rates, rates  # NTSC rates
    assert aspects - {"1:1", "0:1"}, aspects  # a non-square pixel aspect
    table = (repo / "results" / "demo" / "README.md").read_text()
    assert "[frames report](frames_report.md)" in table
    assert re.search(r"Frames extracted with ffmpeg \S+ \(9 video\(s\)\); pinned major 5", table)


def test_demo_checksums_verify(demo):
    repo, _ = demo
    sums = (repo / "results" / "demo" / "SHA256SUMS").read_text()
    assert "results/demo/ours/v2.1/metrics_official.json" in sums
    assert re.search(r"  resources/demo/videos/-\S+\.(mkv|mp4|webm)\n", sums)  # inputs too
    r = subprocess.run(
        ["sha256sum", "-c", "--quiet", "results/demo/SHA256SUMS"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_expensive_outputs_are_protected(demo):
    repo, _ = demo
    videos = list((repo / "resources" / "demo" / "videos").iterdir())
    assert videos
    epochs = yaml.safe_load((repo / "config" / "demo.yaml").read_text())["experiment"]["train"][
        "epochs"
    ]
    final = [repo / f"results/demo/ours/v{v}/trained/epoch_{epochs}.pth" for v in ("2.1", "2.2")]
    published = list((repo / "results" / "demo" / "ours").glob("v*/published/*.pth"))
    assert len(published) == 2
    for p in videos + final + published:
        assert not os.stat(p).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH), p


def test_touching_evaluation_code_reruns_only_evaluation_and_table(
    demo_run, tmp_path, snakemake, job_counts
):
    repo = demo_run.copy(tmp_path / "repo")  # edits code: not the run the other tests share
    r = snakemake(repo, "-n", "--quiet", "rules", "--configfile", "config/demo.yaml")
    assert "Nothing to be done" in r.stdout + r.stderr, (r.stdout + r.stderr)[-2000:]
    # an edit (Snakemake compares the checksum of small inputs: a bare `touch` is not a change)
    for p in ("acrn/evaluate.py", "acrn/metric/core.py"):
        with open(repo / p, "a") as f:
            f.write("\n# edited by test_workflow_demo\n")
    r = snakemake(repo, "-n", "--quiet", "rules", "--configfile", "config/demo.yaml")
    assert r.returncode == 0, r.stderr[-2000:]
    # evaluation (best and last epoch x 2 versions x 2 modes), then what reads the metrics:
    # charts, table; nothing upstream
    assert job_counts(r.stdout + r.stderr) == {
        "evaluate_detections": 8,
        "make_plots": 2,
        "results_table": 1,
        "all": 1,
        "total": 12,
    }


def test_report_builds(demo, snakemake):
    repo, _ = demo
    r = snakemake(repo, "--report", "report.html", "--configfile", "config/demo.yaml", timeout=180)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    html = (repo / "report.html").read_text(errors="replace")
    assert len(html) > 10_000 and "per_class_ap" in html and "table.html" in html


def test_a_damaged_zip_is_extracted_again_without_forcerun(demo, snakemake, job_counts):
    """frames.layout zip: 2 files per video. A damaged member fails the read naming the video
    and the member; the zip is moved aside, so the next run re-extracts that video only (a
    missing output), without --forcerun, to the same frames (same digest)."""
    import zipfile

    from acrn.data.decode import FrameError
    from acrn.data.frame_store import read_members

    repo, _ = demo
    frames = repo / "resources" / "demo" / "frames"
    folders = sorted(p for p in frames.iterdir())
    assert len(folders) == 9
    assert all(
        sorted(q.name for q in f.iterdir()) == ["extract.json", "frames.zip"] for f in folders
    )
    folder = frames / "syn02-mR3eF"
    before = json.loads((folder / "extract.json").read_text())
    assert before["layout"] == "zip"
    with zipfile.ZipFile(folder / "frames.zip") as z:
        offset = z.getinfo("img_00010.jpg").header_offset
    data = bytearray((folder / "frames.zip").read_bytes())
    data[offset + 30 + 13 + 50] ^= 0x55
    (folder / "frames.zip").write_bytes(bytes(data))
    with pytest.raises(FrameError, match=r"member img_00010\.jpg of video syn02-mR3eF: damaged"):
        read_members(str(folder), ["img_00010.jpg"], "syn02-mR3eF,0003")
    assert not (folder / "frames.zip").exists()
    r = snakemake(repo, "-n", "frames", "--configfile", "config/demo.yaml", "--quiet", "rules")
    assert job_counts(r.stdout + r.stderr) == {
        "extract_frames": 1,
        "frames_report": 1,
        "frames": 1,
        "total": 3,
    }, (r.stdout + r.stderr)[-2000:]
    r = snakemake(repo, "frames", "--cores", "all", "--configfile", "config/demo.yaml")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    after = json.loads((folder / "extract.json").read_text())
    assert after["frames_digest"] == before["frames_digest"]
    assert len(list(folder.glob("frames.zip.damaged-*"))) == 1  # kept, never deleted
