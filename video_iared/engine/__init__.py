"""The training and evaluation engine. One entry, :func:`video_iared.engine.train.train`, serves the CLI,
torchrun and SLURM; its parts are ``policy`` (REINFORCE reward, baselines, curriculum), ``stages`` (what
each stage optimises), ``optim``, ``checkpoint``, ``sampler``, ``distributed``, ``datasets``,
``validate`` and ``logging``. Evaluation (:func:`video_iared.engine.evaluate.evaluate`, and ``sweep``)
is built from ``session`` (process group, strict ``loading``, test loader), ``harness`` (predictors
over the views), ``aggregate``, ``metrics`` and ``results``."""
