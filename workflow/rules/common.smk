# Shared by the rules: the checked config, the paths, the video list, the resources of a rule.
# The logic is plain Python in acrn/workflow_config.py (no torch: parsing stays fast).
import ast
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import yaml
from snakemake.exceptions import IncompleteCheckpointException, WorkflowError
from snakemake.io import IOFile

REPO = Path(workflow.basedir).parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from acrn import fingerprint as fp
from acrn import joblog, preflight, train_job
from acrn import workflow_config as wc
from acrn.config import to_dict
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
LOGS, BENCH = L.logs, L.bench
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


def train_resources():
    """``resources_of("train")``, except for a work directory that holds a complete run: then
    the job only restores the rule's outputs (hard links), so it asks for no GPU and little
    time (a --forcerun or a lost output never waits in a GPU queue), and ``restore`` tells the
    job so. ``attempt``: Snakemake's attempt number (a retry of a failed training stops at
    once, acrn.train_job)."""
    full, small = resources_of("train"), resources_of("default")

    def pick(key):
        return lambda w: small.get(key, 0) if restorable(w.version) else full[key]

    out = {k: pick(k) for k in ("mem_mb", "runtime", "gpu")}
    out["cpus_per_gpu"] = full["cpus_per_gpu"]
    out["attempt"] = lambda w, attempt: attempt
    # a resource, not a param: no rerun trigger
    out["restore"] = lambda w: int(restorable(w.version))
    if "nodes" in full:
        out["nodes"] = 1
    return out


def train_threads(wildcards):
    return 1 if restorable(wildcards.version) else threads_of("train")


# ------------------------------------------------------------------ paths and arguments


def mirror_input():
    """The demo's downloads read from the generated mirror: depend on it (ancient: a re-made
    mirror does not re-download; the downloads check its SHA256SUMS)."""
    return [ancient(L.mirror)] if config["mirror"] is not None else []


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
    args += f" --route {f['route']} --layout {f['layout']} --ffmpeg-major {f['ffmpeg_major']}"
    return args + (" --strict-decode" if f["strict_decode"] else "")


def final_checkpoint(version):
    return wc.final_checkpoint(config, version, EPOCHS)


# ------------------------------------------------------------------ when a job re-runs
# README "When a job re-runs". Training and inference read ancient() manifests of their inputs
# (timestamps alone never plan them); the training's guard stops the run when its recorded
# inputs changed; an inference re-runs when its inputs' content digest (a param) changes;
# whatever derives from a training re-runs when the training's id changes.
HASHES = fp.HashCache(L.hash_cache)


def missing_inputs(paths, output):
    """A param of the rules that summarise other files: a deleted input (a scratch purge, a
    failed forced job) changes it, so the rule re-runs and the input is made again. Snakemake
    records a param as it was when it planned the job (here: "missing ..."), so once the inputs
    are back the recorded value is given again, and the next run has nothing to do."""
    missing = sorted(p for p in paths if not os.path.exists(p))
    if missing:
        return f"missing ({time.time_ns()}): {' '.join(missing)}"
    try:  # Snakemake's record of the output (internal API: without it, one more cheap run)
        recorded = workflow.persistence.params(IOFile(output)) or []
    except Exception:
        return ""
    for text in recorded:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            continue
        if isinstance(value, str) and value.startswith("missing ("):
            return value
    return ""


def experiment_of(version):
    return to_dict(EXPERIMENTS[version])


def train_input_paths(version):
    """What a training's manifest covers (frames as folders: their digest, not their bytes)."""
    return [
        p for ps in wc.train_inputs(config, version, VIDEO_IDS).values() for p in ps
    ]


def train_input_files(version):
    """train_inputs' input files: the frames as extract_frames names its outputs."""
    files = wc.train_inputs(config, version, VIDEO_IDS)
    return {"experiment": L.experiment(version), **files, "frames": target_frames()}


def infer_input_paths(kind, version):
    """What an inference's manifest covers: the val videos' frames (folders) and the rest."""
    files = wc.infer_inputs(config, kind, version, VAL_IDS, EPOCHS)
    return [p for ps in files.values() for p in ps]


def infer_input_files(kind, version):
    files = wc.infer_inputs(config, kind, version, VAL_IDS, EPOCHS)
    files.update(frames=target_frames("val"), val_ids=[L.val_ids_checked(version)])
    return {"experiment": L.experiment(version), **files}


def manifest_of(name, **wildcards):
    """The manifest written by a checkpoint (``ancient``, its timestamp never plans the job;
    Snakemake re-plans the job after the checkpoint ran, so its params see the new inputs).
    """
    try:
        return ancient(getattr(checkpoints, name).get(**wildcards).output[0])
    except IncompleteCheckpointException as e:
        # the checkpoint re-runs first: its (existing) output must not plan the job either
        e.targetfile = ancient(e.targetfile)
        raise


def restorable(version):
    return train_job.is_complete(L.workdir(version))


# version -> the guard's message (None: the recorded inputs are the current ones)
GUARD = {}


def train_outputs(version):
    """train_model's outputs, by the role acrn.train_job makes them for (hard links of the
    work directory's files; what reads them takes them ancient(), with the param `training`).
    """
    run = L.run_dir("ours", version)
    return {
        "checkpoint": final_checkpoint(version),
        "run": L.trained(version, "final.json"),
        "json_log": f"{run}/train_log.jsonl",
        "text_log": f"{run}/train.log",
    }


def guard_message(version):
    if version not in GUARD:
        try:
            train_job.guard(
                L.workdir(version),
                train_input_paths(version),
                experiment_of(version),
                HASHES,
            )
            GUARD[version] = None
        except train_job.InputsChanged as e:
            GUARD[version] = str(e)
        stale = train_job.stale_outputs(
            L.workdir(version), list(train_outputs(version).values())
        )
        if stale:
            GUARD[version] = (
                f"{', '.join(stale)}: outputs of a training that {L.workdir(version)} no "
                "longer holds (was the work directory moved or deleted by hand?). Move them "
                "aside too, then run snakemake again to train anew (python -m acrn.train_job "
                "retrain moves a work directory and its outputs together)."
            )
    return GUARD[version]


def train_guard(version):
    """Input function of train_model: when the training in the work directory recorded other
    inputs than the workflow has now, a run stops before anything is submitted (onstart);
    a dry run says so here. (Raising here would not stop a run: Snakemake drops a producer
    whose input function fails when the file is present.)"""
    message = guard_message(version)
    if message and workflow.is_main_process:
        print(f"\nThis run would stop before any job: {message}\n", file=sys.stderr)
    return []


def training_id(version):
    """Param of what derives from a training: a new training (new id) re-makes it."""
    return train_job.run_id(L.workdir(version))


def infer_digest(kind, version):
    """Param of infer_detections: the digest of its inputs' content (an input missing now, being
    re-made, counts with its digest in the last manifest)."""
    paths = infer_input_paths(kind, version)
    now = fp.current(paths, HASHES)
    HASHES.save()
    manifest = fp.read_manifest(L.inputs_manifest(kind, version, "infer")) or {
        "inputs": {}
    }
    entries = {
        p: d if d is not None else manifest["inputs"].get(p) for p, d in now.items()
    }
    return fp.summary(entries, experiment_of(version))


def checkpoint_for(kind, version):
    """ours: the published (best epoch's) checkpoint; final: the last epoch's; released: MMAction2's."""
    return wc.infer_inputs(config, kind, version, VAL_IDS, EPOCHS)["checkpoint"][0]


def table_spec(kind):
    return json.dumps(wc.table_spec(config, kind, VIDEO_NAMES, EXPERIMENTS, VAL_IDS))


def _trained_output(path):
    """Whether ``path`` is an output of train_model (read as ancient() by the rules after it)."""
    return any(path in train_outputs(v).values() for v in VERSIONS)


def table_inputs(kind):
    """The table's inputs: a training's outputs ancient (with the param `training`), and the
    manifests of the inferences (ancient): the table starts only once Snakemake has decided
    whether each inference re-runs (so it never reads a detections file being re-made).
    """
    inputs = {
        key: (
            [ancient(p) if _trained_output(p) else p for p in paths]
            if isinstance(paths, list)
            else paths
        )
        for key, paths in wc.table_inputs(
            config, kind, VIDEO_NAMES, EXPERIMENTS, VAL_IDS
        ).items()
    }
    kinds = ("ours", "final", "released") if kind == "ours" else ("released",)
    if config["sources"]["released"] is None:
        kinds = tuple(k for k in kinds if k != "released")
    inputs["manifests"] = [
        ancient(L.inputs_manifest(k, v, "infer")) for k in kinds for v in VERSIONS
    ]
    return inputs


def table_paths(kind):
    paths = []
    for value in wc.table_inputs(
        config, kind, VIDEO_NAMES, EXPERIMENTS, VAL_IDS
    ).values():
        paths += value if isinstance(value, list) else [value]
    return paths


def readme_table():
    if DATASET != "ava":
        raise WorkflowError(
            f"readme: {L.table} holds {DATASET} results: only real AVA results go into "
            "README.md (README, 'Results'); the demo's table stays in its own folder"
        )
    return L.table


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
        outputs = train_outputs(entry["ours_run"])
        return {
            "json": ancient(outputs["json_log"]),
            "text": ancient(outputs["text_log"]),
        }
    return {k: reference_log(version, k) for k in ("json", "text")}


def trainings_behind(version):
    """The ids of the trainings a chart or comparison of ``version`` reads (its own, and the
    other version's when that is its reference)."""
    entry = (REFERENCE_LOGS or {}).get(version) or {}
    return [training_id(v) for v in [version, entry.get("ours_run")] if v]


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
    return [L.table, L.sums]


def all_targets():
    out = target_table() + target_plots() + target_compare()
    if DATASET == "ava":
        out.append(f"{OUT}/readme.done")
    return out


# ------------------------------------------------------------------ start and failure (Snakefile)


def check_before_start():
    """onstart: a training whose inputs changed stops the run with the two ways on; then
    ffmpeg of the pinned major, free space, writable outputs, sbatch (acrn.preflight).
    """
    for version in sorted(
        {
            job.wildcards.version
            for job in workflow.dag.jobs
            if job.rule.name == "train_model"
        }
    ):
        if guard_message(version):
            raise WorkflowError(guard_message(version))
    if workflow.touch:
        return
    counts = Counter(job.rule.name for job in workflow.dag.needrun_jobs())
    found = preflight.problems(
        config,
        counts,
        workflow.executor_plugin.name,
        [RES, OUT, LOGS, BENCH, str(Path(L.table).parent)],
    )
    if found:
        raise WorkflowError(preflight.report(found))


def why_jobs_failed(log):
    """onerror: the decisive line of each failed job's log, not only its path."""
    print(joblog.summary(log if isinstance(log, list) else [log]), file=sys.stderr)
