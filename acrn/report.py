"""The results table, ``SHA256SUMS``, the README section, and the charts of the Snakemake report.

``results/README.md`` regenerates the table of MMAction2's model card (columns Model, Modality,
Pretrained, Backbone, Input, gpus, mAP, log, json, ckpt) for AVA v2.1 and v2.2, with our mAP
(MMAction2 0.x ``ava_eval`` mode, the way the reference numbers were computed) next to the
reference value and the difference, the official ActivityNet-mode mAP, a sha256 for every
artefact, and the data set that produced the numbers. A synthetic (demo) run carries a banner
and a dataset column saying so, and ``readme`` refuses to copy it into the project README.

CLI (the workflow's ``table``, ``readme``, ``plots`` rules)::

    python -m acrn.report table --spec SPEC_JSON --out results/README.md --sums results/SHA256SUMS \
        [--html results/ava/report/table.html] [--cache results/ava/.sha256_cache.json]
    python -m acrn.report readme --table results/README.md --readme README.md
    python -m acrn.report not-run --config config/config.yaml --out results/README.md
    python -m acrn.report plots --log train_log.jsonl --metrics metrics.json \
        --curves curves.svg --per-class per_class_ap.svg --title "v2.1"

SPEC_JSON (a JSON string, or ``@file``)::

    {"dataset": "ava" | "synthetic", "description": str, "kind": "ours" | "released",
     "rows": [{"version": "2.1", "name": MMAction2 config name, "reference": 27.1, "gpus": 8,
               "metrics": {"mmaction": path, "official": path},
               "log": path | null, "json": path | null, "ckpt": path}],
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

from acrn.fsutil import atomic_write, sha256sum

START = "<!-- acrn-results:start -->"
END = "<!-- acrn-results:end -->"
DATASET_TAG = "<!-- acrn-dataset: {} -->"
NOT_RUN = "not yet run"
MODEL_CARD_URL = "https://github.com/open-mmlab/mmaction2/tree/0.x/configs/detection/acrn"


class ReportError(RuntimeError):
    """An input of the report is missing or malformed; the message names it."""


# ------------------------------------------------------------------------- checksums


class HashCache:
    """sha256 per path, reused while (size, mtime) are unchanged (videos are large)."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self.data: dict[str, list] = {}
        if self.path and self.path.is_file():
            try:
                self.data = json.loads(self.path.read_text())
            except json.JSONDecodeError:
                self.data = {}

    def sha256(self, path: str | os.PathLike) -> str:
        p = Path(path)
        if not p.is_file():
            raise ReportError(f"{p}: no such file (an artefact of the table)")
        st = p.stat()
        key = str(p)
        hit = self.data.get(key)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        digest = sha256sum(p)
        self.data[key] = [st.st_size, st.st_mtime_ns, digest]
        return digest

    def save(self) -> None:
        if self.path:
            with atomic_write(self.path) as f:
                json.dump(self.data, f)


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


def _load_metrics(path: str) -> dict:
    try:
        m = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ReportError(f"{path}: no such metrics file") from None
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}: not JSON ({e})") from None
    value = m.get("mAP")
    if not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ReportError(f"{path}: key mAP: expected a fraction in [0, 1], got {value!r}")
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


def render(spec: dict, cache: HashCache | None, base: Path) -> tuple[str, list[Path]]:
    """Markdown of the results page, and the artefacts it names (for SHA256SUMS)."""
    dataset, kind = spec["dataset"], spec.get("kind", "ours")
    synthetic = dataset == "synthetic"
    artefacts: list[Path] = []
    lines = [DATASET_TAG.format(dataset), ""]
    title = (
        "ACRN on AVA: reproduction results"
        if kind == "ours"
        else "MMAction2's released ACRN checkpoints, evaluated"
    )
    lines += [f"# {title}", ""]
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
        "`ref.` is MMAction2's model card (one decimal), `diff.` = ours - ref. Checksums: first 12 hex of the sha256;",
        "all files are in `SHA256SUMS` (check from the repository root: `sha256sum -c results/SHA256SUMS`).",
        "",
    ]
    if spec.get("frames_report"):
        fr_path = spec["frames_report"]
        digest = cache.sha256(fr_path) if cache is not None and Path(fr_path).is_file() else None
        lines += [
            "Frames: "
            + _link("frames report", fr_path, digest, base)
            + " (per video: source fps, size, frame count, decoder messages of damaged packets).",
            "",
        ]
        if digest is not None:
            artefacts.append(Path(fr_path))
    lines += [
        START,
    ]
    header = [
        "Model",
        "Modality",
        "Pretrained",
        "Backbone",
        "Input",
        "gpus",
        "mAP",
        "ref.",
        "diff.",
        "mAP (official)",
        "log",
        "json",
        "ckpt",
        "dataset",
    ]
    for row in spec["rows"]:
        v = row["version"]
        heading = f"AVA{v}" if not synthetic else f"synthetic mini-AVA, AVA{v} layout"
        lines += ["", f"### {heading}", ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("| " + " | ".join([":-:"] * len(header)) + " |")
        ours = official = None
        if row.get("metrics"):
            ours = _load_metrics(row["metrics"]["mmaction"])["mAP"] * 100
            official = _load_metrics(row["metrics"]["official"])["mAP"] * 100
            artefacts += [Path(row["metrics"]["mmaction"]), Path(row["metrics"]["official"])]
        ref = row["reference"]
        if ours is None:
            diff = NOT_RUN
        elif synthetic:
            diff = "n/a (not AVA)"  # a synthetic mAP is not comparable with the AVA reference
        else:
            diff = f"{ours - ref:+.2f}"
        cells = []
        for key in ("log", "json"):
            p = row.get(key)
            if p is not None and ours is not None and cache is not None:
                cells.append(_link(key, p, cache.sha256(p), base))
                artefacts.append(Path(p))
            else:
                cells.append(_link(key, p, None, base) if ours is not None else "-")
        ckpt = row.get("ckpt")
        ckpt_cell = "-"
        if ckpt is not None and ours is not None:
            files = expand([ckpt])
            pth = [f for f in files if f.suffix == ".pth"] or files
            if not pth:
                raise ReportError(f"{ckpt}: no checkpoint file")
            digest = cache.sha256(pth[0]) if cache else None
            ckpt_cell = _link("ckpt", str(pth[0]), digest, base)
            artefacts += files
        name = row["name"]
        gpus = row.get("gpus")
        gpus_cell = (
            "-" if ours is None and kind == "ours" else ("0 (CPU)" if gpus == 0 else str(gpus))
        )
        cells = [
            f"[{name}]({MODEL_CARD_URL}/{name}.py)",
            "RGB",
            "Kinetics-400" if not synthetic else "synthetic init",
            "ResNet50" if not synthetic else "tiny SlowFast",
            row.get("input", "32x2"),
            gpus_cell,
            _pct(ours),
            f"{ref:.1f}",
            diff,
            _pct(official),
            *cells,
            ckpt_cell,
            dataset_label(dataset, spec["description"], v) if ours is not None else NOT_RUN,
        ]
        lines.append("| " + " | ".join(cells) + " |")
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
                "gpus": cfg["resources"]["train"]["gpu"],
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


def _read_log(path: str) -> list[dict]:
    records = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ReportError(f"{path}:{lineno}: not JSON ({e})") from None
            if rec.get("mode") == "train" and "global_iter" in rec:
                records.append(rec)
    return records


def _polyline(xs, ys, x0, y0, w, h, color):
    xmin, xmax = min(xs), max(xs)
    ymin, ymax = min(ys), max(ys)
    xspan = (xmax - xmin) or 1.0
    yspan = (ymax - ymin) or 1.0
    pts = " ".join(
        f"{x0 + (x - xmin) / xspan * w:.1f},{y0 + h - (y - ymin) / yspan * h:.1f}"
        for x, y in zip(xs, ys, strict=True)
    )
    return f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{pts}"/>', (
        ymin,
        ymax,
    )


def curves_svg(records: list[dict], title: str) -> str:
    """Loss and learning rate against the iteration, two panels."""
    w, h, pad = 560, 160, 50
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w + 2 * pad}" height="{2 * h + 3 * pad}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="{pad}" y="18" font-size="14">{html.escape(title)}: training curves</text>',
    ]
    for i, (key, color) in enumerate((("loss", "#c0392b"), ("lr", "#2471a3"))):
        y0 = pad + i * (h + pad)
        pts = [
            (r["global_iter"], r[key])
            for r in records
            if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])
        ]
        parts.append(
            f'<rect x="{pad}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#888"/>'
        )
        if len(pts) >= 1:
            xs, ys = zip(*pts, strict=True)
            line, (lo, hi) = _polyline(xs, ys, pad, y0, w, h, color)
            parts.append(line)
            parts.append(
                f'<text x="4" y="{y0 + 10}">{hi:.3g}</text><text x="4" y="{y0 + h}">{lo:.3g}</text>'
            )
            parts.append(f'<text x="{pad + w - 60}" y="{y0 + h + 14}">iter {xs[-1]}</text>')
        parts.append(f'<text x="{pad + 4}" y="{y0 + 14}" fill="{color}">{key}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


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


def plots(log: str | None, metrics: str, curves: str, per_class: str, title: str) -> None:
    records = _read_log(log) if log else []
    with atomic_write(curves) as f:
        f.write(curves_svg(records, title))
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
            plots(args.log, args.metrics, args.curves, args.per_class, args.title)
    except (ReportError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
