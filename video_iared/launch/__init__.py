"""Cluster launches: one submitit path (``launch.submit``) for training, evaluation and data_prep arrays."""
