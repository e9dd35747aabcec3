"""The training engine. One entry, :func:`video_iared.engine.train.train`, serves the CLI, torchrun and
SLURM; the other modules are its parts: ``policy`` (REINFORCE reward, baselines, curriculum),
``stages`` (what each stage optimises), ``optim``, ``checkpoint``, ``sampler``, ``distributed``,
``datasets``, ``validate`` and ``logging``."""
