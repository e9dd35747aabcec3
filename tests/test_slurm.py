"""Jobs on a real one-node SLURM cluster: 2-task DDP training, preemption and requeue, data_prep arrays."""
import json
import sys
import time
from functools import partial
from pathlib import Path

import cloudpickle
import pytest
import torch

from data_prep import resize_videos
from slurm_cluster import LocalSlurm, slurm_cluster  # noqa: F401  (the session fixture)
from tests.data_fixtures import ramp_video
from video_iared.data.prep import find_videos, try_resize_video
from video_iared.engine import distributed
from video_iared.engine.checkpoint import checkpoint_path, find_checkpoint, load_checkpoint, save_checkpoint
from video_iared.launch.submit import ClusterOptions, job_folder, submit, submit_shards

pytestmark = [pytest.mark.slow, pytest.mark.slurm]
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # tests/ is not importable inside a job
cloudpickle.register_pickle_by_value(resize_videos)  # nor data_prep/ (scripts, not a package)

# A hard requeue (SIGTERM, which submitit ignores, then SIGKILL after KillWait=5 s) lets the job run
# ~5 s on: the checkpoint interval (25 x 0.3 s) is longer, so the kill still lands between checkpoints.
STEPS, CKPT_EVERY, STEP_S = 75, 25, 0.3
# over 10 min, or submitit takes every USR2 for the time limit (it treats the last 10 min as such)
TWO_TASKS = ClusterOptions(tasks_per_node=2, cpus_per_task=1, time_min=30, partition="debug")


def toy_train(output_dir: str, steps: int = STEPS, ckpt_every: int = CKPT_EVERY) -> dict:
    """Stand-in for ``engine.train.train`` until it lands: DDP SGD with step checkpoints and auto-resume."""
    env = distributed.detect()
    distributed.setup(env, torch.device("cpu"))
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    step = 0
    if (path := find_checkpoint(output_dir)) is not None:
        state = load_checkpoint(path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
    if env.is_main:  # like the engine: drop rows the interrupted run logged past the checkpoint
        metrics = Path(output_dir) / "metrics.jsonl"
        rows = metrics.read_text().splitlines() if metrics.exists() else []
        metrics.write_text("".join(f"{row}\n" for row in rows[:step]))
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    while step < steps:
        x = torch.randn(4, 8, generator=torch.Generator().manual_seed(1000 * step + env.rank))
        loss = ddp(x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        time.sleep(STEP_S)
        if env.is_main:
            with open(Path(output_dir) / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps({"split": "train", "step": step, "loss": loss.item()}) + "\n")
            if step % ckpt_every == 0 or step == steps:
                state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}
                save_checkpoint(state, checkpoint_path(output_dir))
        distributed.barrier()
    distributed.teardown()
    return {"step": step}


def _last_step(output_dir: Path) -> int:
    """The latest logged training step (0 before the first); tolerates a line being written."""
    path = output_dir / "metrics.jsonl"
    steps = [0]
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            steps.append(json.loads(line)["step"])
        except json.JSONDecodeError:
            break
    return steps[-1]


def _checkpoint_step(output_dir: Path) -> int:
    return load_checkpoint(checkpoint_path(output_dir))["step"]


def _job_state(cluster: LocalSlurm, job_id: str) -> str:
    return cluster.run("squeue", "-h", "-j", job_id, "-o", "%T", check=False).strip()


def _wait_for(predicate, timeout: float, what: str, job_folder: Path | None = None) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            logs = "".join(f"\n--- {p.name}\n{p.read_text()[-3000:]}"
                           for p in sorted(job_folder.glob("*.err"))) if job_folder else ""
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}{logs}")
        time.sleep(0.1)


def _interrupt(cluster: LocalSlurm, job_id: str, output_dir: Path, command: list[str],
               after: int) -> tuple[int, int]:
    """Send ``command JOBID`` one step after a checkpoint past step ``after``; return (resume step,
    last step reached)."""
    logs = output_dir / "slurm" / job_id
    step = lambda: _last_step(output_dir)  # noqa: E731
    _wait_for(lambda: step() > max(after, CKPT_EVERY) and step() % CKPT_EVERY == 1
              and _job_state(cluster, job_id) == "RUNNING", 240, "a step just past a checkpoint", logs)
    cluster.run(*command, job_id)
    reached = _last_step(output_dir)

    def stopped() -> bool:  # back in the queue with every task gone: the checkpoint is final until rerun
        nonlocal reached
        reached = max(reached, _last_step(output_dir))
        return _job_state(cluster, job_id) == "PENDING"

    _wait_for(stopped, 120, f"job {job_id} to be requeued after {command[0]}", logs)
    resumed = _checkpoint_step(output_dir)
    _wait_for(lambda: _job_state(cluster, job_id) == "RUNNING", 180, f"job {job_id} to run again", logs)
    return resumed, reached


def _parameters(output_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(checkpoint_path(output_dir))["model"]


@pytest.fixture(scope="session")
def reference_run(slurm_cluster, tmp_path_factory) -> tuple[Path, dict]:  # noqa: F811
    """An uninterrupted 2-task training job; the baseline the preempted run must match bit for bit."""
    output_dir = tmp_path_factory.mktemp("reference")
    job = submit(toy_train, str(output_dir), folder=job_folder(output_dir), options=TWO_TASKS)
    return output_dir, job.results()[0]


def test_two_task_ddp_training_job(reference_run):
    output_dir, result = reference_run
    assert result == {"step": STEPS}
    assert _checkpoint_step(output_dir) == STEPS
    assert [row["step"] for row in map(json.loads, (output_dir / "metrics.jsonl").read_text().splitlines())] \
        == list(range(1, STEPS + 1))
    (script,) = [path.read_text() for path in (output_dir / "slurm").glob("*/*_submission.sh")]
    for flag in ("#SBATCH --ntasks-per-node=2", "#SBATCH --requeue", "#SBATCH --signal=USR2@90"):
        assert flag in script


def test_preempted_job_resumes_exactly(slurm_cluster, reference_run, tmp_path):  # noqa: F811
    output_dir = tmp_path / "preempted"
    job = submit(toy_train, str(output_dir), folder=job_folder(output_dir), options=TWO_TASKS)
    # submitit's checkpoint path (USR2 -> checkpoint() -> requeue), then a hard requeue (no checkpoint call)
    reached = 0
    for command in (["scancel", "--signal=USR2"], ["scontrol", "requeue"]):
        resumed, reached = _interrupt(slurm_cluster, job.job_id, output_dir, command, after=reached)
        assert 0 < resumed < reached, f"{command[0]} did not land between checkpoints ({resumed}, {reached})"
    assert job.results()[0] == reference_run[1]
    assert slurm_cluster.run("scontrol", "show", "job", job.job_id).count("Restarts=2") == 1
    log = next((output_dir / "slurm").glob("*/*_0_log.out")).read_text()  # appended across requeues
    assert log.count("Starting with JobEnvironment") == 3
    assert log.count("Calling checkpoint method") == 1  # USR2 only: a hard requeue never calls checkpoint()
    reference = _parameters(reference_run[0])
    preempted = _parameters(output_dir)
    assert reference.keys() == preempted.keys()
    assert all(torch.equal(reference[name], preempted[name]) for name in reference)


def test_data_prep_array_processes_every_video_once(slurm_cluster, tmp_path):  # noqa: F811
    """resize_videos.py's real shard function as a 3-element array: every video written exactly once."""
    videos, out = tmp_path / "videos", tmp_path / "out"
    names = [f"{i:03d}.mp4" for i in range(10)]
    videos.mkdir()
    for name in names:
        ramp_video(str(videos / name), num_frames=6, height=16, width=24)
    out.mkdir()
    done = try_resize_video((str(videos / names[4]), str(out / names[4])), short_side=8, gop=None, crf=23)
    assert done[1] is None
    stamp = (out / names[4]).stat().st_mtime_ns  # a rerun skips finished videos
    shard = partial(resize_videos.resize_shard, src_root=str(videos), dst_root=str(out), short_side=8,
                    workers=1)
    jobs = submit_shards(shard, 3, folder=job_folder(tmp_path),
                         options=ClusterOptions(time_min=5, partition="debug"))
    assert len({job.job_id.split("_")[0] for job in jobs}) == 1  # one array
    summaries = [job.result() for job in jobs]
    assert [s.written for s in summaries] == [4, 2, 3] and [s.skipped for s in summaries] == [0, 1, 0]
    assert not any(s.failed for s in summaries)
    assert find_videos(str(out)) == names and (out / names[4]).stat().st_mtime_ns == stamp
