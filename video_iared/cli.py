"""The ``video-iared`` console command: one subcommand per job, each with ``--help``.

Every subcommand that builds a model takes ``--config FILE`` plus ``key=value`` overrides
(``optim.lr=0.01 model.num_frames=16``), resolved by ``video_iared.config.load_config``.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from video_iared.config import ConfigError, load_config


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="experiment YAML (configs/...); defaults when omitted")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. optim.lr=0.01 model.num_frames=16")


def _cmd_flops(args: argparse.Namespace) -> int:
    from video_iared.flops import report_model_cost

    cfg = load_config(args.config, args.overrides)
    print(report_model_cost(cfg, keep_ratio=args.keep_ratio))
    return 0


def _register_flops(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flops", help="GFLOPs per view (fvcore convention: 1 multiply-add = 1 flop) "
                       "and parameters of a config's model")
    _add_config_args(p)
    p.add_argument("--keep-ratio", type=float, default=1.0,
                   help="share of patch tokens kept after each interpreter (IA-RED2 configs)")
    p.set_defaults(func=_cmd_flops)


def _cmd_train(args: argparse.Namespace) -> int:
    from video_iared.engine.train import train

    overrides = list(args.overrides)
    if args.resume:
        overrides.append(f"run.resume={args.resume}")
    result = train(load_config(args.config, overrides))
    print("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()))
    return 0


def _register_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one IA-RED2 stage (iared.stage: backbone | interpreters | "
                       "finetune) on one process, torchrun or SLURM; resumes from run.output_dir")
    _add_config_args(p)
    p.add_argument("--resume", metavar="CKPT",
                   help="continue from this checkpoint (default: run.output_dir's own, when present)")
    p.set_defaults(func=_cmd_train)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from video_iared.engine.evaluate import evaluate

    evaluate(load_config(args.config, args.overrides), args.checkpoint, warmup=args.warmup)
    return 0


def _register_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="clip and multi-view video top-1/5, GFLOPs per view, kept share, "
                       "throughput on data.test_list; writes metrics.json and predictions.csv to run.output_dir")
    _add_config_args(p)
    p.add_argument("--checkpoint", required=True, help="weights to evaluate (this project's or official)")
    p.add_argument("--warmup", type=int, default=2, help="batches left out of the throughput timing")
    p.set_defaults(func=_cmd_evaluate)


def _numbers(kind: type) -> Callable[[str], list]:
    """argparse type for a comma-separated list (``0.7,0.5``); ``nargs`` would swallow overrides."""
    return lambda text: [kind(item) for item in text.split(",") if item]


def _cmd_sweep(args: argparse.Namespace) -> int:
    from video_iared.sweep import sweep

    sweep(load_config(args.config, args.overrides), args.checkpoint, thresholds=args.thresholds,
          keep_ratios=args.keep_ratios, tome_r=args.tome_r, warmup=args.warmup)
    return 0


def _register_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="accuracy vs GFLOPs of IA-RED2 (thresholds, budgets), random drop, "
                       "CLS-attention top-k, ToMe and dense; writes sweep.json and sweep.png to run.output_dir")
    _add_config_args(p)
    p.add_argument("--checkpoint", required=True, help="weights to evaluate")
    p.add_argument("--thresholds", type=_numbers(float), default=[0.3, 0.5, 0.7, 0.8, 0.9],
                   help="IA-RED2 threshold decisions, comma-separated (default 0.3,0.5,0.7,0.8,0.9)")
    p.add_argument("--keep-ratios", type=_numbers(float), default=[0.9, 0.8, 0.7, 0.6, 0.5],
                   help="per-group keep ratios rho, comma-separated: budgets [rho, rho^2, ...] for IA-RED2, "
                   "random and top-k (default 0.9,0.8,0.7,0.6,0.5)")
    p.add_argument("--tome-r", type=_numbers(int), default=[1, 2, 3],
                   help="ToMe locations merged per block, comma-separated (default 1,2,3)")
    p.add_argument("--warmup", type=int, default=1, help="batches left out of the throughput timing")
    p.set_defaults(func=_cmd_sweep)


_REGISTRARS: list[Callable[[argparse._SubParsersAction], None]] = [_register_flops, _register_train,
                                                                    _register_evaluate, _register_sweep]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="video-iared",
        description="IA-RED2 for video transformers: train, evaluate, sweep, interpret, predict, flops.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _REGISTRARS:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"video-iared {args.command}: config error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
