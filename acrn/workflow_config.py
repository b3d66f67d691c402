"""The workflow's config file (config/*.yaml) as plain Python: checks, paths, experiments, table.

- ``check(cfg, schema)``: the schema (every key required, no other key), the per-version
  entries and the training's GPU count (it must divide ``experiment.train.recipe_gpus``);
  ``WorkflowConfigError`` names the key.
- ``Layout(cfg)``: every path the rules read or write, from ``resources_dir``/``results_dir``.
- ``experiment(cfg, version)``: the config's ``experiment`` section with this version's paths
  filled in, as a validated ``acrn.experiment.ExperimentConfig`` (the one file a training gets).
- ``table_spec(cfg, kind)``: what ``python -m acrn.report table`` reads.
- Imported by the Snakefile at parse time: no torch, no pandas.
"""

from __future__ import annotations

import copy
from pathlib import Path
from urllib.parse import unquote, urlparse

SPLITS = ("train", "val")
MODES = ("mmaction", "official")


class WorkflowConfigError(ValueError):
    """A config key or value is wrong; the message names the key."""


def check(cfg: dict, schema: dict) -> None:
    """Schema check, then one entry per version wherever the config maps versions."""
    import jsonschema

    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(cfg))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise WorkflowConfigError(f"config key {key}: {err.message}")
    per_version = {
        "annotations": cfg["annotations"],
        "experiment_names": cfg["experiment_names"],
        "reference": cfg["reference"],
        "sources.annotations": cfg["sources"]["annotations"],
        "sources.released": cfg["sources"]["released"],
        "sources.reference_logs": cfg["sources"]["reference_logs"],
    }
    for v in cfg["versions"]:
        for key, table in per_version.items():
            if table is not None and v not in table:
                raise WorkflowConfigError(f"config key {key}: no entry for version {v!r}")
    check_train_gpus(cfg)
    for v, entry in (cfg["sources"]["reference_logs"] or {}).items():
        other = entry.get("ours_run")
        if other is not None and (other == v or other not in cfg["versions"]):
            raise WorkflowConfigError(
                f"config key sources.reference_logs.{v}.ours_run: {other!r} must be another "
                f"version of this run ({', '.join(cfg['versions'])})"
            )


def recipe_gpus(cfg: dict) -> int:
    """``experiment.train.recipe_gpus`` (TrainConfig's default, 8, when left out)."""
    from acrn.experiment import TrainConfig

    train = (cfg.get("experiment") or {}).get("train") or {}
    return train.get("recipe_gpus", TrainConfig.recipe_gpus)


def check_train_gpus(cfg: dict) -> None:
    """The training job's GPUs must divide the recipe's (each runs recipe / GPUs micro-batches
    per step); 0 (a CPU run: processes from ACRN_MAX_PROCS) is checked when training starts."""
    gpus, recipe = cfg["resources"]["train"]["gpu"], recipe_gpus(cfg)
    if not isinstance(recipe, int) or isinstance(recipe, bool) or recipe < 1:
        return  # experiment() names the bad value
    if gpus and recipe % gpus:
        allowed = ", ".join(str(w) for w in range(1, recipe + 1) if recipe % w == 0)
        raise WorkflowConfigError(
            f"config key resources.train.gpu: {gpus} GPUs do not divide "
            f"experiment.train.recipe_gpus = {recipe} (the recipe's GPUs); use {allowed}"
        )


def val_video_ids(cfg: dict, video_ids: list[str]) -> list[str]:
    """The shipped val video ids (config ``val_videos``), their sha256 checked, all among the
    trainval videos: the val-only jobs (their frames, inference) are planned from them before
    any annotation is downloaded (the ``check_val_ids`` rule compares them with the val CSVs)."""
    import hashlib

    from acrn.formats import FormatError, read_video_ids

    entry = cfg["val_videos"]
    path = Path(entry["shipped"])
    try:
        ids = read_video_ids(path)
    except FormatError as e:
        raise WorkflowConfigError(f"config key val_videos.shipped: {e}") from e
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if entry["sha256"] is not None and digest != entry["sha256"]:
        raise WorkflowConfigError(
            f"config key val_videos.sha256: {path} has sha256 {digest}, the config expects "
            f"{entry['sha256']} (a changed list changes the val-only jobs: update both together)"
        )
    unknown = [v for v in ids if v not in set(video_ids)]
    if unknown:
        raise WorkflowConfigError(
            f"config key val_videos.shipped: {len(unknown)} id(s) of {path} are not in the "
            f"trainval list {cfg['file_list']['shipped']}: {', '.join(unknown[:10])}"
        )
    return ids


def url_name(url: str) -> str:
    """The file name at the end of a URL or path."""
    return Path(unquote(urlparse(url).path)).name


class Layout:
    """Paths of the run (strings, as Snakemake wants them)."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.res = cfg["resources_dir"].rstrip("/")
        self.out = cfg["results_dir"].rstrip("/")
        self.frames_report = f"{self.out}/frames_report.md"  # every video
        self.frames_report_val = f"{self.out}/frames_report_val.md"  # the val videos
        self.file_list = f"{self.res}/{url_name(cfg['file_list']['source']['url'])}"
        self.kinetics = f"{self.res}/weights/{url_name(cfg['sources']['kinetics']['url'])}"
        self.mirror = f"{self.res}/mirror"
        self.frame_root = f"{self.res}/frames"
        # the run's name (the results folder's): logs/<name>/, benchmarks/<name>/
        self.name = Path(self.out).name
        self.logs = f"logs/{self.name}"
        self.bench = f"benchmarks/{self.name}"
        # results table + SHA256SUMS: results/README.md (tracked) for the real run only
        self.table = cfg["results_table"]
        self.sums = str(Path(self.table).with_name("SHA256SUMS"))
        self.hash_cache = f"{self.out}/.sha256_cache.json"

    def annotation(self, version: str, key: str) -> str:
        """An unpacked member of the version's annotation zip (key of config ``annotations``)."""
        return f"{self.res}/annotations/v{version}/{self.cfg['annotations'][version][key]}"

    def annotation_members(self, version: str) -> list[str]:
        return sorted({self.annotation(version, k) for k in self.cfg["annotations"][version]})

    def video(self, name: str) -> str:
        return f"{self.res}/videos/{name}"

    def frames(self, vid: str) -> str:
        """A video's frame folder."""
        return f"{self.frame_root}/{vid}"

    def frame_outputs(self, vid: str) -> list[str]:
        """What the extraction of ``vid`` gives, as the rules name it: ``frames.zip`` and
        ``extract.json`` (zip layout: files, so that a zip moved aside as damaged is a missing
        output), or the frame folder (dir layout)."""
        if self.cfg["frames"]["layout"] == "zip":
            return [f"{self.frames(vid)}/frames.zip", f"{self.frames(vid)}/extract.json"]
        return [self.frames(vid)]

    def videos_complete(self, split: str) -> str:
        """The marker of a split's downloaded videos (its extractions start together)."""
        return f"{self.res}/videos_{split}.complete"

    def val_ids_checked(self, version: str) -> str:
        """The shipped val ids, checked against the version's val CSV."""
        return f"{self.res}/annotations/v{version}/val_video_ids.checked"

    def raw_proposals(self, split: str) -> str:
        return f"{self.res}/proposals/ava_dense_proposals_{split}.pkl"

    def run_dir(self, kind: str, version: str) -> str:
        return f"{self.out}/{kind}/v{version}"

    def proposals(self, version: str, split: str) -> str:
        return f"{self.run_dir('ours', version)}/proposals/{split}.pkl"

    def experiment(self, version: str) -> str:
        return f"{self.run_dir('ours', version)}/experiment.yaml"

    def workdir(self, version: str) -> str:
        """The training's work directory (never a declared output: Snakemake deletes none of
        its files)."""
        return f"{self.run_dir('ours', version)}/train"

    def trained(self, version: str, name: str) -> str:
        """An output of the training rule: a hard link of the work directory's file."""
        return f"{self.run_dir('ours', version)}/trained/{name}"

    def inputs_manifest(self, kind: str, version: str, job: str) -> str:
        """The manifest of a training's (``job="train"``) or an inference's inputs."""
        return f"{self.run_dir(kind, version)}/{job}_inputs.json"

    def released(self, version: str) -> str:
        return f"{self.res}/released/v{version}.pth"


def experiment_dict(cfg: dict, version: str) -> dict:
    """The config's ``experiment`` section with this version's paths filled in."""
    lay = Layout(cfg)
    exp = copy.deepcopy(cfg["experiment"])
    exp.setdefault("data", {}).update(
        frame_root=lay.frame_root,
        frame_layout=cfg["frames"]["layout"],
        label_file=lay.annotation(version, "label_map"),
        label_file_80=lay.annotation(version, "label_map_80"),
        train_annotations=lay.annotation(version, "train"),
        val_annotations=lay.annotation(version, "val"),
        train_exclusions=lay.annotation(version, "exclude_train"),
        val_exclusions=lay.annotation(version, "exclude_val"),
        train_proposals=lay.proposals(version, "train"),
        val_proposals=lay.proposals(version, "val"),
    )
    exp.setdefault("train", {})["pretrained"] = lay.kinetics
    return exp


def experiment(cfg: dict, version: str):
    """``experiment_dict`` as a validated ExperimentConfig; errors name the config key."""
    from acrn.config import ConfigError, from_dict
    from acrn.experiment import ExperimentConfig

    try:
        return from_dict(ExperimentConfig, experiment_dict(cfg, version), prefix="experiment")
    except (ConfigError, ValueError, TypeError) as e:
        raise WorkflowConfigError(f"config: {e}") from e


# ------------------------------------------------------------------ the results table


def final_checkpoint(cfg: dict, version: str, epochs: int) -> str:
    return Layout(cfg).trained(version, f"epoch_{epochs}.pth")


def train_inputs(cfg: dict, version: str, videos: list[str]) -> dict[str, list[str]]:
    """What a training reads besides its experiment: the frames folders of ``videos`` (ids),
    the prepared proposals, the version's annotation members and the Kinetics-400 weights."""
    lay = Layout(cfg)
    return {
        "frames": [lay.frames(v) for v in videos],
        "proposals": [lay.proposals(version, s) for s in SPLITS],
        "annotations": lay.annotation_members(version),
        "pretrained": [lay.kinetics],
    }


def infer_inputs(cfg: dict, kind: str, version: str, videos: list[str], epochs: int) -> dict:
    """What an inference reads besides its experiment: the checkpoint (ours: the published
    folder; final: the last epoch; released: MMAction2's), the val frames, proposals and
    annotations."""
    lay = Layout(cfg)
    if kind == "ours":
        checkpoint = f"{lay.run_dir('ours', version)}/published"
    elif kind == "final":
        checkpoint = final_checkpoint(cfg, version, epochs)
    else:
        checkpoint = lay.released(version)
    return {
        "checkpoint": [checkpoint],
        "frames": [lay.frames(v) for v in videos],
        "proposals": [lay.proposals(version, "val")],
        "annotations": [lay.annotation(version, "val")],
    }


def table_rows(cfg: dict, kind: str, experiments: dict) -> list[dict]:
    lay = Layout(cfg)
    rows = []
    for v in cfg["versions"]:
        d = lay.run_dir(kind, v)
        data = experiments[v].data
        row = {
            "version": v,
            "name": cfg["experiment_names"][v],
            "reference": cfg["reference"][v],
            # the recipe's GPUs; the table adds the processes it ran on (from final.json)
            "gpus": experiments[v].train.recipe_gpus if kind == "ours" else 8,
            "input": f"{data.clip_len}x{data.frame_interval}",
            "metrics": {m: f"{d}/metrics_{m}.json" for m in MODES},
        }
        if kind == "ours":
            row.update(log=f"{d}/train.log", json=f"{d}/train_log.jsonl", ckpt=f"{d}/published")
            row["run"] = lay.trained(v, "final.json")  # which epoch was the best, how many in all
            row["final_metrics"] = {m: f"{lay.run_dir('final', v)}/metrics_{m}.json" for m in MODES}
            released = cfg["sources"]["released"] is not None
            row["released_metrics"] = (
                {m: f"{lay.run_dir('released', v)}/metrics_{m}.json" for m in MODES}
                if released
                else None
            )
        else:
            row.update(log=None, json=None, ckpt=lay.released(v))
        rows.append(row)
    return rows


def checksum_inputs(
    cfg: dict, kind: str, videos: list[str], experiments: dict, val_ids: list[str] | None = None
) -> list[str]:
    """Inputs and intermediate outputs listed in SHA256SUMS (frames excluded: one frames.zip
    per video, or millions of files). ``released`` (MMAction2's checkpoints evaluated): only
    what it used, the val videos (``val_ids``), val annotations and val proposals."""
    lay = Layout(cfg)
    out = [cfg["file_list"]["shipped"], lay.file_list]
    if kind == "released":
        out.append(cfg["val_videos"]["shipped"])
        wanted = set(val_ids or [])
        out += [lay.video(n) for n in videos if n.rsplit(".", 1)[0] in wanted]
        out.append(lay.raw_proposals("val"))
        for v in cfg["versions"]:
            keys = ("val", "exclude_val", "label_map", "eval_label_map")
            out += sorted({lay.annotation(v, k) for k in keys})
            out += [lay.experiment(v), lay.proposals(v, "val")]
            out.append(f"{lay.run_dir(kind, v)}/detections.csv")
        return out
    out += [lay.video(n) for n in videos]
    out += [lay.raw_proposals(s) for s in SPLITS]
    for v in cfg["versions"]:
        out += [lay.annotation(v, k) for k in cfg["annotations"][v]]
        out.append(lay.experiment(v))
        out += [lay.proposals(v, s) for s in SPLITS]
        out.append(f"{lay.run_dir(kind, v)}/detections.csv")
        if kind == "ours":
            out += [f"{lay.run_dir('ours', v)}/proposals/{s}_stats.json" for s in SPLITS]
            out.append(final_checkpoint(cfg, v, experiments[v].train.epochs))
    if kind == "ours":
        out.append(lay.kinetics)
    return out


def _frames_report(cfg: dict, kind: str) -> str:
    lay = Layout(cfg)
    return lay.frames_report_val if kind == "released" else lay.frames_report


def table_spec(
    cfg: dict, kind: str, videos: list[str], experiments: dict, val_ids: list[str] | None = None
) -> dict:
    from acrn.formats import video_id  # (pandas: the Snakefile imports it anyway)

    lay = Layout(cfg)
    ids = [video_id(n) for n in videos]
    if kind == "released" and val_ids is not None:
        ids = [v for v in ids if v in set(val_ids)]
    return {
        "dataset": cfg["dataset"],
        "description": cfg["description"],
        "kind": kind,
        "rows": table_rows(cfg, kind, experiments),
        "inputs": checksum_inputs(cfg, kind, videos, experiments, val_ids),
        "frames_report": _frames_report(cfg, kind),
        "sums": lay.sums if kind == "ours" else f"{lay.out}/released/SHA256SUMS",
        "ffmpeg": {
            "major": cfg["frames"]["ffmpeg_major"],
            "extract_infos": [f"{lay.frames(v)}/extract.json" for v in ids],
        },
    }


def table_inputs(
    cfg: dict, kind: str, videos: list[str], experiments: dict, val_ids: list[str] | None = None
) -> dict:
    artefacts = []
    for r in table_rows(cfg, kind, experiments):
        for key in ("metrics", "final_metrics", "released_metrics"):
            artefacts += list((r.get(key) or {}).values())
        artefacts += [r["run"]] if r.get("run") else []
        artefacts += [r[k] for k in ("log", "json", "ckpt") if r[k] is not None]
    return {
        "artefacts": artefacts,
        "checksummed": checksum_inputs(cfg, kind, videos, experiments, val_ids),
        "frames_report": _frames_report(cfg, kind),
        "code": "acrn/report.py",
    }
