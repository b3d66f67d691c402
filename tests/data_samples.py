"""The real MMAction2 sample files of ``tests/data/ava-reference`` as DataConfig paths."""

from __future__ import annotations

from pathlib import Path

REF = Path(__file__).parent / "data" / "ava-reference"
SAMPLE_CSV = REF / "sample_ava_sample.csv"
SAMPLE_EXCL = REF / "sample_ava_excluded_timestamps_sample.csv"
SAMPLE_PROPS = REF / "sample_ava_proposals_sample.pkl"


def sample_paths(frame_root: Path, exclusions: bool = True) -> dict[str, str | None]:
    """DataConfig path fields: the sample annotations/proposals for both splits."""
    excl = str(SAMPLE_EXCL) if exclusions else None
    return dict(
        frame_root=str(frame_root),
        train_annotations=str(SAMPLE_CSV),
        val_annotations=str(SAMPLE_CSV),
        train_exclusions=excl,
        val_exclusions=excl,
        train_proposals=str(SAMPLE_PROPS),
        val_proposals=str(SAMPLE_PROPS),
    )
