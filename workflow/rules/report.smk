# The results table + SHA256SUMS (config results_table: results/README.md for the real run,
# results/demo/README.md for the demo), the README section, the charts of `snakemake --report`.
# What a training wrote is read as ancient() with the training's id as a param: restoring its
# outputs re-makes nothing here, a new training re-makes everything. A deleted input (param
# `missing`) makes the rule re-run, so the input is made again and SHA256SUMS stays true.


rule make_plots:
    input:
        unpack(lambda w: reference_log_inputs(w.version)),
        json_log=ancient(f"{OUT}/ours/v{{version}}/train_log.jsonl"),
        metrics=f"{OUT}/ours/v{{version}}/metrics_mmaction.json",
        code="acrn/report.py",
    output:
        curves=report(
            f"{OUT}/report/v{{version}}_curves.svg",
            caption="../report/curves.rst",
            category="Training",
            labels={"version": "{version}", "figure": "training curves vs MMAction2"},
        ),
        per_class=report(
            f"{OUT}/report/v{{version}}_per_class_ap.svg",
            caption="../report/per_class_ap.rst",
            category="Evaluation",
            labels={"version": "{version}", "figure": "per-class AP"},
        ),
    log:
        f"{LOGS}/report/plots_v{{version}}.log",
    benchmark:
        f"{BENCH}/report/plots_v{{version}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **resources_of("default"),
    params:
        training=lambda w: trainings_behind(w.version),
        title=lambda w: f"{DATASET} v{w.version}",
        reference=lambda w, input: (
            f"--reference {input.json} --reference-text {input.text}"
            if reference_log_inputs(w.version)
            else ""
        ),
        label=lambda w: reference_label(w.version),
    shell:
        "python -m acrn.report plots --log {input.json_log:q} --metrics {input.metrics:q}"
        " --curves {output.curves:q} --per-class {output.per_class:q}"
        " --title {params.title:q} {params.reference} --reference-label {params.label:q}"
        " > {log} 2>&1"


if REFERENCE_LOGS is not None:

    rule compare_training:
        # where our training stands against the reference log: at the end of the run (part of
        # `all`); while training runs, call `python -m acrn.compare` directly (README)
        input:
            unpack(lambda w: reference_log_inputs(w.version)),
            run=ancient(L.trained("{version}", "final.json")),
            code="acrn/compare.py",
        output:
            f"{OUT}/report/v{{version}}_compare.txt",
        log:
            f"{LOGS}/report/compare_v{{version}}.log",
        benchmark:
            f"{BENCH}/report/compare_v{{version}}.tsv"
        localrule: True
        conda:
            ENV
        threads: 1
        resources:
            **resources_of("default"),
        params:
            training=lambda w: trainings_behind(w.version),
            workdir=lambda w: L.workdir(w.version),
            label=lambda w: reference_label(w.version),
        shell:
            "python -m acrn.compare --workdir {params.workdir:q} --reference {input.json:q}"
            " --reference-text {input.text:q} --reference-label {params.label:q}"
            " > {output:q} 2> {log}"

    rule compare:
        input:
            target_compare(),


rule plots:
    input:
        target_plots(),


rule results_table:
    input:
        unpack(lambda w: table_inputs("ours")),
    output:
        table=L.table,
        sums=L.sums,
        html=report(
            f"{OUT}/report/table.html",
            caption="../report/table.rst",
            category="Results",
            labels={"table": "results"},
        ),
    log:
        f"{LOGS}/report/table.log",
    benchmark:
        f"{BENCH}/report/table.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **resources_of("default"),
    params:
        missing=lambda w: missing_inputs(table_paths("ours"), L.table),
        training=lambda w: [training_id(v) for v in VERSIONS],
        spec=lambda w: table_spec("ours"),
        cache=L.hash_cache,
    shell:
        "python -m acrn.report table --spec {params.spec:q} --out {output.table:q}"
        " --sums {output.sums:q} --html {output.html:q} --cache {params.cache:q} > {log} 2>&1"


rule table:
    input:
        target_table(),


rule readme:
    # rewrites the table between <!-- acrn-results:start --> and <!-- acrn-results:end -->
    # in README.md: real AVA results only (a synthetic table is refused, also by acrn.report)
    input:
        table=lambda w: readme_table(),
        readme="README.md",
    output:
        touch(f"{OUT}/readme.done"),
    log:
        f"{LOGS}/report/readme.log",
    benchmark:
        f"{BENCH}/report/readme.tsv"
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        **resources_of("default"),
    shell:
        "python -m acrn.report readme --table {input.table:q} --readme {input.readme:q} > {log} 2>&1"


if config["sources"]["released"] is not None:

    rule released_table:
        input:
            unpack(lambda w: table_inputs("released")),
        output:
            table=f"{OUT}/released/README.md",
            sums=f"{OUT}/released/SHA256SUMS",
        log:
            f"{LOGS}/report/released_table.log",
        benchmark:
            f"{BENCH}/report/released_table.tsv"
        conda:
            ENV
        threads: 1
        resources:
            **resources_of("default"),
        params:
            missing=lambda w: missing_inputs(
                table_paths("released"), f"{OUT}/released/README.md"
            ),
            spec=lambda w: table_spec("released"),
            cache=L.hash_cache,
        shell:
            "python -m acrn.report table --spec {params.spec:q} --out {output.table:q}"
            " --sums {output.sums:q} --cache {params.cache:q} > {log} 2>&1"

    rule released:
        # evaluates MMAction2's released ACRN checkpoints: no training, only the val videos
        input:
            f"{OUT}/released/README.md",
