# Proposal preparation per version and split, with a stats file (boxes per keyframe, recall of
# the ground truth at IoU 0.5).


rule prepare_proposals:
    input:
        proposals=f"{RES}/proposals/ava_dense_proposals_{{split}}.pkl",
        annotations=lambda w: annotation(w.version, w.split),
        exclusions=lambda w: annotation(w.version, f"exclude_{w.split}"),
        code="acrn/proposals.py",
    output:
        pkl=f"{OUT}/ours/v{{version}}/proposals/{{split}}.pkl",
        stats=f"{OUT}/ours/v{{version}}/proposals/{{split}}_stats.json",
    log:
        f"{LOGS}/proposals/v{{version}}_{{split}}.log",
    benchmark:
        f"{BENCH}/proposals/v{{version}}_{{split}}.tsv"
    conda:
        "../../envs/acrn.yaml"
    threads: 1
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
    params:
        thr=config["experiment"]["data"].get("person_det_score_thr", 0.9),
    shell:
        "python -m acrn.proposals --proposals {input.proposals:q} --annotations {input.annotations:q}"
        " --exclusions {input.exclusions:q} --split {wildcards.split} --score-thr {params.thr}"
        " --out {output.pkl:q} --stats {output.stats:q} > {log} 2>&1"


rule proposals:
    input:
        target_proposals(),
