"""Cluster launches through submitit (``launch.cluster``): training jobs (``slurm/submit.py``) and the
data_prep scripts' shard arrays (``--slurm --shards N``, ``launch.arrays``). Evaluation, calibration and
sweeps are not submitted from here: run them under torchrun or as one process inside an allocation."""
