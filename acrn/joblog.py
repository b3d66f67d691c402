"""Why a job failed, in one line: the decisive line of its log, for the terminal.

``decisive_line(text)``: our CLIs' ``acrn.<module>: error: ...`` line, else the last exception
line that is not a wrapper (torchrun's ``ChildFailedError``, ``CalledProcessError``, a
DataLoader's "Caught X in DataLoader worker"), else the last line mentioning an error, else the
last line. ``failed_jobs(snakemake_log)``: (rule, log files) of every "Error in rule" block.
``summary(snakemake_logs)``: what the workflow's ``onerror`` prints.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_OURS = re.compile(r"^acrn\.[\w.]+: error: (.+)$")
_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit)): (.+)$")
_WRAPPERS = ("ChildFailedError", "CalledProcessError", "RuleException", "WorkflowError")
_ERROR_BLOCK = re.compile(r"^Error in rule (\S+?):\s*$")
_LOG_LINE = re.compile(r"^\s+log: (.+?) \(check log file")


def _wrapper(message: str) -> bool:
    return message.startswith("Caught ") and " in DataLoader worker" in message


def decisive_line(text: str) -> str:
    lines = [ln.rstrip() for ln in text.splitlines()]
    ours = [m.group(1) for ln in lines if (m := _OURS.match(ln)) and not _wrapper(m.group(1))]
    if ours:
        return ours[-1]
    exceptions = [
        f"{m.group(1).rsplit('.', 1)[-1]}: {m.group(2)}"
        for ln in lines
        if (m := _EXCEPTION.match(ln))
        and not m.group(1).endswith(_WRAPPERS)
        and not _wrapper(m.group(2))
    ]
    if exceptions:
        return exceptions[-1]
    errors = [ln.strip() for ln in lines if "error" in ln.lower() and ln.strip()]
    if errors:
        return errors[-1]
    rest = [ln.strip() for ln in lines if ln.strip()]
    return rest[-1] if rest else "(empty log)"


def failed_jobs(snakemake_log: str) -> list[tuple[str, list[str]]]:
    """(rule, log files) of each "Error in rule" block, in order, without repeats."""
    out: list[tuple[str, list[str]]] = []
    rule = None
    for line in snakemake_log.splitlines():
        if m := _ERROR_BLOCK.match(line):
            rule = m.group(1)
        elif rule and (m := _LOG_LINE.match(line)):
            entry = (rule, [p.strip() for p in m.group(1).split(",")])
            if entry not in out:
                out.append(entry)
            rule = None
    return out


def summary(snakemake_logs: list[str]) -> str:
    """The decisive line of every failed job's log named in Snakemake's own log(s)."""
    blocks = []
    for path in snakemake_logs:
        try:
            text = Path(path).read_text(errors="replace")
        except OSError:
            continue
        for rule, logs in failed_jobs(text):
            for log in logs:
                try:
                    line = decisive_line(Path(log).read_text(errors="replace"))
                except OSError:
                    line = "(no log written)"
                entry = f"  {rule}: {line}\n      log: {log}\n"
                if entry not in blocks:
                    blocks.append(entry)
    if not blocks:
        return ""
    return "Why the job(s) failed (the decisive line of each log):\n" + "".join(blocks)


def main(argv: list[str] | None = None) -> int:
    """``python -m acrn.joblog LOG...``: the decisive line of each job log."""
    for path in argv if argv is not None else sys.argv[1:]:
        print(f"{path}: {decisive_line(Path(path).read_text(errors='replace'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
