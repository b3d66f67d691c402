# Inference on the val keyframes: ours (the published best epoch), final (the last epoch) and
# MMAction2's released checkpoints; every checkpoint is read weights-only. It reads only the
# val videos' frames (config val_videos, checked against the val CSV).


rule infer_detections:
    input:
        experiment=lambda w: L.experiment(w.version),
        checkpoint=lambda w: checkpoint_for(w.kind, w.version),
        frames=target_frames("val"),
        val_ids=lambda w: L.val_ids_checked(w.version),
        proposals=lambda w: L.proposals(w.version, "val"),
        annotations=lambda w: L.annotation(w.version, "val"),
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
        launch=" ".join(config["launch"]["args"]),
    shell:
        "python -m acrn.launch {params.launch} -m acrn.infer --config {input.experiment:q}"
        " --checkpoint {input.checkpoint:q} --out {output:q} > {log} 2>&1"


rule infer:
    input:
        target_infer(),
