# MMAction2's publish_model on the best epoch's checkpoint (mmcv EvalHook's choice, named in
# final.json): optimizer dropped, named <config>-<sha256[:8]>.pth. Cheap and deterministic (the
# training's work directory keeps the source), so not protected: it is re-made for a new
# training (param `training`), never for a timestamp of the training's outputs.


rule publish_checkpoint:
    input:
        run=ancient(L.trained("{version}", "final.json")),
    output:
        directory(f"{OUT}/ours/v{{version}}/published"),
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
        training=lambda w: training_id(w.version),
    shell:
        "python -m acrn.publish --run {input.run:q} --name {params.name}"
        " --out-dir {output:q} > {log} 2>&1"


rule publish:
    input:
        target_publish(),
