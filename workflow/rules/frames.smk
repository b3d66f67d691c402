# Frames: one ffmpeg job per video, shared by AVA v2.1 and v2.2 (extracted once). The videos
# of a split wait for that split's downloads (ancient: the marker's time never re-runs them),
# so that on Slurm they go as one job array per split, and the val videos (all that
# `snakemake released` needs) start before the train videos are downloaded.
# frames.layout zip: the outputs are the video's frames.zip and extract.json (a zip moved
# aside as damaged by the loader is a missing output: the next run extracts the video again).


rule extract_frames:
    input:
        video=lambda w: L.video(NAME_OF[w.vid]),
        split_videos=lambda w: ancient(L.videos_complete(SPLIT_OF[w.vid])),
    output:
        (
            [f"{L.frames('{vid}')}/frames.zip", f"{L.frames('{vid}')}/extract.json"]
            if config["frames"]["layout"] == "zip"
            else directory(L.frames("{vid}"))
        ),
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
        out=lambda w: L.frames(w.vid),
        args=frames_args(),
    shell:
        "python -m acrn.frames --video {input.video:q} --out {params.out:q} {params.args}"
        " > {log} 2>&1"


rule frames_report:
    # every video's source fps, size, streams, frame count and decoder messages (damaged
    # packets first); the results table links to it (the released table to the val videos')
    input:
        lambda w: target_frames("val" if w.report.endswith("_val") else None),
    output:
        f"{OUT}/{{report}}.md",
    log:
        f"{LOGS}/frames/{{report}}.log",
    benchmark:
        f"{BENCH}/frames/{{report}}.tsv"
    wildcard_constraints:
        report="frames_report|frames_report_val",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        **resources_of("default"),
    params:
        # a purged video is extracted again
        missing=lambda w: missing_inputs(
            target_frames("val" if w.report.endswith("_val") else None),
            f"{OUT}/{w.report}.md",
        ),
        title=lambda w: f"Frames of the {DATASET}{' val' if w.report.endswith('_val') else ''} videos",
        folders=lambda w: frame_folders("val" if w.report.endswith("_val") else None),
    shell:
        "python -m acrn.frames report --out {output:q} --title {params.title:q} {params.folders:q}"
        " > {log} 2>&1"


rule frames:
    input:
        target_frames(),
        FRAMES_REPORT,
