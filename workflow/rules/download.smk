# Downloads: verified (sha256, SHA256SUMS or the 8-hex prefix in the name; length), atomic,
# resumable (HTTP Range), retried with back-off; a 404 fails at once naming the URL.


rule download_file_list:
    input:
        mirror_input(),
        shipped=config["file_list"]["shipped"],
    output:
        FILE_LIST,
    log:
        f"{LOGS}/download/file_list.log",
    benchmark:
        f"{BENCH}/download/file_list.tsv"
    conda:
        "../../envs/acrn.yaml"
    threads: 1
    resources:
        mem_mb=res("download", "mem_mb"),
        runtime=res("download", "runtime"),
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
        file_list=FILE_LIST,
    output:
        protected(f"{RES}/videos/{{name}}"),
    log:
        f"{LOGS}/download/videos/{{name}}.log",
    benchmark:
        f"{BENCH}/download/videos/{{name}}.tsv"
    conda:
        "../../envs/acrn.yaml"
    threads: 1
    resources:
        mem_mb=res("download", "mem_mb"),
        runtime=res("download", "runtime"),
    params:
        url=lambda w: config["sources"]["videos"]["url"].format(name=w.name),
        sha=sums_arg(),
    shell:
        "python -m acrn.download fetch {params.url:q} {output:q} {params.sha} > {log} 2>&1"


rule download_annotations:
    input:
        mirror_input(),
    output:
        f"{RES}/annotations/ava_v{{version}}.zip",
    log:
        f"{LOGS}/download/annotations_v{{version}}.log",
    benchmark:
        f"{BENCH}/download/annotations_v{{version}}.tsv"
    conda:
        "../../envs/acrn.yaml"
    threads: 1
    resources:
        mem_mb=res("download", "mem_mb"),
        runtime=res("download", "runtime"),
    params:
        url=lambda w: config["sources"]["annotations"][w.version]["url"],
        sha=lambda w: sha_arg(config["sources"]["annotations"][w.version]),
    shell:
        "python -m acrn.download fetch {params.url:q} {output:q} {params.sha} > {log} 2>&1"


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
    conda:
        "../../envs/acrn.yaml"
    threads: 1
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
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


rule download_proposals:
    input:
        mirror_input(),
    output:
        f"{RES}/proposals/ava_dense_proposals_{{split}}.pkl",
    log:
        f"{LOGS}/download/proposals_{{split}}.log",
    benchmark:
        f"{BENCH}/download/proposals_{{split}}.tsv"
    conda:
        "../../envs/acrn.yaml"
    threads: 1
    resources:
        mem_mb=res("download", "mem_mb"),
        runtime=res("download", "runtime"),
    params:
        url=lambda w: config["sources"]["proposals"][w.split]["url"],
        sha=lambda w: sha_arg(config["sources"]["proposals"][w.split]),
    shell:
        "python -m acrn.download fetch {params.url:q} {output:q} {params.sha} > {log} 2>&1"


rule download_kinetics:
    # the sha256 prefix in MMAction2's file name (-73547d2b) is checked
    input:
        mirror_input(),
    output:
        protected(KINETICS),
    log:
        f"{LOGS}/download/kinetics.log",
    benchmark:
        f"{BENCH}/download/kinetics.tsv"
    conda:
        "../../envs/acrn.yaml"
    threads: 1
    resources:
        mem_mb=res("download", "mem_mb"),
        runtime=res("download", "runtime"),
    params:
        url=config["sources"]["kinetics"]["url"],
        sha=sha_arg(config["sources"]["kinetics"]),
    shell:
        "python -m acrn.download fetch {params.url:q} {output:q} {params.sha} > {log} 2>&1"


if config["sources"]["released"] is not None:

    rule download_released:
        # MMAction2's released ACRN checkpoints (sha256 prefix in the name checked)
        output:
            protected(f"{RES}/released/v{{version}}.pth"),
        log:
            f"{LOGS}/download/released_v{{version}}.log",
        benchmark:
            f"{BENCH}/download/released_v{{version}}.tsv"
        conda:
            "../../envs/acrn.yaml"
        threads: 1
        resources:
            mem_mb=res("download", "mem_mb"),
            runtime=res("download", "runtime"),
        params:
            url=lambda w: config["sources"]["released"][w.version]["url"],
            sha=lambda w: sha_arg(config["sources"]["released"][w.version]),
        shell:
            "python -m acrn.download fetch {params.url:q} {output:q} {params.sha} > {log} 2>&1"


rule download:
    input:
        target_download(),
