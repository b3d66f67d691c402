# Frames: one ffmpeg job per video, shared by AVA v2.1 and v2.2 (extracted once). They wait for
# the whole video set (ancient: the marker's time never re-runs them), so that on Slurm they go
# as one job array (profile: slurm-array-jobs).


rule extract_frames:
    input:
        video=lambda w: L.video(NAME_OF[w.vid]),
        all_videos=ancient(f"{RES}/videos.complete"),
    output:
        directory(L.frames("{vid}")),
    log:
        f"{LOGS}/frames/{{vid}}.log",
    benchmark:
        f"{BENCH}/frames/{{vid}}.tsv"
    conda:
        ENV
    threads: threads_of("frames")
    resources:
        **resources_of("frames"),
    params:
        args=frames_args(),
    shell:
        "python -m acrn.frames --video {input.video:q} --out {output:q} {params.args} > {log} 2>&1"


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
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        **resources_of("default"),
    params:
        missing=lambda w: missing_inputs(target_frames()),  # a purged video is extracted again
        title=f"Frames of the {DATASET} videos",
    shell:
        "python -m acrn.frames report --out {output:q} --title {params.title:q} {input:q}"
        " > {log} 2>&1"


rule frames:
    input:
        target_frames(),
        FRAMES_REPORT,
