"""The results table, ``SHA256SUMS``, the README section, and the charts of the Snakemake report.

``results/README.md`` regenerates the table of MMAction2's model card (columns Model, Modality,
Pretrained, Backbone, Input, gpus, mAP, log, json, ckpt) for AVA v2.1 and v2.2, with our mAP
(MMAction2 0.x ``ava_eval`` mode over the 60-class list, the way the reference numbers are
computed today) next to the reference value and the difference, the official ActivityNet-mode
mAP, the MMAction2-mode mAP over all 80 classes (``mAP (80 cls.)``: the ``classes_80`` of the
mmaction metrics, the list of the ACRN configs at their commit), a sha256 for every artefact,
and the data set that produced the numbers. A synthetic (demo) run carries a banner
and a dataset column saying so, and ``readme`` refuses to copy it into the project README.

CLI (the workflow's ``table``, ``readme``, ``plots`` rules)::

    python -m acrn.report table --spec SPEC_JSON --out results/README.md --sums results/SHA256SUMS \
        [--html results/ava/report/table.html] [--cache results/ava/.sha256_cache.json]
    python -m acrn.report readme --table results/README.md --readme README.md
    python -m acrn.report not-run --config config/config.yaml --out results/README.md
    python -m acrn.report plots --log train_log.jsonl --metrics metrics.json \
        --curves curves.svg --per-class per_class_ap.svg --title "v2.1" \
        [--reference REF.log.json [--reference-text REF.log]]

SPEC_JSON (a JSON string, or ``@file``)::

    {"dataset": "ava" | "synthetic", "description": str, "kind": "ours" | "released",
     "rows": [{"version": "2.1", "name": MMAction2 config name, "reference": 27.1,
               "gpus": 8 (the recipe's GPUs; with "run", final.json adds the processes:
                         "8 (on 4)"),
               "metrics": {"mmaction": path (with classes_80), "official": path},
               "log": path | null, "json": path | null, "ckpt": path,
               "run": final.json | absent, "final_metrics"/"released_metrics": {...} | null}],
     "inputs": [paths checksummed into SHA256SUMS besides the rows' artefacts]}
"""

from __future__ import annotations

import argparse
import html
import json
import math
import os
import re
import sys
from pathlib import Path

from acrn.fingerprint import HashCache
from acrn.fsutil import atomic_write
from acrn.metric.files import KEY_80
from acrn.mmcv_log import (
    MAP80_KEY,
    MAP_KEY,
    LogError,
    TrainLog,
    epoch_len_from_text_log,
    lr_value,
    read_log,
)

START = "<!-- acrn-results:start -->"
END = "<!-- acrn-results:end -->"
DATASET_TAG = "<!-- acrn-dataset: {} -->"
NOT_RUN = "not yet run"
MODEL_CARD_URL = "https://github.com/open-mmlab/mmaction2/tree/0.x/configs/detection/acrn"


class ReportError(RuntimeError):
    """An input of the report is missing or malformed; the message names it."""


# ------------------------------------------------------------------------- checksums


def expand(paths: list[str]) -> list[Path]:
    """Files of ``paths``; a directory contributes its files (sorted, recursively)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(
                sorted(q for q in p.rglob("*") if q.is_file() and not q.name.startswith("."))
            )
        else:
            out.append(p)
    return out


def write_sums(paths: list[Path], out: str | os.PathLike, cache: HashCache) -> dict[str, str]:
    """``sha256sum -c`` compatible file (paths as given, relative to the working directory)."""
    sums: dict[str, str] = {}
    for p in paths:
        sums.setdefault(str(p), cache.sha256(p))
    with atomic_write(out) as f:
        for p, h in sorted(sums.items()):
            f.write(f"{h}  {p}\n")
    return sums


# ------------------------------------------------------------------------- the table


def _fraction(value, path: str, key: str) -> float:
    if not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ReportError(f"{path}: key {key}: expected a fraction in [0, 1], got {value!r}")
    return value


def _load_metrics(path: str, classes_80: bool = False) -> dict:
    """A metrics JSON with its ``mAP`` checked (and ``classes_80.mAP`` with ``classes_80``)."""
    try:
        m = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ReportError(f"{path}: no such metrics file") from None
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}: not JSON ({e})") from None
    _fraction(m.get("mAP"), path, "mAP")
    if classes_80:
        _fraction((m.get(KEY_80) or {}).get("mAP"), path, f"{KEY_80}.mAP")
    return m


def _pct(x: float | None) -> str:
    return NOT_RUN if x is None else f"{x:.2f}"


def _link(label: str, path: str | None, digest: str | None, base: Path) -> str:
    if path is None:
        return "-"
    rel = os.path.relpath(path, base)
    return f"[{label}]({rel}) `{digest[:12]}`" if digest else f"[{label}]({rel})"


def dataset_label(dataset: str, description: str, version: str) -> str:
    if dataset == "synthetic":
        return f"synthetic mini-AVA {version} (demo, NOT AVA)"
    return f"AVA v{version} val"


def ffmpeg_line(ff: dict) -> str:
    """Which ffmpeg extracted the frames (from each video's extract.json) against the pinned
    major version (config ``frames.ffmpeg_major``; ``any`` accepts another)."""
    versions: dict[str, int] = {}
    for path in ff.get("extract_infos", []):
        try:
            line = json.loads(Path(path).read_text())["ffmpeg"]["version"]
        except (OSError, KeyError, TypeError, json.JSONDecodeError):
            line = "unknown"
        m = re.search(r"version\s+(\S+)", line)
        version = m.group(1) if m else line
        versions[version] = versions.get(version, 0) + 1
    found = ", ".join(f"{v} ({n} video(s))" for v, n in sorted(versions.items())) or "unknown"
    pinned = ff.get("major")
    setting = (
        "any major accepted (`frames.ffmpeg_major: any`)"
        if pinned == "any"
        else f"pinned major {pinned} (`frames.ffmpeg_major`)"
    )
    return f"Frames extracted with ffmpeg {found}; {setting}."


def _intro(spec: dict, cache: HashCache | None, base: Path, artefacts: list[Path]) -> list[str]:
    kind, synthetic = spec.get("kind", "ours"), spec["dataset"] == "synthetic"
    title = (
        "ACRN on AVA: reproduction results"
        if kind == "ours"
        else "MMAction2's released ACRN checkpoints, evaluated"
    )
    lines = [DATASET_TAG.format(spec["dataset"]), "", f"# {title}", ""]
    if synthetic:
        lines += [
            "> **Synthetic demo run.** These numbers come from the synthetic mini-AVA generated by",
            "> `acrn.synthetic`: they check that the pipeline runs end to end. They are NOT AVA results",
            "> and say nothing about the reproduction of 27.1 / 27.8 mAP.",
            "",
        ]
    lines += [
        f"Data: {spec['description']}. mAP in percent, frame-mAP at IoU 0.5 on the validation split.",
        "`mAP` is computed as MMAction2 0.x computes it (`ava_eval`, as the reference numbers);",
        "`mAP (official)` follows ActivityNet's `get_ava_performance.py` (top-50 boxes per keyframe).",
        "`mAP (80 cls.)` is the same `ava_eval` over AVA's 80-class list, the `label_file` of the ACRN",
        "configs at their commit (MMAction2 switched them to the 60-class list in #1081, 2021-08-17).",
        "`ref.` is MMAction2's model card (one decimal), `diff.` = ours - ref. Checksums: first 12 hex of the sha256;",
        "all files are in `SHA256SUMS` (check from the repository root: "
        f"`sha256sum -c {spec.get('sums', 'results/SHA256SUMS')}`).",
    ]
    if kind == "ours":
        lines += [
            "As MMAction2 0.x, the model is validated after every epoch and the best epoch's",
            "checkpoint (mmcv's EvalHook, `save_best='auto'` on `mAP@0.5IOU`; another `train.best_by`",
            "is named in the `epoch` cell) is the one published: `mAP`, `mAP (official)` and",
            "`mAP (80 cls.)` are that checkpoint's, `epoch` says which epoch of how many,",
            "`mAP (last)` is the last epoch's checkpoint, `released` (and `released (80 cls.)`) is",
            "MMAction2's released checkpoint evaluated by this pipeline (`-`: not configured).",
        ]
    if spec.get("ffmpeg"):
        lines += ["", ffmpeg_line(spec["ffmpeg"])]
    if spec.get("frames_report"):
        fr_path = spec["frames_report"]
        digest = cache.sha256(fr_path) if cache is not None and Path(fr_path).is_file() else None
        lines += [
            "",
            "Frames: "
            + _link("frames report", fr_path, digest, base)
            + " (per video: source fps, size, frame count, decoder messages of damaged packets).",
        ]
        if digest is not None:
            artefacts.append(Path(fr_path))
    return [*lines, "", START]


def _maps(paths: dict | None, artefacts: list[Path]) -> tuple[float | None, ...]:
    """(mmaction-mode, official-mode, mmaction-mode over 80 classes) mAP in percent of a
    metrics pair, or (None, None, None)."""
    if not paths:
        return None, None, None
    artefacts += [Path(paths["mmaction"]), Path(paths["official"])]
    mm = _load_metrics(paths["mmaction"], classes_80=True)
    return mm["mAP"] * 100, _load_metrics(paths["official"])["mAP"] * 100, mm[KEY_80]["mAP"] * 100


def _load_run(run_json: str | None, artefacts: list[Path]) -> dict | None:
    """The training's final.json (None when the row has none)."""
    if not run_json:
        return None
    artefacts.append(Path(run_json))
    try:
        return json.loads(Path(run_json).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ReportError(f"{run_json}: not a readable final.json of acrn.train ({e})") from None


def _gpus_cell(gpus, run: dict | None) -> str:
    """The recipe's GPUs, and the processes the run had when they differ: ``8``, ``8 (on 4)``,
    ``8 (on 8, 4)`` (requeued on fewer GPUs), ``1 (CPU)``; without a final.json that says,
    the row's ``gpus`` (0: a CPU run)."""
    if run and isinstance(run.get("recipe_gpus"), int):
        recipe = run["recipe_gpus"]
        seen = run.get("processes_seen") or [run.get("processes")]
        cpu = " CPU" if run.get("device") == "cpu" else ""
        if seen == [recipe]:
            return f"{recipe} (CPU)" if cpu else str(recipe)
        return f"{recipe} (on {', '.join(map(str, seen))}{cpu})"
    return "0 (CPU)" if gpus == 0 else str(gpus)


def _epoch_cell(run: dict | None) -> str:
    if run is None:
        return "-"
    epochs = run.get("epochs", "?")
    best = run.get("best_epoch")
    if not best:
        return f"last ({epochs}), not validated"
    key = run.get("key", MAP_KEY)
    return f"{best} of {epochs}" + ("" if key == MAP_KEY else f" (by {key})")


def _files_cells(row: dict, cache: HashCache | None, base: Path, artefacts: list[Path]) -> list:
    cells = []
    for key in ("log", "json"):
        p = row.get(key)
        if p is not None and cache is not None:
            cells.append(_link(key, p, cache.sha256(p), base))
            artefacts.append(Path(p))
        else:
            cells.append(_link(key, p, None, base))
    ckpt = row.get("ckpt")
    if ckpt is None:
        return [*cells, "-"]
    files = expand([ckpt])
    pth = [f for f in files if f.suffix == ".pth"] or files
    if not pth:
        raise ReportError(f"{ckpt}: no checkpoint file")
    artefacts += files
    digest = cache.sha256(pth[0]) if cache else None
    return [*cells, _link("ckpt", str(pth[0]), digest, base)]


def _row(row: dict, spec: dict, cache, base: Path, artefacts: list[Path]) -> list[str]:
    kind, synthetic = spec.get("kind", "ours"), spec["dataset"] == "synthetic"
    v, ref = row["version"], row["reference"]
    ours, official, ours80 = _maps(row.get("metrics"), artefacts)
    if ours is None:
        diff = NOT_RUN
    elif synthetic:
        diff = "n/a (not AVA)"  # a synthetic mAP is not comparable with the AVA reference
    else:
        diff = f"{ours - ref:+.2f}"
    ran = ours is not None
    run = _load_run(row.get("run"), artefacts) if ran and kind == "ours" else None
    name = row["name"]
    cells = [
        f"[{name}]({MODEL_CARD_URL}/{name}.py)",
        "RGB",
        "Kinetics-400" if not synthetic else "synthetic init",
        "ResNet50" if not synthetic else "tiny SlowFast",
        row.get("input", "32x2"),
        "-" if not ran and kind == "ours" else _gpus_cell(row.get("gpus"), run),
        _pct(ours),
    ]
    if kind == "ours":
        last, _, _ = _maps(row.get("final_metrics") if ran else None, artefacts)
        released, _, released80 = _maps(row.get("released_metrics") if ran else None, artefacts)
        epoch = _epoch_cell(run)
        cells += [epoch, _pct(last) if ran else NOT_RUN]
    cells += [f"{ref:.1f}", diff, _pct(official), _pct(ours80)]
    if kind == "ours":
        none = ran and row.get("released_metrics") is None
        cells += ["-", "-"] if none else [_pct(released), _pct(released80)]
    files = _files_cells(row, cache, base, artefacts) if ran else ["-", "-", "-"]
    label = dataset_label(spec["dataset"], spec["description"], v) if ran else NOT_RUN
    return [*cells, *files, label]


def render(spec: dict, cache: HashCache | None, base: Path) -> tuple[str, list[Path]]:
    """Markdown of the results page, and the artefacts it names (for SHA256SUMS)."""
    kind, synthetic = spec.get("kind", "ours"), spec["dataset"] == "synthetic"
    artefacts: list[Path] = []
    lines = _intro(spec, cache, base, artefacts)
    header = ["Model", "Modality", "Pretrained", "Backbone", "Input", "gpus", "mAP"]
    if kind == "ours":
        header += ["epoch", "mAP (last)"]
    header += ["ref.", "diff.", "mAP (official)", "mAP (80 cls.)"]
    if kind == "ours":
        header += ["released", "released (80 cls.)"]
    header += ["log", "json", "ckpt", "dataset"]
    for row in spec["rows"]:
        v = row["version"]
        heading = f"AVA{v}" if not synthetic else f"synthetic mini-AVA, AVA{v} layout"
        lines += ["", f"### {heading}", ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("| " + " | ".join([":-:"] * len(header)) + " |")
        lines.append("| " + " | ".join(_row(row, spec, cache, base, artefacts)) + " |")
    lines += ["", END, ""]
    return "\n".join(lines), artefacts


def not_run_spec(cfg: dict) -> dict:
    """The spec of the committed table, before any run: every number "not yet run"."""
    return {
        "dataset": cfg["dataset"],
        "description": cfg["description"],
        "kind": "ours",
        "rows": [
            {
                "version": v,
                "name": cfg["experiment_names"][v],
                "reference": cfg["reference"][v],
                "gpus": (cfg.get("experiment", {}).get("train") or {}).get("recipe_gpus", 8),
                "metrics": None,
                "log": None,
                "json": None,
                "ckpt": None,
            }
            for v in cfg["versions"]
        ],
    }


def render_html(spec: dict, markdown: str) -> str:
    """A minimal standalone HTML page of the table (for ``snakemake --report``)."""
    rows = [ln for ln in markdown.splitlines() if ln.startswith("|") and ":-:" not in ln]
    body = []
    for i, ln in enumerate(rows):
        cells = [c.strip() for c in ln.strip("|").split("|")]
        tag = "th" if cells and cells[0] == "Model" else "td"
        cells = [re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r"\1", c) for c in cells]
        body.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>")
        del i
    banner = ""
    if spec["dataset"] == "synthetic":
        banner = "<p><b>Synthetic demo run: NOT AVA results.</b></p>"
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>ACRN results</title>"
        "<style>td,th{border:1px solid #999;padding:2px 6px}table{border-collapse:collapse}</style>"
        f"</head><body>{banner}<p>{html.escape(spec['description'])}</p><table>{''.join(body)}</table>"
        "</body></html>\n"
    )


def table(
    spec: dict, out: str, sums: str | None, html_out: str | None, cache_path: str | None
) -> None:
    cache = HashCache(cache_path)
    base = Path(out).resolve().parent
    text, artefacts = render(spec, cache, Path(os.path.relpath(base)))
    if sums:
        inputs = expand(spec.get("inputs", []))
        write_sums(inputs + artefacts, sums, cache)
    cache.save()
    with atomic_write(out) as f:
        f.write(text)
    if html_out:
        with atomic_write(html_out) as f:
            f.write(render_html(spec, text))


# ------------------------------------------------------------------------- README section


def section(text: str, where: str) -> str:
    """The text between the markers (exclusive); errors name ``where``."""
    if text.count(START) != 1 or text.count(END) != 1:
        raise ReportError(f"{where}: expected exactly one {START} and one {END} marker")
    a, b = text.index(START) + len(START), text.index(END)
    if b < a:
        raise ReportError(f"{where}: {END} comes before {START}")
    return text[a:b]


def update_readme(table_path: str, readme_path: str) -> None:
    """Copy the table section of ``table_path`` between the markers of ``readme_path``."""
    text = Path(table_path).read_text()
    m = re.search(r"<!-- acrn-dataset: (\w+) -->", text)
    if not m:
        raise ReportError(f"{table_path}: no dataset tag; not a table written by acrn.report")
    if m.group(1) != "ava":
        raise ReportError(
            f"{table_path}: produced from the {m.group(1)!r} dataset; only real AVA results go "
            f"into {readme_path}"
        )
    block = section(text, table_path)
    # links in results/README.md are relative to results/; in the README to the repository root
    rel = os.path.relpath(Path(table_path).resolve().parent, Path(readme_path).resolve().parent)
    block = re.sub(r"\]\((?!https?://)([^)]+)\)", lambda m_: f"]({Path(rel) / m_.group(1)})", block)
    readme = Path(readme_path).read_text()
    section(readme, readme_path)  # validates the markers
    a, b = readme.index(START) + len(START), readme.index(END)
    with atomic_write(readme_path) as f:
        f.write(readme[:a] + block + readme[b:])


# ------------------------------------------------------------------------- charts


def _read(path: str, epoch_len: int | None = None) -> TrainLog:
    try:
        return read_log(path, epoch_len)
    except LogError as e:
        raise ReportError(str(e)) from None


def _series(log: TrainLog, key: str, epoch_len: int | None) -> tuple[list, list]:
    xs, ys = [], []
    for r in log.train:
        v = r.get(key)
        if key == "lr" and v is not None:
            v = lr_value(v)
        g = log.global_iter(r) if log.epoch_len or "global_iter" in r else None
        if g is None and epoch_len:
            g = (r["epoch"] - 1) * epoch_len + r["iter"]
        if g is not None and isinstance(v, (int, float)) and math.isfinite(v):
            xs.append(g)
            ys.append(v)
    return xs, ys


OURS_STYLE = {"color": "#1f77b4", "linestyle": "-", "linewidth": 2.2, "label": "ours"}
REF_STYLE = {"color": "#d62728", "linestyle": "--", "linewidth": 1.3, "label": "MMAction2 0.x log"}


def curves_svg(
    ours: TrainLog | None, reference: TrainLog | None, title: str, ref_name: str | None = None
) -> str:
    """Loss, lr and s/iter against the iteration, val mAP against the epoch; ours solid blue,
    the reference dashed red, overlaid. Returns the SVG text (matplotlib, Agg backend)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.hashsalt"] = "acrn"  # stable ids: same input, same bytes
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text (searchable, smaller)
    ours_len = ours.epoch_len if ours is not None else None
    ref_label = dict(REF_STYLE)
    if ref_name:
        ref_label["label"] = ref_name
    if reference is not None and reference.epoch_len is None:
        ref_label["label"] += " (epoch length assumed = ours)"
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), constrained_layout=True)
    panels = (
        (axes[0][0], "loss", "training loss (mean over each log interval)", "loss"),
        (axes[0][1], "lr", "learning rate (first param group)", "lr"),
        (axes[1][0], "time", "seconds per iteration", "s / iter"),
    )
    for ax, key, name, ylabel in panels:
        # the reference on top (dashed), so that where both coincide both stay visible
        for log, style, elen in ((ours, OURS_STYLE, None), (reference, ref_label, ours_len)):
            if log is None:
                continue
            xs, ys = _series(log, key, elen)
            if xs:
                ax.plot(xs, ys, **style)
        ax.set_title(name)
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if key == "lr":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    ax = axes[1][1]
    ours80 = {**OURS_STYLE, "linestyle": ":", "label": "ours, 80 classes"}
    for log, key, style, marker in (
        (ours, MAP_KEY, OURS_STYLE, "o"),
        (ours, MAP80_KEY, ours80, "^"),
        (reference, MAP_KEY, ref_label, "s"),
    ):
        val = log.val_by_epoch(key) if log is not None else None
        if val:
            es = sorted(val)
            ax.plot(es, [val[e] * 100 for e in es], marker=marker, **style)
    ax.set_title(f"validation {MAP_KEY}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mAP (%)")
    ax.grid(True, alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    for a in axes.flat:
        if a.lines:
            a.legend(loc="best", fontsize=8)
        else:
            a.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=a.transAxes)
    fig.suptitle(f"{title}: ours vs {ref_label['label']}" if reference else f"{title}: training")
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    return buf.getvalue()


def per_class_svg(metrics: dict, title: str) -> str:
    """Horizontal bars of the per-class AP (classes without ground truth left out)."""
    names = metrics.get("class_names") or metrics.get("names") or {}
    items = [(k, v) for k, v in metrics.get("per_class", {}).items() if isinstance(v, (int, float))]
    items.sort(key=lambda kv: int(kv[0]) if str(kv[0]).isdigit() else kv[0])
    bar, gap, left, w = 12, 3, 230, 400
    height = 40 + len(items) * (bar + gap)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + w + 60}" height="{height}" '
        'font-family="sans-serif" font-size="10">',
        f'<text x="4" y="16" font-size="13">{html.escape(title)}: per-class AP '
        f"(mAP {metrics.get('mAP', float('nan')) * 100:.1f})</text>",
    ]
    for i, (cid, ap) in enumerate(items):
        y = 30 + i * (bar + gap)
        label = f"{cid} {names.get(str(cid), names.get(cid, ''))}"[:40]
        parts.append(f'<text x="4" y="{y + bar - 2}">{html.escape(label)}</text>')
        parts.append(
            f'<rect x="{left}" y="{y}" width="{ap * w:.1f}" height="{bar}" fill="#2471a3"/>'
        )
        parts.append(f'<text x="{left + ap * w + 4:.1f}" y="{y + bar - 2}">{ap * 100:.1f}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def plots(
    log: str | None,
    metrics: str,
    curves: str,
    per_class: str,
    title: str,
    reference: str | None = None,
    reference_text: str | None = None,
    reference_label: str | None = None,
) -> None:
    ours = _read(log) if log else None
    ref = None
    if reference:
        try:
            elen = epoch_len_from_text_log(reference_text) if reference_text else None
        except LogError as e:
            raise ReportError(str(e)) from None
        ref = _read(reference, elen)
    with atomic_write(curves) as f:
        f.write(curves_svg(ours, ref, title, reference_label))
    with atomic_write(per_class) as f:
        f.write(per_class_svg(_load_metrics(metrics), title))


# ------------------------------------------------------------------------- CLI


def _spec(arg: str) -> dict:
    text = Path(arg[1:]).read_text() if arg.startswith("@") else arg
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as e:
        raise ReportError(f"--spec: not JSON ({e})") from None
    for key in ("dataset", "description", "rows"):
        if key not in spec:
            raise ReportError(f"--spec: missing key {key!r}")
    if spec["dataset"] not in ("ava", "synthetic"):
        raise ReportError(
            f"--spec: key dataset: expected 'ava' or 'synthetic', got {spec['dataset']!r}"
        )
    return spec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m acrn.report", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("table", help="results page + SHA256SUMS")
    t.add_argument("--spec", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--sums")
    t.add_argument("--html")
    t.add_argument("--cache")
    r = sub.add_parser("readme", help="copy the table between the README's markers")
    r.add_argument("--table", required=True)
    r.add_argument("--readme", required=True)
    n = sub.add_parser("not-run", help="the committed table before any run, from a workflow config")
    n.add_argument("--config", required=True)
    n.add_argument("--out", required=True)
    p = sub.add_parser("plots", help="training curves and per-class AP charts (SVG)")
    p.add_argument("--log")
    p.add_argument("--metrics", required=True)
    p.add_argument("--curves", required=True)
    p.add_argument("--per-class", required=True)
    p.add_argument("--title", default="")
    p.add_argument("--reference", help="MMAction2's JSON training log, overlaid")
    p.add_argument("--reference-text", help="MMAction2's text log (its epoch length)")
    p.add_argument("--reference-label", help="the reference's name in the legend")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "table":
            table(_spec(args.spec), args.out, args.sums, args.html, args.cache)
        elif args.cmd == "not-run":
            import yaml

            text, _ = render(
                not_run_spec(yaml.safe_load(Path(args.config).read_text())), None, Path("results")
            )
            with atomic_write(args.out) as f:
                f.write(text)
        elif args.cmd == "readme":
            update_readme(args.table, args.readme)
        else:
            plots(
                args.log,
                args.metrics,
                args.curves,
                args.per_class,
                args.title,
                args.reference,
                args.reference_text,
                args.reference_label,
            )
    except (ReportError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
