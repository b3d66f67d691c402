# Inference on the val keyframes: ours (the published best epoch), final (the last epoch) and
# MMAction2's released checkpoints; every checkpoint is read weights-only. It reads only the
# val videos' frames (config val_videos, checked against the val CSV). An inference reads the
# ancient() manifest of its inputs and re-runs when their content changes (param `inputs`),
# never for a timestamp alone; ours and final also when the training is new.


checkpoint infer_inputs:
    # the manifest of what an inference reads (checkpoint, val frames, proposals, annotations);
    # a checkpoint, as train_inputs
    input:
        unpack(lambda w: infer_input_files(w.kind, w.version)),
    output:
        L.inputs_manifest("{kind}", "{version}", "infer"),
    log:
        f"{LOGS}/infer/inputs_{{kind}}_v{{version}}.log",
    benchmark:
        f"{BENCH}/infer/inputs_{{kind}}_v{{version}}.tsv"
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        **resources_of("default"),
    params:
        cache=L.hash_cache,
        folders=frame_folders("val"),
    shell:
        "python -m acrn.fingerprint manifest --out {output:q} --experiment {input.experiment:q}"
        " --cache {params.cache:q} {input.checkpoint:q} {params.folders:q} {input.proposals:q}"
        " {input.annotations:q} > {log} 2>&1"


rule infer_detections:
    input:
        manifest=lambda w: manifest_of("infer_inputs", kind=w.kind, version=w.version),
    output:
        f"{OUT}/{{kind}}/v{{version}}/detections.csv",
    log:
        f"{LOGS}/infer/{{kind}}_v{{version}}.log",
    benchmark:
        f"{BENCH}/infer/{{kind}}_v{{version}}.tsv"
    conda:
        ENV
    threads: threads_of("infer")
    resources:
        **resources_of("infer"),
    params:
        inputs=lambda w: infer_digest(w.kind, w.version),
        training=lambda w: training_id(w.version) if w.kind != "released" else "",
        experiment=lambda w: L.experiment(w.version),
        checkpoint=lambda w: checkpoint_for(w.kind, w.version),
        launch=" ".join(config["launch"]["args"]),
    shell:
        "python -m acrn.launch {params.launch} -m acrn.infer --config {params.experiment:q}"
        " --checkpoint {params.checkpoint:q} --out {output:q} > {log} 2>&1"


rule infer:
    input:
        target_infer(),
