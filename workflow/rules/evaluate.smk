# The AVA frame-mAP of a detections file, in both modes (mmaction, official); the mmaction
# mode also over AVA's 80-class list (classes_80), from the same read of the files.
# The evaluation code is an input: touching it re-runs the evaluation (and the table) only.
import shlex

EVAL_CODE = [
    "acrn/evaluate.py",
    *sorted(str(p) for p in Path("acrn/metric").glob("*.py")),
]


rule evaluate_detections:
    input:
        detections=f"{OUT}/{{kind}}/v{{version}}/detections.csv",
        # (ancient) the evaluation starts once Snakemake has decided whether the inference
        # re-runs (its manifest is a checkpoint): it never reads detections being re-made
        manifest=ancient(L.inputs_manifest("{kind}", "{version}", "infer")),
        labelmap=lambda w: L.annotation(
            w.version, "label_map" if w.mode == "mmaction" else "eval_label_map"
        ),
        labelmap_80=lambda w: (
            L.annotation(w.version, "label_map_80") if w.mode == "mmaction" else []
        ),
        groundtruth=lambda w: L.annotation(w.version, "val"),
        exclusions=lambda w: L.annotation(w.version, "exclude_val"),
        code=EVAL_CODE,
    output:
        f"{OUT}/{{kind}}/v{{version}}/metrics_{{mode}}.json",
    log:
        f"{LOGS}/evaluate/{{kind}}_v{{version}}_{{mode}}.log",
    benchmark:
        f"{BENCH}/evaluate/{{kind}}_v{{version}}_{{mode}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **resources_of("default"),
    params:
        # a deleted detections file (e.g. by a failed forced inference) is made again
        missing=lambda w: missing_inputs(
            [f"{OUT}/{w.kind}/v{w.version}/detections.csv"],
            f"{OUT}/{w.kind}/v{w.version}/metrics_{w.mode}.json",
        ),
        labelmap_80=lambda w, input: (
            f"--labelmap-80 {shlex.quote(input.labelmap_80)}"
            if w.mode == "mmaction"
            else ""
        ),
    shell:
        "python -m acrn.evaluate --labelmap {input.labelmap:q} --groundtruth {input.groundtruth:q}"
        " --detections {input.detections:q} --exclusions {input.exclusions:q}"
        " --mode {wildcards.mode} {params.labelmap_80} --out {output:q} > {log} 2>&1"


rule evaluate:
    input:
        target_evaluate(),
