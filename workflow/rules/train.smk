# Training per version: ONE job on one node asking for its GPUs (resources: gpu=N, nodes=1);
# acrn.launch starts torchrun with one process per GPU the job got. Re-running resumes from
# the newest checkpoint in the work directory (only the final checkpoint is a declared
# output, so Snakemake never deletes the intermediate ones).


rule experiment_config:
    # the ONE file the training reads: the config's experiment section, this version's paths
    output:
        L.experiment("{version}"),
    log:
        f"{LOGS}/train/experiment_v{{version}}.log",
    benchmark:
        f"{BENCH}/train/experiment_v{{version}}.tsv"
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        **resources_of("default"),
    params:
        exp=lambda w: json.dumps(wc.experiment_dict(config, w.version)),
    shell:
        "python -m acrn.experiment --json {params.exp:q} --out {output:q} > {log} 2>&1"


rule train_model:
    input:
        experiment=L.experiment("{version}"),
        frames=target_frames(),
        proposals=lambda w: [L.proposals(w.version, s) for s in SPLITS],
        annotations=lambda w: L.annotation_members(w.version),
        pretrained=L.kinetics,
    output:
        checkpoint=protected(final_checkpoint("{version}")),
        run=f"{OUT}/ours/v{{version}}/train/final.json",
        json_log=f"{OUT}/ours/v{{version}}/train_log.jsonl",
        text_log=f"{OUT}/ours/v{{version}}/train.log",
    log:
        f"{LOGS}/train/train_v{{version}}.log",
    benchmark:
        f"{BENCH}/train/train_v{{version}}.tsv"
    # a job that reaches its time limit (runtime, 24 h by default) is resubmitted and resumes
    # from the newest checkpoint; 4 resubmissions: up to 5 x runtime for the 10 epochs
    retries: 4
    conda:
        ENV
    threads: threads_of("train")
    resources:
        **resources_of("train"),
    params:
        workdir=f"{OUT}/ours/v{{version}}/train",
        launch=" ".join(config["launch"]["args"]),
    shell:
        "python -m acrn.launch {params.launch} -m acrn.train --config {input.experiment:q}"
        " --workdir {params.workdir:q} > {log} 2>&1"
        " && cp {params.workdir:q}/train_log.jsonl {output.json_log:q}"
        " && cp {log:q} {output.text_log:q}"


rule train:
    input:
        target_train(),
