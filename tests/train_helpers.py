"""Helpers for the engine tests: run python / torchrun subprocesses, generate synthetic video sets."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_python(args: list[str], *, threads: int = 2, check: bool = True,
               timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` from the repository root with this interpreter."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads)}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SUBMITIT_EXECUTOR"):
        env.pop(name, None)
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"python {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc


def torchrun_args(nproc: int) -> list[str]:
    """``python -m torch.distributed.run`` on a free local port, no restarts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return ["-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--max_restarts=0",
            "--master_addr=127.0.0.1", f"--master_port={port}"]


def make_synthetic(root: Path, *, num_train: int, num_val: int, size: int = 32, frames: int = 32) -> Path:
    run_python(["data_prep/make_synthetic.py", str(root), f"--num-train={num_train}", f"--num-val={num_val}",
                f"--size={size}", f"--frames={frames}", "--workers=2"])
    return root
