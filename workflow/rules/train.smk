# Training per version: ONE job on one node asking for its GPUs (resources: gpu=N, nodes=1);
# acrn.train_job runs acrn.launch (torchrun, one process per GPU the job got). The work
# directory (results/<run>/ours/v<version>/train) is never a declared output: the rule's
# outputs are hard links of its files, so Snakemake deletes none of its checkpoints. Re-running
# resumes from its newest checkpoint; a complete run is restored, not trained again. README:
# "When a job re-runs".


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


checkpoint train_inputs:
    # the manifest of what the training reads (frames digests, sha256 of the files, the
    # experiment): the training reads it as ancient(), not the files' timestamps. A checkpoint:
    # Snakemake re-plans what follows once it is written, on the inputs as they are then.
    input:
        unpack(lambda w: train_input_files(w.version)),
    output:
        L.inputs_manifest("ours", "{version}", "train"),
    log:
        f"{LOGS}/train/inputs_v{{version}}.log",
    benchmark:
        f"{BENCH}/train/inputs_v{{version}}.tsv"
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        **resources_of("default"),
    params:
        cache=L.hash_cache,
        folders=frame_folders(),
    shell:
        "python -m acrn.fingerprint manifest --out {output:q} --experiment {input.experiment:q}"
        " --cache {params.cache:q} {params.folders:q} {input.proposals:q} {input.annotations:q}"
        " {input.pretrained:q} > {log} 2>&1"


rule train_model:
    input:
        manifest=lambda w: manifest_of("train_inputs", version=w.version),
        guard=lambda w: train_guard(w.version),
    output:
        **train_outputs("{version}"),
    log:
        f"{LOGS}/train/train_v{{version}}.log",
    benchmark:
        f"{BENCH}/train/train_v{{version}}.tsv"
    # a job that reaches its time limit (runtime, 24 h by default) or loses its node is
    # resubmitted and resumes from the newest checkpoint (up to 5 x runtime for the 10
    # epochs); a retry after an error stops at once, naming it (acrn.train_job)
    retries: 4
    conda:
        ENV
    threads: train_threads
    resources:
        **train_resources(),
    params:
        workdir=lambda w: L.workdir(w.version),
        experiment=lambda w: L.experiment(w.version),
        launch=" ".join(config["launch"]["args"]),
    shell:
        "python -m acrn.train_job run --workdir {params.workdir:q} --config {params.experiment:q}"
        " --manifest {input.manifest:q} --attempt {resources.attempt}"
        " --expect-complete {resources.restore}"
        " --checkpoint {output.checkpoint:q} --run {output.run:q}"
        " --json-log {output.json_log:q} --text-log {output.text_log:q}"
        " -- {params.launch} > {log} 2>&1"


rule train:
    input:
        target_train(),
