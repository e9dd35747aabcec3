"""Running a chain of commands as resumable stages (``make demo``, ``make frontier``): each stage is the
command a user would type, printed before it runs, its output streamed to the terminal and a log, and
skipped on a rerun once the file it writes exists."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["REPO", "Stage", "cli", "output_folder", "run_stage", "run_stages"]

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Stage:
    name: str
    argv: list[str]
    done_when: Path  # the stage is skipped when this file exists
    seconds: float = field(default=0.0)
    skipped: bool = False


def cli(*args: str) -> list[str]:
    """``video-iared ARGS`` with this interpreter (the venv's, whatever PATH says)."""
    return [sys.executable, "-m", "video_iared.cli", *args]


def run_stage(stage: Stage, log_dir: Path, rerun_hint: str) -> None:
    """Run one stage, streaming its output to the terminal and to ``log_dir/<name>.log``."""
    if stage.done_when.exists():
        stage.skipped = True
        print(f"==> {stage.name}: done already ({stage.done_when}), skipped", flush=True)
        return
    print(f"==> {stage.name}\n    $ {' '.join(stage.argv)}", flush=True)
    log = log_dir / (stage.name.split(" (")[0].replace(" ", "_").replace("/", "_") + ".log")
    start = time.perf_counter()
    with log.open("w") as sink:
        proc = subprocess.Popen(stage.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                cwd=REPO)
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sink.write(line)
        code = proc.wait()
    stage.seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"stage '{stage.name}' failed (exit {code}); its log: {log}. "
                         f"Fix the cause and rerun `{rerun_hint}`: finished stages are skipped.")
    print(f"    {stage.name}: {stage.seconds:.0f} s", flush=True)


def output_folder(path: str | Path, fresh: bool) -> Path:
    """The run's folder (emptied first when ``fresh``), with ``logs/`` for the stages' output."""
    out = Path(path).resolve()
    if fresh and out.exists():
        shutil.rmtree(out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    return out


def run_stages(stages: list[Stage], out: Path, rerun_hint: str) -> float:
    """Run ``stages`` in order (skipping finished ones); returns the seconds they took."""
    start = time.perf_counter()
    for stage in stages:
        run_stage(stage, out / "logs", rerun_hint)
    return time.perf_counter() - start
