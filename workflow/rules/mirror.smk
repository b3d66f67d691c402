# The synthetic mini-AVA mirror (demo only): laid out like the real remote sources.
if config["mirror"] is not None:

    rule mirror:
        output:
            directory(MIRROR),
        log:
            f"{LOGS}/mirror.log",
        benchmark:
            f"{BENCH}/mirror.tsv"
        conda:
            "../../envs/acrn.yaml"
        threads: 1
        resources:
            mem_mb=res("default", "mem_mb"),
            runtime=res("default", "runtime"),
        params:
            seed=config["mirror"]["seed"],
            args=" ".join(config["mirror"]["args"]),
        shell:
            "python -m acrn.synthetic --out {output} --seed {params.seed} {params.args} > {log} 2>&1"
