"""Submit the training engine, unchanged, to SLURM through submitit (docs/design.md, SLURM).

    python slurm/submit.py --config configs/k400/timesformer_base_8x224.yaml \\
        --nodes 2 --gpus-per-node 8 --cpus-per-task 10 --partition gpu --time 4320 \\
        run.output_dir=runs/divst_k400 [key=value ...]

It takes ``video-iared train``'s arguments (its parser is this one's parent) plus the cluster's.
One task per GPU (``--tasks-per-node`` on CPU); submitit's files and logs go to
``<run.output_dir>/slurm/<job id>/``. ``--local`` runs the same job with submitit's local executor and
waits for it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from video_iared.cli import train_arguments, train_config
from video_iared.config import ConfigError
from video_iared.errors import EXIT_USER_ERROR
from video_iared.launch.cluster import LaunchError, add_cluster_arguments, cluster_options, job_folder, submit


# the classes of the errors ``video-iared`` reports in one line (a job's exception arrives as text)
USER_ERRORS = ("UserError", "ConfigError", "WeightsError", "VideoDecodeError")


def build_parser() -> argparse.ArgumentParser:
    """``video-iared train``'s arguments (config, overrides, --resume) plus the cluster's."""
    parser = argparse.ArgumentParser(prog="slurm/submit.py", description=__doc__.split("\n")[0],
                                     parents=[train_arguments()])
    parser.add_argument("--job", choices=("train",), default="train", help="the engine entry to run")
    add_cluster_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)
    try:
        cfg = train_config(args)
    except ConfigError as err:
        print(f"slurm/submit.py: config error: {err}", file=sys.stderr)
        return 2
    from video_iared.engine.train import train

    cfg.run.output_dir = str(Path(cfg.run.output_dir).resolve())  # jobs may start in another folder
    if cfg.run.resume != "auto":
        cfg.run.resume = str(Path(cfg.run.resume).resolve())
    try:
        options = cluster_options(args, name=f"{args.job}-{Path(cfg.run.output_dir).name}")
        job = submit(train, cfg, folder=job_folder(cfg.run.output_dir), options=options)
    except LaunchError as err:
        print(f"slurm/submit.py: {err}", file=sys.stderr)
        return 2
    print(f"submitted {args.job} job {job.job_id}: output {cfg.run.output_dir}, logs {job.paths.stdout}")
    if args.local:
        from submitit.core.utils import FailedJobError

        try:
            print(job.result())
        except FailedJobError as err:  # the job's traceback is in its log; here its last line
            line = job_error(str(err))
            print(f"slurm/submit.py: the job failed: {line} (full log: {job.paths.stderr})", file=sys.stderr)
            user = line.split(":")[0].rsplit(".", 1)[-1] in USER_ERRORS
            return EXIT_USER_ERROR if user else 1
    return 0


def job_error(message: str) -> str:
    """The exception line (``module.Error: what``) of submitit's report of a failed job."""
    lines = [line.strip() for line in message.split("----------------------")[-2].splitlines()] \
        if message.count("----------------------") >= 2 else message.splitlines()
    errors = [line for line in lines if line and not line.startswith(("File ", "Traceback", "^", "~"))]
    return errors[-1] if errors else message.strip().splitlines()[-1]


if __name__ == "__main__":
    sys.exit(main())
