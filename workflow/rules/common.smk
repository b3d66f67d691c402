# Helpers shared by the rules: config validation, paths, the video list, resources.
import copy
import json
import re
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import yaml
from snakemake.exceptions import WorkflowError

REPO = Path(workflow.basedir).parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from acrn.formats import FormatError, read_file_list, video_id

# ------------------------------------------------------------------ config validation


def _validate_config(cfg):
    """Schema check (every key required, no other key allowed); the message names the key."""
    import jsonschema

    schema = yaml.safe_load(
        (Path(workflow.basedir) / "schemas" / "config.schema.yaml").read_text()
    )
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(cfg))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise WorkflowError(f"config key {key}: {err.message}")
    for v in cfg["versions"]:
        for where in ("annotations", "experiment_names", "reference"):
            if v not in cfg[where]:
                raise WorkflowError(f"config key {where}: no entry for version {v!r}")
        if v not in cfg["sources"]["annotations"]:
            raise WorkflowError(
                f"config key sources.annotations: no entry for version {v!r}"
            )
        released = cfg["sources"]["released"]
        if released is not None and v not in released:
            raise WorkflowError(
                f"config key sources.released: no entry for version {v!r}"
            )


def _experiment_class():
    from acrn.experiment import ExperimentConfig

    return ExperimentConfig


_validate_config(config)

DATASET = config["dataset"]
RES = config["resources_dir"].rstrip("/")
OUT = config["results_dir"].rstrip("/")
FRAMES_REPORT = f"{OUT}/frames_report.md"
LOGS = f"logs/{DATASET}"
BENCH = f"benchmarks/{DATASET}"
VERSIONS = list(config["versions"])
SPLITS = ["train", "val"]
MODES = ["mmaction", "official"]
KINDS = ["ours"] + (["released"] if config["sources"]["released"] else [])

try:
    VIDEO_NAMES = read_file_list(config["file_list"]["shipped"])
except FormatError as e:
    raise WorkflowError(f"config key file_list.shipped: {e}")
VIDEO_IDS = [video_id(n) for n in VIDEO_NAMES]
NAME_OF = dict(zip(VIDEO_IDS, VIDEO_NAMES))


wildcard_constraints:
    version=r"2\.[12]",
    split="train|val",
    mode="mmaction|official",
    kind="ours|released",
    name=r"[^/]+\.(mkv|mp4|webm)",
    vid=r"[^/]+",


# ------------------------------------------------------------------ paths


def url_name(url):
    """The file name at the end of a URL or path."""
    return Path(unquote(urlparse(url).path)).name


FILE_LIST = f"{RES}/{url_name(config['file_list']['source']['url'])}"
KINETICS = f"{RES}/weights/{url_name(config['sources']['kinetics']['url'])}"
MIRROR = f"{RES}/mirror"


def annotation(version, key):
    """Path of an unpacked member of the version's annotation zip (key of config annotations)."""
    return f"{RES}/annotations/v{version}/{config['annotations'][version][key]}"


def annotation_members(version):
    return [annotation(version, k) for k in config["annotations"][version]]


def video(name):
    return f"{RES}/videos/{name}"


def frames(vid):
    return f"{RES}/frames/{vid}"


def run_dir(kind, version):
    return f"{OUT}/{kind}/v{version}"


def proposals(version, split):
    return f"{run_dir('ours', version)}/proposals/{split}.pkl"


def experiment_yaml(version):
    return f"{run_dir('ours', version)}/experiment.yaml"


def released_ckpt(version):
    return f"{RES}/released/v{version}.pth"


# ------------------------------------------------------------------ experiment config


def experiment_dict(version):
    """The config's experiment sections with this version's paths filled in."""
    exp = copy.deepcopy(config["experiment"])
    data = exp["data"]
    data.update(
        frame_root=f"{RES}/frames",
        label_file=annotation(version, "label_map"),
        train_annotations=annotation(version, "train"),
        val_annotations=annotation(version, "val"),
        train_exclusions=annotation(version, "exclude_train"),
        val_exclusions=annotation(version, "exclude_val"),
        train_proposals=proposals(version, "train"),
        val_proposals=proposals(version, "val"),
    )
    exp["train"]["pretrained"] = KINETICS
    return exp


def _check_experiments():
    """Validate the experiment sections at parse time (acrn.experiment, strict)."""
    from acrn.config import ConfigError, from_dict

    cls = _experiment_class()
    out = {}
    for v in VERSIONS:
        try:
            out[v] = from_dict(cls, experiment_dict(v), prefix="experiment")
        except ConfigError as e:
            raise WorkflowError(f"config: {e}")
    return out


EXPERIMENTS = _check_experiments()
# one experiment section for all versions: the same number of epochs
EPOCHS = EXPERIMENTS[VERSIONS[0]].train.epochs


def final_checkpoint(version):
    return f"{run_dir('ours', version)}/train/epoch_{EPOCHS}.pth"


def checkpoint_for(kind, version):
    return final_checkpoint(version) if kind == "ours" else released_ckpt(version)


# ------------------------------------------------------------------ sources and resources


def mirror_input():
    """The demo's downloads read from the generated mirror: depend on it."""
    return [MIRROR] if config["mirror"] is not None else []


def sums_arg():
    sums = config["sources"]["sums"]
    return f"--sums {sums}" if sums else ""


def sha_arg(source):
    return f"--sha256 {source['sha256']}" if source.get("sha256") else sums_arg()


def res(section, key):
    return config["resources"][section][key]


def gpu_threads(section):
    r = config["resources"][section]
    return r["gpu"] * r["cpus_per_gpu"] if r["gpu"] else r["threads"]


def frames_args():
    f = config["frames"]
    args = f"--start {f['start']} --duration {f['duration']} --fps {f['fps']} --quality {f['quality']}"
    if f["short_side"]:
        args += f" --short-side {f['short_side']}"
    args += f" --route {f['route']}" + (
        " --strict-decode" if f["strict_decode"] else ""
    )
    return args


def launch_args():
    return " ".join(config["launch"]["args"])


# ------------------------------------------------------------------ targets


def target_download():
    out = [FILE_LIST, KINETICS]
    out += [video(n) for n in VIDEO_NAMES]
    out += [f"{RES}/proposals/ava_dense_proposals_{s}.pkl" for s in SPLITS]
    for v in VERSIONS:
        out += annotation_members(v)
    return out


def target_frames():
    return [frames(i) for i in VIDEO_IDS]


def target_proposals():
    return [proposals(v, s) for v in VERSIONS for s in SPLITS]


def target_train():
    return [final_checkpoint(v) for v in VERSIONS]


def target_infer(kind="ours"):
    return [f"{run_dir(kind, v)}/detections.csv" for v in VERSIONS]


def target_evaluate(kind="ours"):
    return [f"{run_dir(kind, v)}/metrics_{m}.json" for v in VERSIONS for m in MODES]


def target_publish():
    return [f"{run_dir('ours', v)}/published" for v in VERSIONS]


def target_plots():
    return [
        f"{OUT}/report/v{v}_{c}.svg"
        for v in VERSIONS
        for c in ("curves", "per_class_ap")
    ]


def target_table():
    return ["results/README.md", "results/SHA256SUMS"]


def all_targets():
    out = target_table() + target_plots()
    if DATASET == "ava":
        out.append(f"{OUT}/readme.done")
    return out


def _flatten(d, prefix=""):
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            yield from _flatten(v, f"{key}.")
        elif not isinstance(v, dict):
            yield key, v


def experiment_sets(version):
    """`--set key=value` options for `python -m acrn.experiment` (values as inline YAML)."""
    import shlex

    sets = []
    for key, value in _flatten(experiment_dict(version)):
        text = yaml.safe_dump(value, default_flow_style=True, width=1 << 16).strip()
        text = text.removesuffix("\n...").removesuffix("...").strip()
        sets.append(f"--set {shlex.quote(f'{key}={text}')}")
    return " ".join(sets)


# ------------------------------------------------------------------ the results table


def table_rows(kind):
    rows = []
    for v in VERSIONS:
        d = run_dir(kind, v)
        data = EXPERIMENTS[v].data
        row = {
            "version": v,
            "name": config["experiment_names"][v],
            "reference": config["reference"][v],
            "gpus": config["resources"]["train"]["gpu"] if kind == "ours" else 8,
            "input": f"{data.clip_len}x{data.frame_interval}",
            "metrics": {m: f"{d}/metrics_{m}.json" for m in MODES},
        }
        if kind == "ours":
            row.update(
                log=f"{d}/train.log", json=f"{d}/train_log.jsonl", ckpt=f"{d}/published"
            )
        else:
            row.update(log=None, json=None, ckpt=released_ckpt(v))
        rows.append(row)
    return rows


def checksum_inputs(kind):
    """Inputs and intermediate outputs listed in SHA256SUMS (frames excluded: millions of files)."""
    out = [config["file_list"]["shipped"], FILE_LIST]
    out += [video(n) for n in VIDEO_NAMES]
    out += [f"{RES}/proposals/ava_dense_proposals_{s}.pkl" for s in SPLITS]
    for v in VERSIONS:
        out += annotation_members(v)
        out.append(experiment_yaml(v))
        out += [proposals(v, s) for s in SPLITS]
        out.append(f"{run_dir(kind, v)}/detections.csv")
        if kind == "ours":
            out += [f"{run_dir('ours', v)}/proposals/{s}_stats.json" for s in SPLITS]
            out.append(final_checkpoint(v))
    if kind == "ours":
        out.append(KINETICS)
    return out


def table_spec(kind):
    return {
        "dataset": DATASET,
        "description": config["description"],
        "kind": kind,
        "rows": table_rows(kind),
        "inputs": checksum_inputs(kind),
        "frames_report": FRAMES_REPORT,
    }


def table_inputs(kind):
    rows = table_rows(kind)
    artefacts = []
    for r in rows:
        artefacts += list(r["metrics"].values())
        artefacts += [r[k] for k in ("log", "json", "ckpt") if r[k] is not None]
    return {
        "artefacts": artefacts,
        "checksummed": checksum_inputs(kind),
        "frames_report": FRAMES_REPORT,
        "code": "acrn/report.py",
    }
