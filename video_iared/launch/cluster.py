"""The one submitit path of the cluster jobs: training (``slurm/submit.py``) and data_prep shard arrays.

Each job runs an entry function unchanged (``engine.train.train(cfg)``, a data_prep script's
per-shard function) inside :class:`Resumable`, a submitit ``Checkpointable``. Preemption and time
limits need no state of their own here, because every entry resumes from what it already wrote:

- ``USR2`` (sent ``signal_delay_s`` before the time limit, or by ``scancel --signal=USR2``): submitit
  calls ``checkpoint()`` on rank 0, which requeues the same call. Nothing is saved in the signal
  handler: it can interrupt the engine between ``optimizer.step()`` and the step counter, and the other
  ranks never see it. The requeued job starts from the engine's latest atomic step checkpoint, so it
  loses at most one checkpoint interval and replays it exactly.
- ``scontrol requeue`` or a node failure (jobs are submitted with ``--requeue``): no ``checkpoint()``
  call; the rerun resumes the same way.

Both count against ``max_requeues`` through SLURM's ``SLURM_RESTART_COUNT``. Rendezvous (first
node's hostname, a port derived from the job id) is read by ``engine.distributed`` from the job's
environment, so the same entry also runs under torchrun or alone.
"""
from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import submitit
from submitit.core.utils import DelayedSubmission

R = TypeVar("R")


class LaunchError(ValueError):
    """Cluster options that do not fit together."""


class RequeueLimitError(RuntimeError):
    """A job was requeued more often than ``max_requeues`` allows."""


def requeue_count() -> int:
    """How many times SLURM has requeued the current job (0 outside SLURM)."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0"))


class Resumable(submitit.helpers.Checkpointable, Generic[R]):
    """Runs ``fn(*args)``; on preemption or timeout, submitit requeues this same call.

    ``fn`` must resume from what it already wrote (the engine's step checkpoints, the finished
    outputs of a data_prep shard) - this wrapper holds no state of its own.
    """

    def __init__(self, fn: Callable[..., R], max_requeues: int) -> None:
        self.fn = fn
        self.max_requeues = max_requeues

    def __call__(self, *args: Any) -> R:
        if requeue_count() > self.max_requeues:
            raise RequeueLimitError(
                f"job was requeued {requeue_count()} times, more than max_requeues={self.max_requeues}; "
                "submit it again to continue from its latest checkpoint")
        return self.fn(*args)

    def checkpoint(self, *args: Any) -> DelayedSubmission | None:
        """Requeue the same call (None, which makes submitit stop, once the requeue budget is spent)."""
        if requeue_count() >= self.max_requeues:
            return None
        return DelayedSubmission(self, *args)


@dataclass(frozen=True)
class ClusterOptions:
    """Where and how big a job is; ``local`` runs it with submitit's local executor, without SLURM."""

    nodes: int = 1
    gpus_per_node: int = 0
    tasks_per_node: int | None = None  # None: one per GPU, or 1 on CPU
    cpus_per_task: int | None = None
    mem_per_gpu_gb: float | None = None
    partition: str | None = None
    time_min: int = 60
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    max_requeues: int = 3
    local: bool = False
    name: str = "video_iared"

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.gpus_per_node < 0 or self.time_min < 1 or self.max_requeues < 0:
            raise LaunchError("nodes and time must be >= 1, gpus_per_node and max_requeues >= 0")
        if self.gpus_per_node and self.tasks_per_node not in (None, self.gpus_per_node):
            raise LaunchError(f"training runs one task per GPU: tasks_per_node={self.tasks_per_node} "
                              f"with gpus_per_node={self.gpus_per_node}; leave tasks_per_node unset")
        if self.mem_per_gpu_gb is not None and not self.gpus_per_node:
            raise LaunchError("mem_per_gpu_gb needs gpus_per_node > 0")
        if self.local and self.nodes > 1:
            raise LaunchError("the local executor runs on one node; use nodes=1 with local")

    @property
    def tasks(self) -> int:
        """Tasks per node: one per GPU, else ``tasks_per_node`` (default 1)."""
        return self.gpus_per_node or self.tasks_per_node or 1


def make_executor(folder: str | Path, options: ClusterOptions) -> submitit.AutoExecutor:
    """An executor writing its pickles and logs to ``folder`` (may hold ``%j``, the job id)."""
    if not options.local and shutil.which("sbatch") is None:
        raise LaunchError("sbatch not found: submit from a SLURM login node, or pass local=True (--local)")
    executor = submitit.AutoExecutor(folder=folder, cluster="local" if options.local else "slurm",
                                     slurm_max_num_timeout=options.max_requeues)
    slurm: dict[str, Any] = {
        f"slurm_{key}": value for key, value in (
            ("partition", options.partition), ("account", options.account), ("qos", options.qos),
            ("constraint", options.constraint),
            ("mem_per_gpu", None if options.mem_per_gpu_gb is None else f"{options.mem_per_gpu_gb:g}G"),
        ) if value is not None}
    executor.update_parameters(
        name=options.name, nodes=options.nodes, tasks_per_node=options.tasks,
        gpus_per_node=options.gpus_per_node, timeout_min=options.time_min,
        slurm_additional_parameters={"requeue": True}, **slurm,
        **({"cpus_per_task": options.cpus_per_task} if options.cpus_per_task else {}))
    return executor


def submit(fn: Callable[..., R], *args: Any, folder: str | Path, options: ClusterOptions) -> submitit.Job[R]:
    """Submit ``fn(*args)`` as one resumable job over ``options.nodes * options.tasks`` tasks."""
    return make_executor(folder, options).submit(Resumable(fn, options.max_requeues), *args)


def submit_shards(fn: Callable[[int, int], R], num_shards: int, *, folder: str | Path,
                  options: ClusterOptions) -> list[submitit.Job[R]]:
    """Submit ``fn(shard, num_shards)`` for every shard as one SLURM array, each element resumable.

    ``fn`` processes ``shard_items(items, shard, num_shards)`` and skips what is already done, so a
    requeued element finishes its shard and no item is processed twice.
    """
    if num_shards < 1:
        raise LaunchError(f"num_shards must be >= 1, got {num_shards}")
    if options.nodes != 1 or options.tasks != 1:
        raise LaunchError("an array element is one task on one node; shard further instead")
    executor = make_executor(folder, options)
    shards = range(num_shards)
    return executor.map_array(Resumable(fn, options.max_requeues), shards, [num_shards] * num_shards)


def shard_items(items: Sequence[R], shard: int, num_shards: int) -> Sequence[R]:
    """The items of one shard: every ``num_shards``-th item from ``shard`` (sizes differ by at most 1)."""
    if not 0 <= shard < num_shards:
        raise LaunchError(f"shard {shard} is outside 0..{num_shards - 1}")
    return items[shard::num_shards]


def job_folder(output_dir: str | Path) -> Path:
    """``<output_dir>/slurm/%j``: the submitit folder of the jobs that write to ``output_dir``."""
    return Path(output_dir).resolve() / "slurm" / "%j"


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """The cluster flags shared by slurm/submit.py and the data_prep scripts."""
    group = parser.add_argument_group("cluster")
    group.add_argument("--nodes", type=int, default=1)
    group.add_argument("--gpus-per-node", type=int, default=0, help="one task per GPU; 0 on CPU")
    group.add_argument("--tasks-per-node", type=int, help="tasks per node on CPU (default 1)")
    group.add_argument("--cpus-per-task", type=int)
    group.add_argument("--mem-per-gpu", type=float, metavar="GB")
    group.add_argument("--partition")
    group.add_argument("--time", type=int, default=60, metavar="MIN", help="time limit in minutes")
    group.add_argument("--account")
    group.add_argument("--qos")
    group.add_argument("--constraint")
    group.add_argument("--max-requeues", type=int, default=3,
                       help="preemptions and time limits survived before the job gives up")
    group.add_argument("--local", action="store_true",
                       help="run through submitit's local executor on this machine (debugging)")


def cluster_options(args: argparse.Namespace, name: str) -> ClusterOptions:
    """``ClusterOptions`` from the flags of :func:`add_cluster_arguments`."""
    return ClusterOptions(
        nodes=args.nodes, gpus_per_node=args.gpus_per_node, tasks_per_node=args.tasks_per_node,
        cpus_per_task=args.cpus_per_task, mem_per_gpu_gb=args.mem_per_gpu, partition=args.partition,
        time_min=args.time, account=args.account, qos=args.qos, constraint=args.constraint,
        max_requeues=args.max_requeues, local=args.local, name=name)
