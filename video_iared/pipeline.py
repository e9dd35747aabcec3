"""Running a chain of commands as resumable steps (``make demo``, ``make frontier``): each step is the
command a user would type, printed before it runs, its output streamed to the terminal and a log, and
skipped on a rerun once the file it writes exists. (A *step* is one shell command; a training *stage*
is one of the paper's three, ``iared.stage``.)"""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Step", "cli", "data_prep", "output_folder", "run_step", "run_steps"]


@dataclass
class Step:
    name: str
    argv: list[str]
    done_when: Path  # the step is skipped when this file exists
    seconds: float = field(default=0.0)
    skipped: bool = False


def cli(*args: str) -> list[str]:
    """``video-iared ARGS`` with this interpreter (the venv's, whatever PATH says)."""
    return [sys.executable, "-m", "video_iared.cli", *args]


def data_prep(script: str, *args: str) -> list[str]:
    """``python -m video_iared.data_prep.SCRIPT ARGS`` (``data_prep/SCRIPT.py`` of the checkout, shipped in
    the package) with this interpreter."""
    return [sys.executable, "-m", f"video_iared.data_prep.{script}", *args]


def run_step(step: Step, log_dir: Path, rerun_hint: str) -> None:
    """Run one step, streaming its output to the terminal and to ``log_dir/<name>.log``."""
    if step.done_when.exists():
        step.skipped = True
        print(f"==> {step.name}: done already ({step.done_when}), skipped", flush=True)
        return
    print(f"==> {step.name}\n    $ {' '.join(step.argv)}", flush=True)
    log = log_dir / (step.name.split(" (")[0].replace(" ", "_").replace("/", "_") + ".log")
    start = time.perf_counter()
    with log.open("w") as sink:
        proc = subprocess.Popen(step.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sink.write(line)
        code = proc.wait()
    step.seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"step '{step.name}' failed (exit {code}); its log: {log}. "
                         f"Fix the cause and rerun `{rerun_hint}`: finished steps are skipped.")
    print(f"    {step.name}: {step.seconds:.0f} s", flush=True)


def output_folder(path: str | Path, fresh: bool) -> Path:
    """The run's folder (emptied first when ``fresh``), with ``logs/`` for the steps' output."""
    out = Path(path).resolve()
    if fresh and out.exists():
        shutil.rmtree(out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    return out


def run_steps(steps: list[Step], out: Path, rerun_hint: str) -> float:
    """Run ``steps`` in order (skipping finished ones); returns the seconds they took."""
    start = time.perf_counter()
    for step in steps:
        run_step(step, out / "logs", rerun_hint)
    return time.perf_counter() - start
