"""The ``video-iared`` console command: one subcommand per job, each with ``--help``.

Every subcommand that builds a model takes ``--config FILE`` plus ``key=value`` overrides
(``optim.lr=0.01 model.num_frames=16``), resolved by ``video_iared.config.load_config``; a command given
a ``--checkpoint`` of this project and no ``--config`` runs the config saved in it.

Errors are handled in one place, :func:`main`: a :class:`~video_iared.errors.UserError` (and a video
that cannot be decoded, a file that is not there) is one line on stderr and exit status 2; a run stopped
by SIGINT/SIGTERM after saving exits 128 + the signal; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Callable

from video_iared.config import Config, ConfigError, load_config
from video_iared.errors import EXIT_USER_ERROR, Interrupted, UserError


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="experiment YAML: a path, or a packaged config's name such as "
                        "tiny/backbone (configs/ of the checkout); defaults when omitted")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. optim.lr=0.01 model.num_frames=16")


def report_model_cost(cfg: Config, keep_ratio: float | None = None) -> str:
    """:func:`~video_iared.models.cost.model_cost_report` of a config's model, built without its
    weights (the cost does not depend on them, and the file need not exist here). Without
    ``keep_ratio``, a config that deploys ``iared.decision=budget`` is costed at its budget."""
    from video_iared.models.build import build_model
    from video_iared.models.cost import model_cost_report

    model = build_model(cfg.model, load=False)
    use_budget = keep_ratio is None and cfg.iared.decision == "budget" and cfg.model.group_starts
    return model_cost_report(model, 1.0 if keep_ratio is None else keep_ratio, cfg.model.name,
                             budget=cfg.iared.budget if use_budget else ())


def _config(args: argparse.Namespace) -> Config:
    """``--config`` and the overrides, checked as every command checks them (``iared.budget``)."""
    from video_iared.models.build import check_decision

    cfg = load_config(args.config, args.overrides)
    check_decision(cfg.iared, len(cfg.model.group_starts))
    return cfg


def _checkpoint_config(args: argparse.Namespace) -> Config:
    """``--config`` when given, else the config saved in ``--checkpoint`` (as ``predict`` reads it)."""
    if args.config:
        return _config(args)
    from video_iared.engine.loading import inference_config
    from video_iared.models.weights import read_checkpoint

    return inference_config(read_checkpoint(args.checkpoint, mmap=True), overrides=args.overrides)


def _cmd_flops(args: argparse.Namespace) -> int:
    from video_iared.models.interpreter import check_budgets

    cfg = _config(args)
    if args.keep_ratio is not None:
        if not cfg.model.group_starts:
            raise UserError("--keep-ratio applies to IA-RED² configs (model.group_starts); this "
                            "model is dense")
        try:
            check_budgets([args.keep_ratio])
        except ValueError as err:
            raise UserError(f"--keep-ratio {args.keep_ratio}: {err}") from None
    print(report_model_cost(cfg, keep_ratio=args.keep_ratio))
    return 0


def _register_flops(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flops", help="GFLOPs per view (fvcore convention: 1 multiply-add = 1 flop) "
                       "and parameters of a config's model")
    _add_config_args(p)
    p.add_argument("--keep-ratio", type=float, default=None,
                   help="share of patch tokens kept after each interpreter (IA-RED2 configs; default: the "
                   "config's iared.budget when it deploys decision=budget, else 1)")
    p.set_defaults(func=_cmd_flops)


def train_arguments() -> argparse.ArgumentParser:
    """The ``train`` command's arguments (config, overrides, ``--resume``) as a parent parser, shared
    with the SLURM launcher (``slurm/submit.py``) so both read a run the same way."""
    parser = argparse.ArgumentParser(add_help=False)
    _add_config_args(parser)
    parser.add_argument("--resume", metavar="CKPT",
                        help="continue from this checkpoint (default: run.output_dir's own, when present)")
    return parser


def train_config(args: argparse.Namespace) -> Config:
    """The config :func:`train_arguments` describe (``--resume`` becomes ``run.resume``)."""
    resume = [f"run.resume={args.resume}"] if args.resume else []
    return load_config(args.config, [*args.overrides, *resume])


def _cmd_train(args: argparse.Namespace) -> int:
    from video_iared.engine.train import train

    result = train(train_config(args))
    print("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()))
    return 0


def _register_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", parents=[train_arguments()],
                       help="train one IA-RED2 stage (iared.stage: backbone | interpreters | "
                       "finetune) on one process, torchrun or SLURM; resumes from run.output_dir")
    p.set_defaults(func=_cmd_train)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from video_iared.engine.evaluate import evaluate

    evaluate(_checkpoint_config(args), args.checkpoint, warmup=args.warmup)
    return 0


def _add_checkpoint_args(p: argparse.ArgumentParser, *, warmup: int) -> None:
    """Config, overrides, the checkpoint to evaluate and the throughput warm-up (evaluate, sweep)."""
    _add_config_args(p)
    p.add_argument("--checkpoint", required=True, help="weights to evaluate (this project's or official); "
                   "without --config, the config saved in it")
    p.add_argument("--warmup", type=int, default=warmup, help="batches left out of the throughput timing")


def _register_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="clip and multi-view video top-1/5, GFLOPs per view, kept share, "
                       "throughput on data.test_list; writes metrics.json and predictions.csv to "
                       "run.output_dir")
    _add_checkpoint_args(p, warmup=2)
    p.set_defaults(func=_cmd_evaluate)


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from video_iared.engine.calibrate import calibrate

    entry = calibrate(_checkpoint_config(args), args.checkpoint, videos=args.videos,
                      out=args.out, budget=args.budget, floor_share=args.floor_share)
    thresholds = ", ".join(f"{t:.4f}" for t in entry["thresholds"])
    print(f"calibrated thresholds [{thresholds}] to budget {entry['budget']} on {entry['videos']} training "
          f"videos -> {args.out or args.checkpoint}; evaluate with iared.decision=calibrated")
    return 0


def _register_calibrate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="fit one threshold per interpreter group so the threshold decision "
                       "costs what iared.budget costs on average; saves them into the checkpoint")
    _add_config_args(p)
    p.add_argument("--checkpoint", required=True, help="IA-RED2 checkpoint (written back atomically)")
    p.add_argument("--budget", type=_numbers(float), default=None,
                   help="cumulative keep ratio per group, comma-separated (default: iared.budget)")
    p.add_argument("--videos", type=int, default=256, help="training videos to fit on (default 256)")
    p.add_argument("--out", default=None, help="write the calibrated checkpoint here instead")
    p.add_argument("--floor-share", type=float, default=None,
                   help="every clip keeps at least this share of a group's mean budget (default 0.9)")
    p.set_defaults(func=_cmd_calibrate)


def _numbers(kind: type) -> Callable[[str], list]:
    """argparse type for a comma-separated list (``0.7,0.5``); ``nargs`` would swallow overrides."""
    return lambda text: [kind(item) for item in text.split(",") if item]


def _cmd_sweep(args: argparse.Namespace) -> int:
    from video_iared.sweep import sweep

    shares = {"--keep-ratios": args.keep_ratios, "--final-keeps": args.final_keeps}
    for flag, values in shares.items():
        outside = [v for v in values or () if not 0.0 < v <= 1.0]
        if outside:
            raise UserError(f"{flag} {','.join(f'{v:g}' for v in outside)}: shares of the tokens, in (0, 1]")
    outside = [t for t in args.threshold_points if not 0.0 <= t <= 1.0]
    if outside:
        points = ",".join(f"{t:g}" for t in outside)
        raise UserError(f"--threshold-points {points}: interpreter scores, in [0, 1]")
    sweep(_checkpoint_config(args), args.checkpoint, threshold_points=args.threshold_points,
          keep_ratios=args.keep_ratios or (), final_keeps=args.final_keeps, tome_r=args.tome_r,
          oracle=args.oracle, methods=args.methods, group_starts=args.group_starts, warmup=args.warmup)
    return 0


def _register_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="accuracy vs GFLOPs of IA-RED2 (thresholds, budgets), random drop, "
                       "CLS-attention top-k, ToMe and dense (--oracle: and the actor-mask references); "
                       "writes sweep.json and sweep.png to run.output_dir")
    _add_checkpoint_args(p, warmup=1)
    p.add_argument("--threshold-points", type=_numbers(float), default=[0.3, 0.5, 0.7, 0.8, 0.9],
                   help="IA-RED2 threshold decisions, comma-separated (default 0.3,0.5,0.7,0.8,0.9)")
    p.add_argument("--keep-ratios", type=_numbers(float), default=None,
                   help="per-group keep ratios rho, comma-separated: budgets [rho, rho^2, ...] for IA-RED2, "
                   "random, top-k and oracle")
    p.add_argument("--final-keeps", type=_numbers(float), default=None,
                   help="budgets by their cumulative keep c after the last group (rho = c^(1/groups)), "
                   "comma-separated; with neither flag: 0.7,0.5,0.3,0.2,0.1")
    p.add_argument("--tome-r", type=_numbers(int), default=[1, 2, 3],
                   help="ToMe locations merged per block, comma-separated (default 1,2,3)")
    p.add_argument("--oracle", action="store_true",
                   help="add rows that read the test videos' actor masks (x.masks.npz sidecars): oracle "
                   "(top-k by mask coverage at every budget), actor-tube (only the locations the mask "
                   "touches in any frame) and random-same-count (as many random tokens)")
    p.add_argument("--methods", type=_numbers(str), default=None,
                   help="run only these methods (and dense), comma-separated, e.g. "
                   "iared-budget,iared-calibrated")
    p.add_argument("--group-starts", type=_numbers(int), default=None,
                   help="blocks before which a dense checkpoint's baselines drop tokens, comma-separated "
                   "(default: model.group_starts, else 0, depth/3, 2 depth/3); use an IA-RED2 model's "
                   "to compare at its positions")
    p.set_defaults(func=_cmd_sweep)


def _user_errors() -> tuple[type[BaseException], ...]:
    """What a user fixes by pointing at another file or value: :class:`UserError` (config, checkpoint,
    list, class names, budget), a video the decoder refuses, a path that is not there or not readable."""
    from video_iared.data.video import VideoDecodeError

    return (UserError, VideoDecodeError, FileNotFoundError, IsADirectoryError, NotADirectoryError,
            PermissionError)


def video_folders(videos: list[str], out: Path) -> list[Path]:
    """The output folder of each rendered video: ``out`` for one, ``out/<file name>`` for several; two
    videos with the same file name are an error (the second would overwrite the first)."""
    if len(videos) == 1:
        return [out]
    seen: dict[str, str] = {}
    for video in videos:
        stem = Path(video).stem
        if stem in seen:
            raise UserError(f"{seen[stem]} and {video} would both be written to {out / stem}: render them "
                            "with separate --out folders, or rename one")
        seen[stem] = video
    return [out / Path(video).stem for video in videos]


def _cmd_interpret(args: argparse.Namespace) -> int:
    from video_iared.interpret import run
    from video_iared.predict import load_model, read_class_names

    loaded = load_model(args.checkpoint, config=args.config, overrides=args.overrides)
    if args.video:
        folders = video_folders(args.video, Path(args.out or "interpret_output"))
        names = read_class_names(args.classes, loaded.cfg, loaded.model_num_classes, trained=loaded.classes,
                                 checkpoint=loaded.source)
        for video, folder in zip(args.video, folders):  # one process for all: the model loads once
            paths = run.explain_video(loaded, video, folder, class_names=names, fmt=args.format,
                                      block=args.block)
            print("\n".join(f"{kind:<9s} {path}" for kind, path in paths.items()))
        return 0
    batches = run.mask_batches(loaded, max_items=args.max_items, batch_size=args.batch_size,
                               imagenet_seg=args.imagenet_seg)
    results = run.evaluate_masks(loaded, batches, block=args.block)
    json_path, table_path = run.write_results(results, args.out or loaded.cfg.run.output_dir)
    print(run.format_table(results))
    print(f"written: {json_path}, {table_path}")
    return 0


def _register_interpret(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("interpret", help="heatmaps of the interpreters, raw attention and rollout: renders "
                       "for one video (--video) or segmentation scores against mask sidecars (--eval-masks)")
    _add_config_args(p)
    p.add_argument("--checkpoint", required=True, help="this project's checkpoint, or an official .pyth")
    job = p.add_mutually_exclusive_group(required=True)
    job.add_argument("--video", nargs="+", help="render these videos: heatmaps.mp4|gif, heatmaps.png, "
                     "heatmaps.json in --out (several videos: in --out/<video name>/)")
    job.add_argument("--eval-masks", action="store_true",
                     help="score every method on the val list's x.masks.npz sidecars (Chefer et al. "
                          "protocol): interpretability.json and interpretability.md")
    job.add_argument("--imagenet-seg", metavar="GTSEGS_MAT",
                     help="the same scores on ImageNet-Segmentation (gtsegs_ijcv.mat) for image models")
    p.add_argument("--out", help="output folder (default: interpret_output, or run.output_dir for scores)")
    p.add_argument("--format", choices=["mp4", "gif"], default="mp4", help="overlay animation format")
    p.add_argument("--classes", help="class names: JSON list, {'classes': [...]} or {name: id}")
    p.add_argument("--block", type=int, default=-1, help="block whose CLS attention is the raw-attention map")
    p.add_argument("--max-items", type=int, help="score only the first N videos (or images)")
    p.add_argument("--batch-size", type=int, default=8)
    p.set_defaults(func=_cmd_interpret)


def _cmd_predict(args: argparse.Namespace) -> int:
    from video_iared.predict import (format_prediction, load_model, predict_clip, read_class_names,
                                     read_video, save_features)

    loaded = load_model(args.checkpoint, config=args.config, overrides=args.overrides)
    names = read_class_names(args.classes, loaded.cfg, loaded.model_num_classes, trained=loaded.classes,
                             checkpoint=loaded.source)
    prediction = predict_clip(loaded, read_video(args.video, loaded.spec))
    print(f"{args.video}: {loaded.cfg.model.name}, {loaded.spec.num_frames} frames at "
          f"{loaded.spec.crop_size}px (centre view)")
    print(format_prediction(prediction, names))
    if args.features:
        print(f"features {tuple(prediction.features.shape)} -> {save_features(prediction, args.features)}")
    return 0


def _register_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify one video: top-5 classes, GFLOPs spent, kept share; "
                       "--features saves its CLS features (official TimeSformer checkpoints too)")
    p.add_argument("video", help="the video file (anything FFmpeg reads)")
    _add_config_args(p)
    p.add_argument("--checkpoint", required=True, help="this project's checkpoint, or an official .pyth")
    p.add_argument("--classes", help="class names: JSON list, {'classes': [...]} or {name: id}")
    p.add_argument("--features", metavar="OUT.npy", help="save the normed CLS features (D,) as float32")
    p.set_defaults(func=_cmd_predict)


def _register_demo(sub: argparse._SubParsersAction) -> None:
    from video_iared import demo

    p = sub.add_parser("demo", help="the whole pipeline on a generated synthetic dataset, with a report")
    demo.add_arguments(p)
    p.set_defaults(func=demo.run)


def _register_frontier(sub: argparse._SubParsersAction) -> None:
    from video_iared import frontier

    p = sub.add_parser("frontier", help="IA-RED2 against random, CLS top-k, ToMe and the actor-mask oracle "
                       "on the clutter set over seeds: FRONTIER.md, frontier.png")
    frontier.add_arguments(p)
    p.set_defaults(func=frontier.run)


_REGISTRARS: list[Callable[[argparse._SubParsersAction], None]] = [
    _register_flops, _register_train, _register_evaluate, _register_calibrate, _register_sweep,
    _register_interpret, _register_predict, _register_demo, _register_frontier]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="video-iared",
        description="IA-RED2 for video transformers: train, evaluate, sweep, interpret, predict, flops.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _REGISTRARS:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # argparse gives all positionals of a command one slot, so ``predict x.mp4 --checkpoint C a=b``
    # would reject ``a=b`` after the option: key=value words left over are the command's overrides
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or any(word.startswith("-") or "=" not in word for word in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    try:
        return args.func(args)
    except Interrupted as err:
        print(f"video-iared {args.command}: {err}", file=sys.stderr)
        return err.exit_status
    except KeyboardInterrupt:  # Ctrl-C outside training, or a second one during it: nothing to save
        print(f"\nvideo-iared {args.command}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except _user_errors() as err:
        kind = "config error: " if isinstance(err, ConfigError) else ""
        print(f"video-iared {args.command}: {kind}{' '.join(str(err).split())}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
