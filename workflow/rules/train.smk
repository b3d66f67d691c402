# Training per version: ONE job asking for the GPUs of one node (resources: gpu=N);
# acrn.launch starts torchrun with one process per GPU the job got. Re-running resumes from
# the newest checkpoint in the work directory (only the final checkpoint is a declared
# output, so Snakemake never deletes the intermediate ones).


rule experiment_config:
    # the experiment sections of the config with this version's paths filled in
    output:
        f"{OUT}/ours/v{{version}}/experiment.yaml",
    log:
        f"{LOGS}/train/experiment_v{{version}}.log",
    benchmark:
        f"{BENCH}/train/experiment_v{{version}}.tsv"
    conda:
        "../../envs/acrn.yaml"
    threads: 1
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
    params:
        sets=lambda w: experiment_sets(w.version),
    shell:
        "python -m acrn.experiment --preset real --out {output:q} {params.sets} > {log} 2>&1"


rule train_model:
    input:
        experiment=f"{OUT}/ours/v{{version}}/experiment.yaml",
        frames=target_frames(),
        proposals=lambda w: [proposals(w.version, s) for s in SPLITS],
        annotations=lambda w: annotation_members(w.version),
        pretrained=KINETICS,
    output:
        checkpoint=protected(f"{OUT}/ours/v{{version}}/train/epoch_{EPOCHS}.pth"),
        json_log=f"{OUT}/ours/v{{version}}/train_log.jsonl",
        text_log=f"{OUT}/ours/v{{version}}/train.log",
    log:
        f"{LOGS}/train/train_v{{version}}.log",
    benchmark:
        f"{BENCH}/train/train_v{{version}}.tsv"
    conda:
        "../../envs/acrn.yaml"
    threads: gpu_threads("train")
    resources:
        gpu=res("train", "gpu"),
        cpus_per_gpu=res("train", "cpus_per_gpu"),
        mem_mb=res("train", "mem_mb"),
        runtime=res("train", "runtime"),
    params:
        workdir=f"{OUT}/ours/v{{version}}/train",
        launch=launch_args(),
    shell:
        "python -m acrn.launch {params.launch} -m acrn.train --config {input.experiment:q}"
        " --workdir {params.workdir:q} > {log} 2>&1"
        " && cp {params.workdir:q}/train_log.jsonl {output.json_log:q}"
        " && cp {log:q} {output.text_log:q}"


rule train:
    input:
        target_train(),
