# Shared by the rules: the checked config, the paths, the video list, the resources of a rule.
# The logic is plain Python in acrn/workflow_config.py (no torch: parsing stays fast).
import json
import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError

REPO = Path(workflow.basedir).parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from acrn import workflow_config as wc
from acrn.formats import FormatError, read_file_list, video_id

SCHEMA = yaml.safe_load(
    (Path(workflow.basedir) / "schemas" / "config.schema.yaml").read_text()
)
try:
    wc.check(config, SCHEMA)
    EXPERIMENTS = {v: wc.experiment(config, v) for v in config["versions"]}
    VIDEO_NAMES = read_file_list(config["file_list"]["shipped"])
    VAL_IDS = wc.val_video_ids(config, [video_id(n) for n in VIDEO_NAMES])
except wc.WorkflowConfigError as e:
    raise WorkflowError(str(e))
except FormatError as e:
    raise WorkflowError(f"config key file_list.shipped: {e}")

L = wc.Layout(config)
DATASET = config["dataset"]
RES, OUT = L.res, L.out
FRAMES_REPORT = L.frames_report
LOGS = f"logs/{DATASET}"
BENCH = f"benchmarks/{DATASET}"
VERSIONS = list(config["versions"])
SPLITS, MODES = list(wc.SPLITS), list(wc.MODES)
VIDEO_IDS = [video_id(n) for n in VIDEO_NAMES]
NAME_OF = dict(zip(VIDEO_IDS, VIDEO_NAMES))
# the split of every video: what needs only val data (inference, evaluation, `released`)
# depends only on the val videos; training depends on all
SPLIT_OF = {v: "val" if v in set(VAL_IDS) else "train" for v in VIDEO_IDS}
# one experiment section for all versions: the same number of epochs
EPOCHS = EXPERIMENTS[VERSIONS[0]].train.epochs
ENV = "../../envs/acrn.yaml"

# `localrule:` of a rule. On a cluster a local rule runs on the host that runs Snakemake (no
# sbatch): the network rules unless config cluster.downloads_on_cluster sends them to the
# cluster (compute nodes often have no internet), and the light bookkeeping rules.
NETWORK_LOCAL = not config["cluster"]["downloads_on_cluster"]


wildcard_constraints:
    version=r"2\.[12]",
    split="train|val",
    mode="mmaction|official",
    kind="ours|final|released",
    name=r"[^/]+\.(mkv|mp4|webm)",
    vid=r"[^/]+",


# ------------------------------------------------------------------ resources


def threads_of(section):
    """CPU cores of a rule: GPUs x cpus_per_gpu for a GPU section, else its threads."""
    r = config["resources"][section]
    return r["gpu"] * r["cpus_per_gpu"] if r.get("gpu") else r["threads"]


def resources_of(section):
    """`resources:` of a rule from config `resources.<section>`. A GPU job stays on one node
    (`nodes: 1`; the profile's set-resources overrides it for multi-node training)."""
    r = config["resources"][section]
    out = {"mem_mb": r["mem_mb"], "runtime": r["runtime"]}
    if "gpu" in r:
        out.update(gpu=r["gpu"], cpus_per_gpu=r["cpus_per_gpu"])
        if r["gpu"]:
            out["nodes"] = 1
    return out


# ------------------------------------------------------------------ paths and arguments


def mirror_input():
    """The demo's downloads read from the generated mirror: depend on it."""
    return [L.mirror] if config["mirror"] is not None else []


def sha_arg(source=None):
    """--sha256 of a source, else the config's SHA256SUMS (--sums), else nothing."""
    if source and source.get("sha256"):
        return f"--sha256 {source['sha256']}"
    sums = config["sources"]["sums"]
    return f"--sums {sums}" if sums else ""


def frames_args():
    f = config["frames"]
    args = f"--start {f['start']} --duration {f['duration']} --fps {f['fps']} --quality {f['quality']}"
    if f["short_side"]:
        args += f" --short-side {f['short_side']}"
    args += f" --route {f['route']} --layout {f['layout']}" + (
        " --strict-decode" if f["strict_decode"] else ""
    )
    return args


def final_checkpoint(version):
    return wc.final_checkpoint(config, version, EPOCHS)


def checkpoint_for(kind, version):
    """ours: the published (best epoch's) checkpoint; final: the last epoch's; released: MMAction2's."""
    if kind == "ours":
        return f"{L.run_dir('ours', version)}/published"
    return final_checkpoint(version) if kind == "final" else L.released(version)


def table_spec(kind):
    return json.dumps(wc.table_spec(config, kind, VIDEO_NAMES, EXPERIMENTS, VAL_IDS))


def table_inputs(kind):
    return wc.table_inputs(config, kind, VIDEO_NAMES, EXPERIMENTS, VAL_IDS)


# ------------------------------------------------------------------ targets


def videos_of(split):
    """The file names of a split's videos."""
    return [NAME_OF[v] for v in VIDEO_IDS if SPLIT_OF[v] == split]


def target_download():
    out = [L.file_list, L.kinetics] + [L.video(n) for n in VIDEO_NAMES]
    out += [L.raw_proposals(s) for s in SPLITS]
    out += [m for v in VERSIONS for m in L.annotation_members(v)]
    return out + downloaded_reference_logs()


def target_frames(split=None):
    """Every video's extracted frames (``split``: only that split's videos), as the
    extract_frames rule names its outputs (frames.zip + extract.json, or the folder)."""
    return [
        f
        for v in VIDEO_IDS
        if split is None or SPLIT_OF[v] == split
        for f in L.frame_outputs(v)
    ]


def frame_folders(split=None):
    return [L.frames(v) for v in VIDEO_IDS if split is None or SPLIT_OF[v] == split]


def target_proposals():
    return [L.proposals(v, s) for v in VERSIONS for s in SPLITS]


def target_train():
    return [final_checkpoint(v) for v in VERSIONS]


def target_infer(kinds=("ours", "final")):
    return [f"{L.run_dir(k, v)}/detections.csv" for k in kinds for v in VERSIONS]


def target_evaluate(kinds=("ours", "final")):
    return [
        f"{L.run_dir(k, v)}/metrics_{m}.json"
        for k in kinds
        for v in VERSIONS
        for m in MODES
    ]


def target_publish():
    return [f"{L.run_dir('ours', v)}/published" for v in VERSIONS]


REFERENCE_LOGS = config["sources"]["reference_logs"]


def reference_log(version, kind):
    """MMAction2's training log of ``version``: kind "json" (.log.json) or "text" (.log)."""
    ext = "log.json" if kind == "json" else "log"
    return f"{RES}/reference_logs/v{version}.{ext}"


def reference_log_inputs(version):
    """The reference logs of ``version`` (named json, text) when configured, else nothing:
    MMAction2's downloaded logs, or (demo) our own run of another version."""
    entry = (REFERENCE_LOGS or {}).get(version)
    if entry is None:
        return {}
    if "ours_run" in entry:
        run = L.run_dir("ours", entry["ours_run"])
        return {"json": f"{run}/train_log.jsonl", "text": f"{run}/train.log"}
    return {k: reference_log(version, k) for k in ("json", "text")}


def reference_label(version):
    entry = (REFERENCE_LOGS or {}).get(version) or {}
    if "ours_run" in entry:
        return f"our v{entry['ours_run']} run (not MMAction2's)"
    return "MMAction2 0.x log"


def downloaded_reference_logs():
    return [
        reference_log(v, k)
        for v, entry in (REFERENCE_LOGS or {}).items()
        if "ours_run" not in entry
        for k in ("json", "text")
    ]


def reference_log_source(wildcards):
    kind = "json" if wildcards.ext == "log.json" else "text"
    return REFERENCE_LOGS[wildcards.version][kind]


def target_compare():
    return [
        f"{OUT}/report/v{v}_compare.txt" for v in VERSIONS if reference_log_inputs(v)
    ]


def target_plots():
    return [
        f"{OUT}/report/v{v}_{c}.svg"
        for v in VERSIONS
        for c in ("curves", "per_class_ap")
    ]


def target_table():
    return ["results/README.md", "results/SHA256SUMS"]


def all_targets():
    out = target_table() + target_plots() + target_compare()
    if DATASET == "ava":
        out.append(f"{OUT}/readme.done")
    return out
