"""Distributed setup from the environment, and the resumable distributed sampler."""
import pytest
from torch.utils.data import DistributedSampler

from video_iared.engine.distributed import DistEnv, DistributedSetupError, detect
from video_iared.engine.sampler import ResumableSampler

TORCHRUN = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "node0",
            "MASTER_PORT": "29511"}


def test_single_process_without_any_variables():
    assert detect({}) == DistEnv()
    assert not DistEnv().distributed and DistEnv().is_main


def test_torchrun_environment():
    env = detect(TORCHRUN)
    assert (env.rank, env.world_size, env.local_rank, env.master_addr, env.master_port, env.source) == \
        (1, 2, 1, "node0", 29511, "torchrun")
    assert env.distributed and not env.is_main


@pytest.mark.parametrize("drop", ["WORLD_SIZE", "MASTER_PORT"])
def test_half_set_torchrun_environment_names_what_is_missing(drop):
    environ = {k: v for k, v in TORCHRUN.items() if k != drop}
    with pytest.raises(DistributedSetupError, match=f"{drop} missing"):
        detect(environ)
    with pytest.raises(DistributedSetupError, match="outside"):
        detect({**TORCHRUN, "RANK": "2"})


def test_submitit_environment(monkeypatch):
    slurm = {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "4",
             "SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_JOB_NODELIST": "gpu[07-08]",
             "SLURM_JOB_NUM_NODES": "2", "SLURM_NODEID": "1"}
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    for key in TORCHRUN:
        monkeypatch.delenv(key, raising=False)
    env = detect()
    assert (env.rank, env.world_size, env.local_rank, env.master_addr, env.source) == \
        (3, 4, 1, "gpu07", "submitit")
    monkeypatch.setenv("SLURM_PROCID", "0")  # every task of the job meets on the same port; another job not
    assert detect().master_port == env.master_port and 20000 <= env.master_port <= 60000
    monkeypatch.setenv("SLURM_JOB_ID", "4243")
    assert detect().master_port != env.master_port
    monkeypatch.delenv("SLURM_JOB_ID")
    with pytest.raises(DistributedSetupError, match="incomplete"):
        detect()


@pytest.mark.parametrize("num_items, replicas", [(10, 1), (10, 2), (11, 2), (7, 3)])
def test_sampler_deals_like_distributed_sampler(num_items, replicas):
    """Same padding and dealing as torch's DistributedSampler; the order depends on (seed, epoch)."""
    for rank in range(replicas):
        ours = ResumableSampler(num_items, num_replicas=replicas, rank=rank, seed=5, shuffle=False)
        torch_s = DistributedSampler(range(num_items), num_replicas=replicas, rank=rank, shuffle=False)
        assert list(ours) == list(torch_s)
    union = sorted(set(i for r in range(replicas)
                       for i in ResumableSampler(num_items, num_replicas=replicas, rank=r, seed=5)))
    assert union == list(range(num_items))


def test_sampler_order_is_a_function_of_seed_and_epoch_and_resumes():
    a, b = ResumableSampler(20, seed=1), ResumableSampler(20, seed=1)
    a.set_epoch(3), b.set_epoch(3)
    full = list(a)
    assert full == list(b) and sorted(full) == list(range(20))
    b.set_epoch(4)
    assert list(b) != full
    a.set_start(8)
    assert list(a) == full[8:] and len(a) == 12
    a.set_epoch(5)
    assert len(a) == 20  # a new epoch starts from its first item
    with pytest.raises(ValueError):
        a.set_start(21)
