"""Jobs on a real one-node SLURM cluster: 2-task DDP training, preemption and requeue, data_prep arrays."""
import json
import re
import time
from functools import partial
from pathlib import Path

import cloudpickle
import pytest
import submitit
import torch

from data_prep import resize_videos
from slurm_cluster import LocalSlurm
from tests.data_fixtures import ramp_video
from train_helpers import make_synthetic, run_python
from video_iared.data.prep import find_videos, try_resize_video
from video_iared.engine.checkpoint import checkpoint_path, load_checkpoint
from video_iared.launch.cluster import ClusterOptions, job_folder, submit_shards

pytestmark = [pytest.mark.slow, pytest.mark.slurm]
cloudpickle.register_pickle_by_value(resize_videos)  # data_prep.* is found only from the checkout root

# The engine as slurm/submit.py launches it: configs/tiny/backbone.yaml (at depth 4) on 2 CPU tasks, on 64 px,
# 32-frame clips: 0.3 s a step on this machine's 2 cores (0.8 s on a slower, busier one). A hard requeue
# (SIGTERM, which submitit ignores, then SIGKILL after KillWait=5 s) lets the job run ~5 s on, i.e. up to
# ~17 steps here, so checkpoints are 32 steps apart: the kill lands before the next one on either machine.
# 384 videos / 2 tasks / batch 2 = 96 steps in one epoch, with checkpoints at steps 32 and 64 (both
# interruptions resume mid-epoch) and at the end.
EPOCHS, STEPS_PER_EPOCH, CKPT_EVERY = 1, 96, 32
STEPS = EPOCHS * STEPS_PER_EPOCH
SYNTHETIC = dict(num_train=384, num_val=4, size=64, frames=32)
# --time over 10 min, or submitit takes every USR2 for the time limit (it treats the last 10 min as such)
CLUSTER = ["--tasks-per-node", "2", "--cpus-per-task", "1", "--partition", "debug", "--time", "30"]
OVERRIDES = [f"optim.epochs={EPOCHS}", "optim.warmup_epochs=0.25", f"run.ckpt_every_steps={CKPT_EVERY}",
             "run.log_every=1", "run.device=cpu", "data.batch_size=2", "data.num_workers=0",
             "model.name=timesformer_tiny_patch8_32", "model.num_classes=4", "model.img_size=64",
             "model.num_frames=32", "data.crop_size=64",
             "data.train_jitter_scales=[64,80]", "data.num_frames=32", "data.sampling_rate=1"]


@pytest.fixture(scope="session")
def slurm_synthetic(tmp_path_factory) -> Path:
    """Synthetic videos for the training jobs (the ``small_synthetic`` pattern, larger)."""
    return make_synthetic(tmp_path_factory.mktemp("synthetic_slurm"), **SYNTHETIC)


def _submit_training(data_root: Path, output_dir: Path) -> submitit.Job:
    """``python slurm/submit.py`` as a user runs it; the job, read back from the id it prints."""
    proc = run_python(["slurm/submit.py", "--config", "configs/tiny/backbone.yaml", *CLUSTER,
                       f"data.root={data_root}", f"run.output_dir={output_dir}", *OVERRIDES], threads=1)
    match = re.search(r"submitted train job (\d+)", proc.stdout)
    assert match, f"slurm/submit.py printed no job id:\n{proc.stdout}\n{proc.stderr}"
    return submitit.SlurmJob(job_folder(output_dir), match.group(1), tasks=(0, 1))


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
    return load_checkpoint(checkpoint_path(output_dir))["global_step"]


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
               after: int) -> tuple[int, int, int]:
    """Send ``command JOBID`` one step after a checkpoint past step ``after``; return (the checkpoint's
    step, the step the job resumes from, the last step reached)."""
    logs = output_dir / "slurm" / job_id
    step = lambda: _last_step(output_dir)  # noqa: E731
    _wait_for(lambda: step() > max(after, CKPT_EVERY) and step() % CKPT_EVERY == 1
              and _job_state(cluster, job_id) == "RUNNING", 240, "a step just past a checkpoint", logs)
    cluster.run(*command, job_id)
    reached = _last_step(output_dir)
    before = reached // CKPT_EVERY * CKPT_EVERY

    def stopped() -> bool:  # back in the queue with every task gone: the checkpoint is final until rerun
        nonlocal reached
        reached = max(reached, _last_step(output_dir))
        return _job_state(cluster, job_id) == "PENDING"

    _wait_for(stopped, 120, f"job {job_id} to be requeued after {command[0]}", logs)
    resumed = _checkpoint_step(output_dir)
    _wait_for(lambda: _job_state(cluster, job_id) == "RUNNING", 180, f"job {job_id} to run again", logs)
    return before, resumed, reached


def _result(result: dict) -> dict:
    """A job's returned metrics without the run's own checkpoint path."""
    return {key: value for key, value in result.items() if key != "checkpoint"}


@pytest.fixture(scope="session")
def reference_run(slurm_cluster, slurm_synthetic, tmp_path_factory) -> tuple[Path, list[dict]]:
    """An uninterrupted 2-task training job; the baseline the preempted run must match bit for bit."""
    output_dir = tmp_path_factory.mktemp("reference")
    return output_dir, _submit_training(slurm_synthetic, output_dir).results()


def test_two_task_ddp_training_job(reference_run):
    output_dir, results = reference_run
    assert len(results) == 2 and results[0] == results[1]  # every rank returns the same final metrics
    assert results[0]["global_step"] == STEPS and results[0]["epochs"] == EPOCHS
    assert json.loads((output_dir / "final_metrics.json").read_text()) == results[0]
    state = load_checkpoint(checkpoint_path(output_dir))
    assert (state["global_step"], state["epoch"], state["world_size"]) == (STEPS, EPOCHS, 2)
    rows = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if row["split"] == "train"] == list(range(1, STEPS + 1))
    assert [row["step"] for row in rows if row["split"] == "val"] == [STEPS]
    (script,) = [path.read_text() for path in (output_dir / "slurm").glob("*/*_submission.sh")]
    for flag in ("#SBATCH --ntasks-per-node=2", "#SBATCH --cpus-per-task=1", "#SBATCH --partition=debug",
                 "#SBATCH --requeue", "#SBATCH --signal=USR2@90"):
        assert flag in script


def test_preempted_job_resumes_exactly(slurm_cluster, slurm_synthetic, reference_run, tmp_path):
    output_dir = tmp_path / "preempted"
    job = _submit_training(slurm_synthetic, output_dir)
    # submitit's checkpoint path (USR2 -> checkpoint() -> requeue), then a hard requeue (no checkpoint call)
    reached = 0
    for command in (["scancel", "--signal=USR2"], ["scontrol", "requeue"]):
        before, resumed, reached = _interrupt(slurm_cluster, job.job_id, output_dir, command, after=reached)
        assert 0 < before == resumed < reached, (
            f"{command[0]} did not land between checkpoints: sent after the step {before} checkpoint, "
            f"resumed from step {resumed}, reached step {reached}")
    assert [_result(r) for r in job.results()] == [_result(r) for r in reference_run[1]]
    assert slurm_cluster.run("scontrol", "show", "job", job.job_id).count("Restarts=2") == 1
    log = next((output_dir / "slurm").glob("*/*_0_log.out")).read_text()  # appended across requeues
    assert log.count("Starting with JobEnvironment") == 3
    assert log.count("Calling checkpoint method") == 1  # USR2 only: a hard requeue never calls checkpoint()
    reference = load_checkpoint(checkpoint_path(reference_run[0]))
    preempted = load_checkpoint(checkpoint_path(output_dir))
    assert preempted["global_step"] == reference["global_step"] == STEPS
    assert reference["model"].keys() == preempted["model"].keys()
    assert all(torch.equal(reference["model"][name], preempted["model"][name]) for name in reference["model"])
    rows = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if row["split"] == "train"] == list(range(1, STEPS + 1))


def test_data_prep_array_processes_every_video_once(slurm_cluster, tmp_path):
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
