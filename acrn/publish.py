"""Publish a checkpoint as MMAction2's ``tools/publish_model.py`` does:
``python -m acrn.publish (--run WORKDIR/final.json | --checkpoint IN) --name CONFIG_NAME --out-dir DIR``.

- ``--run``: the checkpoint MMAction2 publishes for a training, the best epoch's
  (``best_<train.best_by>_epoch_<e>.pth``, mmcv's EvalHook choice; ``final.json`` of ``acrn.train``
  names it), or the last one when the run did not validate. The last epoch's stays in the work
  directory.
- Keeps only ``state_dict`` (tensors on the CPU) and ``meta`` (minus the run's RNG and config
noise: ``experiment`` is kept so the file says what produced it); drops the optimizer,
scheduler, sampler and RNG states.
- The file is named ``<name>-<first 8 hex of its sha256>.pth``
(what ``acrn.models`` verifies on load) and written atomically: the bytes are hashed in memory
and written once under the final name.
- ``<file>.sha256`` (``sha256sum -c`` format) and
``<name>.json`` (file name, full sha256, size, source) record the checksum. Prints the path.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import sys
from collections import OrderedDict
from pathlib import Path

import torch

from acrn.checkpoint import model_state, published_name, torch_load
from acrn.fsutil import atomic_write, make_read_only

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_KEEP_META = (
    "experiment",
    "epoch",
    "iteration",
    "world_size",
    "recipe_gpus",
    "processes_seen",
    "global_batch",
    "tf32",
    "time",
    "acrn",
)


def selected_checkpoint(final_json: str | Path) -> tuple[Path, str]:
    """The checkpoint to publish of a training (``acrn.train``'s ``final.json``): the best
    epoch's when it validated, else the last; and which one it is ("best" or "last")."""
    try:
        run = json.loads(Path(final_json).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{final_json}: not a readable final.json of acrn.train ({e})") from None
    if run.get("best_checkpoint"):
        return Path(run["best_checkpoint"]), "best"
    if "checkpoint" not in run:
        raise ValueError(f"{final_json}: names no checkpoint")
    return Path(run["checkpoint"]), "last"


def publish(
    checkpoint: str | Path, name: str, out_dir: str | Path, selected: str = "given"
) -> dict:
    if not _NAME.match(name) or name.endswith(".pth"):
        raise ValueError(f"--name {name!r}: use letters, digits and ._+- only, without .pth")
    checkpoint = Path(checkpoint)
    ckpt = torch_load(checkpoint)
    state = model_state(ckpt, str(checkpoint))
    meta = {k: v for k, v in (ckpt.get("meta") or {}).items() if k in _KEEP_META}
    payload = {
        "meta": meta,
        "state_dict": OrderedDict((k, v.detach().cpu().contiguous()) for k, v in state.items()),
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    out_dir = Path(out_dir)
    final = out_dir / published_name(name, digest)
    with atomic_write(final, "wb") as f:
        f.write(data)
    make_read_only(final)
    with atomic_write(final.with_name(final.name + ".sha256")) as f:
        f.write(f"{digest}  {final.name}\n")
    record = {
        "name": name,
        "file": final.name,
        "sha256": digest,
        "bytes": len(data),
        "tensors": len(state),
        "source": str(checkpoint),
        "iteration": meta.get("iteration"),
        "epoch": meta.get("epoch"),
        "selected": selected,
    }
    with atomic_write(out_dir / f"{name}.json") as f:
        json.dump(record, f, indent=1)
    record["path"] = str(final)
    return record


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m acrn.publish", description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="final.json of acrn.train: publish its best (else last) epoch")
    src.add_argument("--checkpoint", help="training or published checkpoint")
    ap.add_argument("--name", required=True, help="config name, e.g. slowfast_acrn_..._ava_rgb")
    ap.add_argument("--out-dir", required=True)
    args = ap.parse_args(argv)
    try:
        checkpoint, which = (
            selected_checkpoint(args.run) if args.run else (Path(args.checkpoint), "given")
        )
        rec = publish(checkpoint, args.name, args.out_dir, which)
    except (ValueError, FileNotFoundError) as e:  # CheckpointError is a ValueError
        print(f"acrn.publish: error: {e}", file=sys.stderr)
        return 1
    print(rec["path"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
