# Frames: one ffmpeg job per video, shared by AVA v2.1 and v2.2 (extracted once).


rule extract_frames:
    input:
        lambda w: video(NAME_OF[w.vid]),
    output:
        directory(f"{RES}/frames/{{vid}}"),
    log:
        f"{LOGS}/frames/{{vid}}.log",
    benchmark:
        f"{BENCH}/frames/{{vid}}.tsv"
    conda:
        "../../envs/acrn.yaml"
    threads: res("frames", "threads")
    resources:
        mem_mb=res("frames", "mem_mb"),
        runtime=res("frames", "runtime"),
    params:
        args=frames_args(),
    shell:
        "python -m acrn.frames --video {input:q} --out {output:q} {params.args} > {log} 2>&1"


rule frames_report:
    # every video's source fps, size, streams, frame count and decoder messages (damaged
    # packets first); the results table links to it
    input:
        target_frames(),
    output:
        FRAMES_REPORT,
    log:
        f"{LOGS}/frames/report.log",
    benchmark:
        f"{BENCH}/frames/report.tsv"
    conda:
        "../../envs/acrn.yaml"
    threads: 1
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
    params:
        title=f"Frames of the {DATASET} videos",
    shell:
        "python -m acrn.frames report --out {output:q} --title {params.title:q} {input:q}"
        " > {log} 2>&1"


rule frames:
    input:
        target_frames(),
        FRAMES_REPORT,
