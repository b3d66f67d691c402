# MMAction2's publish_model: optimizer dropped, named <config>-<sha256[:8]>.pth


rule publish_checkpoint:
    input:
        final_checkpoint("{version}"),
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
        "python -m acrn.publish --checkpoint {input:q} --name {params.name}"
        " --out-dir {output:q} > {log} 2>&1"


rule publish:
    input:
        target_publish(),
