# Downloads: verified (sha256, SHA256SUMS or the 8-hex prefix in the name; length), atomic,
# resumable (HTTP Range), retried with back-off; a 404 fails at once naming the URL.
# They run on the submitting host (compute nodes often have no internet) unless config
# cluster.downloads_on_cluster is true; see NETWORK_RULES in common.smk.
FETCH = (
    "python -m acrn.download fetch {params.url:q} {output:q} {params.sha} > {log} 2>&1"
)


rule download_file_list:
    input:
        mirror_input(),
        shipped=config["file_list"]["shipped"],
    output:
        L.file_list,
    log:
        f"{LOGS}/download/file_list.log",
    benchmark:
        f"{BENCH}/download/file_list.tsv"
    localrule: NETWORK_LOCAL
    conda:
        ENV
    threads: 1
    resources:
        **resources_of("download"),
    params:
        url=config["file_list"]["source"]["url"],
        sha=sha_arg(config["file_list"]["source"]),
    shell:
        # the DAG was built from the shipped list: the remote one must name the same videos
        "(python -m acrn.download fetch {params.url:q} {output:q} {params.sha}"
        " && python -m acrn.download same-names {output:q} {input.shipped:q}"
        " || {{ rm -f {output:q}; exit 1; }}"
        ") > {log} 2>&1"


rule download_video:
    input:
        mirror_input(),
        file_list=ancient(L.file_list),
    output:
        protected(L.video("{name}")),
    log:
        f"{LOGS}/download/videos/{{name}}.log",
    benchmark:
        f"{BENCH}/download/videos/{{name}}.tsv"
    localrule: NETWORK_LOCAL
    conda:
        ENV
    threads: 1
    resources:
        **resources_of("download"),
    params:
        url=lambda w: config["sources"]["videos"]["url"].format(name=w.name),
        sha=sha_arg(),
    shell:
        FETCH


rule videos_complete:
    # every video of a split is here: its frame extractions start together, as one Slurm job
    # array per split (val first possible: `released` needs no train video)
    input:
        lambda w: [L.video(n) for n in videos_of(w.split)],
    output:
        touch(L.videos_complete("{split}")),
    log:
        f"{LOGS}/download/videos_complete_{{split}}.log",
    benchmark:
        f"{BENCH}/download/videos_complete_{{split}}.tsv"
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        **resources_of("default"),
    params:
        n=lambda w: len(videos_of(w.split)),
    shell:
        "echo {params.n} {wildcards.split} videos present > {log}"


rule download_annotations:
    input:
        mirror_input(),
    output:
        f"{RES}/annotations/ava_v{{version}}.zip",
    log:
        f"{LOGS}/download/annotations_v{{version}}.log",
    benchmark:
        f"{BENCH}/download/annotations_v{{version}}.tsv"
    localrule: NETWORK_LOCAL
    conda:
        ENV
    threads: 1
    resources:
        **resources_of("download"),
    params:
        url=lambda w: config["sources"]["annotations"][w.version]["url"],
        sha=lambda w: sha_arg(config["sources"]["annotations"][w.version]),
    shell:
        FETCH


rule unpack_annotation:
    # one member per job: only the files the run needs leave the zip
    input:
        f"{RES}/annotations/ava_v{{version}}.zip",
    output:
        f"{RES}/annotations/v{{version}}/{{member}}",
    log:
        f"{LOGS}/download/unpack_v{{version}}_{{member}}.log",
    benchmark:
        f"{BENCH}/download/unpack_v{{version}}_{{member}}.tsv"
    wildcard_constraints:
        member=r"[^/]+\.(csv|pbtxt|txt)",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        **resources_of("default"),
    params:
        outdir=lambda w: f"{RES}/annotations/v{w.version}",
        # config `pins`: the member's expected sha256
        pin=lambda w: (
            f"--pin {w.member}={config['pins'][w.member]}"
            if w.member in config["pins"]
            else ""
        ),
    shell:
        "python -m acrn.download extract {input:q} {wildcards.member:q}"
        " --out {params.outdir:q} {params.pin} > {log} 2>&1"


rule check_val_ids:
    # the shipped val ids (config val_videos; the val-only jobs were planned from them) must be
    # the videos of the version's val CSV: a difference fails, naming the ids
    input:
        annotations=lambda w: L.annotation(w.version, "val"),
        ids=config["val_videos"]["shipped"],
    output:
        L.val_ids_checked("{version}"),
    log:
        f"{LOGS}/download/check_val_ids_v{{version}}.log",
    benchmark:
        f"{BENCH}/download/check_val_ids_v{{version}}.tsv"
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        **resources_of("default"),
    shell:
        "python -m acrn.download same-ids {input.annotations:q} {input.ids:q} --out {output:q}"
        " > {log} 2>&1"


rule download_proposals:
    input:
        mirror_input(),
    output:
        L.raw_proposals("{split}"),
    log:
        f"{LOGS}/download/proposals_{{split}}.log",
    benchmark:
        f"{BENCH}/download/proposals_{{split}}.tsv"
    localrule: NETWORK_LOCAL
    conda:
        ENV
    threads: 1
    resources:
        **resources_of("download"),
    params:
        url=lambda w: config["sources"]["proposals"][w.split]["url"],
        sha=lambda w: sha_arg(config["sources"]["proposals"][w.split]),
    shell:
        FETCH


rule download_kinetics:
    # the sha256 prefix in MMAction2's file name (-73547d2b) is checked
    input:
        mirror_input(),
    output:
        protected(L.kinetics),
    log:
        f"{LOGS}/download/kinetics.log",
    benchmark:
        f"{BENCH}/download/kinetics.tsv"
    localrule: NETWORK_LOCAL
    conda:
        ENV
    threads: 1
    resources:
        **resources_of("download"),
    params:
        url=config["sources"]["kinetics"]["url"],
        sha=sha_arg(config["sources"]["kinetics"]),
    shell:
        FETCH


if config["sources"]["released"] is not None:

    rule download_released:
        # MMAction2's released ACRN checkpoints (sha256 prefix in the name checked)
        output:
            protected(L.released("{version}")),
        log:
            f"{LOGS}/download/released_v{{version}}.log",
        benchmark:
            f"{BENCH}/download/released_v{{version}}.tsv"
        localrule: NETWORK_LOCAL
        conda:
            ENV
        threads: 1
        resources:
            **resources_of("download"),
        params:
            url=lambda w: config["sources"]["released"][w.version]["url"],
            sha=lambda w: sha_arg(config["sources"]["released"][w.version]),
        shell:
            FETCH


if config["sources"]["reference_logs"] is not None:

    rule download_reference_log:
        # MMAction2's own training log of the released model (JSON or text); not a training input
        output:
            f"{RES}/reference_logs/v{{version}}.{{ext}}",
        log:
            f"{LOGS}/download/reference_log_v{{version}}.{{ext}}.log",
        benchmark:
            f"{BENCH}/download/reference_log_v{{version}}.{{ext}}.tsv"
        wildcard_constraints:
            ext=r"log\.json|log",
        localrule: NETWORK_LOCAL
        conda:
            ENV
        threads: 1
        resources:
            **resources_of("download"),
        params:
            url=lambda w: reference_log_source(w)["url"],
            sha=lambda w: sha_arg(reference_log_source(w)),
        shell:
            FETCH


rule download:
    input:
        target_download(),
