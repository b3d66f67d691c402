# Proposal preparation per version and split, with a stats file (boxes per keyframe, recall of
# the ground truth at IoU 0.5).


rule prepare_proposals:
    input:
        proposals=L.raw_proposals("{split}"),
        annotations=lambda w: L.annotation(w.version, w.split),
        exclusions=lambda w: L.annotation(w.version, f"exclude_{w.split}"),
        code="acrn/proposals.py",
    output:
        pkl=L.proposals("{version}", "{split}"),
        stats=f"{OUT}/ours/v{{version}}/proposals/{{split}}_stats.json",
    log:
        f"{LOGS}/proposals/v{{version}}_{{split}}.log",
    benchmark:
        f"{BENCH}/proposals/v{{version}}_{{split}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **resources_of("default"),
    params:
        thr=lambda w: EXPERIMENTS[w.version].data.person_det_score_thr,
    shell:
        "python -m acrn.proposals --proposals {input.proposals:q} --annotations {input.annotations:q}"
        " --exclusions {input.exclusions:q} --split {wildcards.split} --score-thr {params.thr}"
        " --out {output.pkl:q} --stats {output.stats:q} > {log} 2>&1"


rule proposals:
    input:
        target_proposals(),
