"""The launcher without a cluster: options, requeue budget, shards, a 2-task job on the local executor."""
import argparse
import importlib.util
import sys

import cloudpickle
import pytest
import submitit
from train_helpers import REPO

from video_iared.cli import train_config
from video_iared.launch import cluster as launch
from video_iared.launch.cluster import ClusterOptions, LaunchError, RequeueLimitError, Resumable


def test_options_default_to_one_task_per_gpu_and_reject_mismatches():
    assert ClusterOptions(gpus_per_node=8).tasks == 8
    assert ClusterOptions(tasks_per_node=2).tasks == 2
    assert ClusterOptions().tasks == 1
    with pytest.raises(LaunchError, match="one task per GPU"):
        ClusterOptions(gpus_per_node=8, tasks_per_node=4)
    with pytest.raises(LaunchError, match="mem_per_gpu_gb needs"):
        ClusterOptions(mem_per_gpu_gb=40)
    with pytest.raises(LaunchError, match="local executor runs on one node"):
        ClusterOptions(nodes=2, local=True)


def test_cli_flags_map_to_sbatch_parameters(tmp_path, monkeypatch):
    parser = argparse.ArgumentParser()
    launch.add_cluster_arguments(parser)
    args = parser.parse_args(
        "--nodes 4 --gpus-per-node 8 --cpus-per-task 10 --mem-per-gpu 40 --partition gpu --time 4320 "
        "--account a --qos high --constraint volta32gb --max-requeues 7".split())
    options = launch.cluster_options(args, name="train-x")
    monkeypatch.setattr(launch.shutil, "which", lambda name: f"/usr/bin/{name}")
    executor = launch.make_executor(tmp_path / "%j", options)
    params = executor._executor.parameters
    assert params["nodes"] == 4 and params["ntasks_per_node"] == 8 and params["gpus_per_node"] == 8
    assert (params["cpus_per_task"], params["mem_per_gpu"], params["time"]) == (10, "40G", 4320)
    assert (params["partition"], params["account"], params["qos"], params["constraint"]) == (
        "gpu", "a", "high", "volta32gb")
    assert params["additional_parameters"] == {"requeue": True}
    assert executor._executor.max_num_timeout == 7


def test_submit_script_reads_a_run_as_train_does(capsys):
    """slurm/submit.py's parser is ``video-iared train``'s (config, overrides, --resume) plus the
    cluster's."""
    spec = importlib.util.spec_from_file_location("slurm_submit", REPO / "slurm" / "submit.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = script.build_parser().parse_intermixed_args(
        ["--config", str(REPO / "configs" / "tiny" / "backbone.yaml"), "--nodes", "2", "optim.lr=0.5",
         "--resume", "old.pth"])
    cfg = train_config(args)
    assert (args.nodes, cfg.optim.lr, cfg.run.resume, cfg.model.num_classes) == (2, 0.5, "old.pth", 3)
    assert script.main(["optim.lrr=0.5"]) == 2
    assert "did you mean 'lr'" in capsys.readouterr().err


def test_missing_sbatch_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(launch.shutil, "which", lambda name: None)
    with pytest.raises(LaunchError, match="sbatch not found.*--local"):
        launch.make_executor(tmp_path, ClusterOptions())


def _double(x: int) -> int:
    return 2 * x


def test_requeue_budget_counts_every_restart(monkeypatch):
    job = Resumable(_double, max_requeues=2)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert job(4) == 8
    requeued = job.checkpoint(4)
    assert requeued.function is job and requeued.args == (4,)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    assert job(4) == 8 and job.checkpoint(4) is None  # the last run may finish, not requeue again
    monkeypatch.setenv("SLURM_RESTART_COUNT", "3")
    with pytest.raises(RequeueLimitError, match="requeued 3 times, more than max_requeues=2"):
        job(4)


def test_shards_cover_every_item_once():
    items = list(range(11))
    shards = [launch.shard_items(items, s, 3) for s in range(3)]
    assert sorted(i for shard in shards for i in shard) == items
    assert {len(shard) for shard in shards} == {3, 4}
    with pytest.raises(LaunchError, match="outside 0..2"):
        launch.shard_items(items, 3, 3)


def _rank_and_world() -> tuple[int, int]:
    from video_iared.engine.distributed import detect

    env = detect()
    return env.rank, env.world_size


@pytest.mark.slow
def test_local_executor_runs_two_tasks_through_the_same_path(tmp_path):
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # tests/ is not importable in the job
    job = launch.submit(_rank_and_world, folder=launch.job_folder(tmp_path),
                        options=ClusterOptions(tasks_per_node=2, local=True, time_min=5))
    assert isinstance(job, submitit.local.local.LocalJob)
    assert sorted(job.results()) == [(0, 2), (1, 2)]
    assert (tmp_path / "slurm" / str(job.job_id)).is_dir()


def test_bare_multi_task_srun_is_refused():
    from video_iared.engine.distributed import DistributedSetupError, detect

    with pytest.raises(DistributedSetupError, match="srun started 2 tasks without submitit or torchrun"):
        detect({"SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": "1", "SLURM_JOB_ID": "7"})
    assert detect({"SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0"}).world_size == 1
