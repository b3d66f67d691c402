# The synthetic mini-AVA mirror (demo only): laid out like the real remote sources.
if config["mirror"] is not None:

    rule mirror:
        output:
            directory(L.mirror),
        log:
            f"{LOGS}/mirror.log",
        benchmark:
            f"{BENCH}/mirror.tsv"
        localrule: True
        conda:
            ENV
        threads: 1
        resources:
            **resources_of("default"),
        params:
            seed=config["mirror"]["seed"],
            args=" ".join(config["mirror"]["args"]),
        shell:
            "python -m acrn.synthetic --out {output} --seed {params.seed} {params.args} > {log} 2>&1"
