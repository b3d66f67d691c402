# Inference on the val keyframes, the AVA frame-mAP in both modes, checkpoint publishing, and
# the same for MMAction2's released checkpoints (target `released`, no training).

EVAL_CODE = ["acrn/evaluate.py"] + sorted(
    str(p) for p in Path("acrn/metric").glob("*.py")
)
if Path("acrn/metric.py").exists():
    EVAL_CODE.append("acrn/metric.py")


rule infer_detections:
    input:
        experiment=lambda w: experiment_yaml(w.version),
        checkpoint=lambda w: checkpoint_for(w.kind, w.version),
        frames=target_frames(),
        proposals=lambda w: proposals(w.version, "val"),
        annotations=lambda w: annotation(w.version, "val"),
    output:
        f"{OUT}/{{kind}}/v{{version}}/detections.csv",
    log:
        f"{LOGS}/infer/{{kind}}_v{{version}}.log",
    benchmark:
        f"{BENCH}/infer/{{kind}}_v{{version}}.tsv"
    conda:
        "../../envs/acrn.yaml"
    threads: gpu_threads("infer")
    resources:
        gpu=res("infer", "gpu"),
        cpus_per_gpu=res("infer", "cpus_per_gpu"),
        mem_mb=res("infer", "mem_mb"),
        runtime=res("infer", "runtime"),
    params:
        launch=launch_args(),
        # MMAction2's released files keep mmcv objects in their meta (trusted, sha256-verified)
        pickle=lambda w: "--allow-pickle" if w.kind == "released" else "",
    shell:
        "python -m acrn.launch {params.launch} -m acrn.infer --config {input.experiment:q}"
        " --checkpoint {input.checkpoint:q} --out {output:q} {params.pickle} > {log} 2>&1"


rule evaluate_detections:
    # the evaluation code is an input: touching it re-runs the evaluation (and the table), nothing
    # upstream
    input:
        detections=f"{OUT}/{{kind}}/v{{version}}/detections.csv",
        labelmap=lambda w: annotation(
            w.version, "label_map" if w.mode == "mmaction" else "eval_label_map"
        ),
        groundtruth=lambda w: annotation(w.version, "val"),
        exclusions=lambda w: annotation(w.version, "exclude_val"),
        code=EVAL_CODE,
    output:
        f"{OUT}/{{kind}}/v{{version}}/metrics_{{mode}}.json",
    log:
        f"{LOGS}/evaluate/{{kind}}_v{{version}}_{{mode}}.log",
    benchmark:
        f"{BENCH}/evaluate/{{kind}}_v{{version}}_{{mode}}.tsv"
    conda:
        "../../envs/acrn.yaml"
    threads: 1
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
    shell:
        "python -m acrn.evaluate --labelmap {input.labelmap:q} --groundtruth {input.groundtruth:q}"
        " --detections {input.detections:q} --exclusions {input.exclusions:q}"
        " --mode {wildcards.mode} --out {output:q} > {log} 2>&1"


rule publish_checkpoint:
    # MMAction2's publish_model: optimizer dropped, named <config>-<sha256[:8]>.pth
    input:
        f"{OUT}/ours/v{{version}}/train/epoch_{EPOCHS}.pth",
    output:
        protected(directory(f"{OUT}/ours/v{{version}}/published")),
    log:
        f"{LOGS}/publish/v{{version}}.log",
    benchmark:
        f"{BENCH}/publish/v{{version}}.tsv"
    conda:
        "../../envs/acrn.yaml"
    threads: 1
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
    params:
        name=lambda w: config["experiment_names"][w.version],
    shell:
        "python -m acrn.publish --checkpoint {input:q} --name {params.name}"
        " --out-dir {output:q} > {log} 2>&1"


rule infer:
    input:
        target_infer(),


rule evaluate:
    input:
        target_evaluate(),


rule publish:
    input:
        target_publish(),
