# MMAction2's publish_model on the best epoch's checkpoint (mmcv EvalHook's choice, named in
# final.json): optimizer dropped, named <config>-<sha256[:8]>.pth


rule publish_checkpoint:
    input:
        run=f"{OUT}/ours/v{{version}}/train/final.json",
    output:
        protected(directory(f"{OUT}/ours/v{{version}}/published")),
    log:
        f"{LOGS}/publish/v{{version}}.log",
    benchmark:
        f"{BENCH}/publish/v{{version}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **resources_of("default"),
    params:
        name=lambda w: config["experiment_names"][w.version],
    shell:
        "python -m acrn.publish --run {input.run:q} --name {params.name}"
        " --out-dir {output:q} > {log} 2>&1"


rule publish:
    input:
        target_publish(),
