"""Who am I in the job: distributed setup read from the environment (torchrun, submitit/SLURM, none).

The engine's only module that reads a job's environment (``launch/`` submits and requeues jobs; this
module answers rank, world size and rendezvous). torchrun exports RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT; a submitit task (SLURM or its local executor) describes itself through submitit's
``JobEnvironment``, and the rendezvous is the job's first host on a port derived from the job id, so
every task of a job (and of its requeues) agrees without any file. A partly set environment is an
error that names what is missing, never a silent single-process run.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.distributed as dist

from video_iared.config import ConfigError

__all__ = ["DistEnv", "DistributedSetupError", "TORCHRUN_VARS", "detect", "resolve_device", "setup",
           "teardown", "all_reduce_mean", "all_gather_objects", "barrier"]

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class DistributedSetupError(RuntimeError):
    """The environment describes a distributed job only in part."""


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    source: str = "none"  # torchrun | submitit | none

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _from_torchrun(environ: Mapping[str, str]) -> DistEnv:
    missing = [name for name in TORCHRUN_VARS if name not in environ]
    if missing:
        present = [name for name in TORCHRUN_VARS if name in environ]
        raise DistributedSetupError(
            f"torchrun-style environment is partly set ({', '.join(present)}) but "
            f"{', '.join(missing)} missing; launch with torchrun or unset them for a single process")
    try:
        env = DistEnv(rank=int(environ["RANK"]), world_size=int(environ["WORLD_SIZE"]),
                      local_rank=int(environ["LOCAL_RANK"]), master_addr=environ["MASTER_ADDR"],
                      master_port=int(environ["MASTER_PORT"]), source="torchrun")
    except ValueError as err:
        raise DistributedSetupError(f"torchrun environment has a non-integer value: {err}") from err
    if not 0 <= env.rank < env.world_size:
        raise DistributedSetupError(f"RANK={env.rank} is outside WORLD_SIZE={env.world_size}")
    return env


def _from_submitit() -> DistEnv:
    """A submitit task (SLURM or local executor), read by submitit's ``TorchDistributedEnvironment``: the
    job's first host, and a port seeded by the job id (the same on every task and every requeue)."""
    from submitit.helpers import TorchDistributedEnvironment

    try:
        env = TorchDistributedEnvironment()
        return DistEnv(rank=env.rank, world_size=env.world_size, local_rank=env.local_rank,
                       master_addr=env.master_addr, master_port=env.master_port, source="submitit")
    except (KeyError, ValueError) as err:
        raise DistributedSetupError(
            f"SUBMITIT_EXECUTOR is set but the job environment is incomplete ({err!r}); "
            "run under submitit or unset SUBMITIT_EXECUTOR") from err


def detect(environ: Mapping[str, str] | None = None) -> DistEnv:
    """torchrun variables first, then a submitit task, else a single process (not one of a bare
    multi-task ``srun``)."""
    environ = os.environ if environ is None else environ
    if any(name in environ for name in TORCHRUN_VARS):
        return _from_torchrun(environ)
    if environ.get("SUBMITIT_EXECUTOR"):
        return _from_submitit()
    if int(environ.get("SLURM_STEP_NUM_TASKS", "1")) > 1:
        raise DistributedSetupError(
            f"srun started {environ['SLURM_STEP_NUM_TASKS']} tasks without submitit or torchrun: each would "
            "train alone into the same output_dir; submit with slurm/submit.py (or torchrun, one task per "
            "node)")
    return DistEnv()


def resolve_device(name: str) -> torch.device:
    """``run.device``: ``auto`` is CUDA when available, else CPU."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("run.device=cuda but no CUDA device is visible")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def setup(env: DistEnv, device: torch.device) -> None:
    """Join the process group (nccl on CUDA, gloo on CPU) and pin this process's GPU; a group the
    caller already set up is used as it is."""
    if device.type == "cuda":
        torch.cuda.set_device(env.local_rank)
    if not env.distributed or dist.is_initialized():
        return
    dist.init_process_group(
        backend="nccl" if device.type == "cuda" else "gloo",
        init_method=f"tcp://{env.master_addr}:{env.master_port}",
        rank=env.rank, world_size=env.world_size, timeout=datetime.timedelta(minutes=30))


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over all processes (a copy; identity on one process)."""
    out = tensor.detach().clone()
    if _active():
        dist.all_reduce(out)
        out /= dist.get_world_size()
    return out


def all_gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order (``[obj]`` on one process)."""
    if not _active():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier() -> None:
    if _active():
        dist.barrier()
