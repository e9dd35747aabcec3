"""Loading checkpoints: strictly for inference (evaluate, sweep, predict, interpret), by the stage's
allow-list for training (``model.weights``), and the checks that a checkpoint fits the data.

Inference is strict: a checkpoint that leaves any parameter at its initialisation — a head for another
class count, interpreters missing from a dense checkpoint — is an error that names the keys, since it
would silently run random weights. Training allows exactly what its stage creates: the interpreters in
the ``interpreters`` stage, a new head with ``model.reset_head=true`` (or under inflated ImageNet weights).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from video_iared.config import Config, ConfigError, config_from_dict, load_config
from video_iared.errors import UserError
from video_iared.models.build import build_model, check_decision
from video_iared.models.registry import list_variants, model_defaults
from video_iared.models.weights import (LoadReport, WeightsError, extract_state_dict, load_weights,
                                        read_checkpoint)

__all__ = ["CLASSES_KEY", "load_for_inference", "load_start_weights", "inference_config",
           "infer_model_overrides", "checkpoint_classes", "check_classes", "check_labels"]

CLASSES_KEY = "classes"  # checkpoint entry: the class names of the training set, by id


def load_for_inference(cfg: Config, checkpoint: str | Path | Mapping, device: torch.device | str, *,
                       source: str = "") -> nn.Module:
    """``build_model(cfg.model)`` with every weight from ``checkpoint`` (a path, or a checkpoint already
    read, named ``source`` in errors), ``cfg.iared``'s decision deployed, in eval mode on ``device``.
    Thresholds calibrated into the checkpoint (``video-iared calibrate``) come with it."""
    check_decision(cfg.iared, len(cfg.model.group_starts))   # before reading a large checkpoint
    if not isinstance(checkpoint, Mapping):
        source, checkpoint = source or str(checkpoint), read_checkpoint(checkpoint)
    calibration = checkpoint.get("calibration") if cfg.model.group_starts else None
    if calibration and len(calibration["thresholds"]) != len(cfg.model.group_starts):
        raise WeightsError(f"{source}: {len(calibration['thresholds'])} calibrated thresholds for "
                           f"{len(cfg.model.group_starts)} interpreter groups; calibrate it again")
    if cfg.iared.decision == "calibrated" and not calibration:
        raise WeightsError(f"iared.decision=calibrated: {source} holds no calibrated thresholds; run "
                           f"`video-iared calibrate --config CFG --checkpoint {source}` first")
    # every weight comes from ``checkpoint``; the deployed decision is the model's default per call
    model = build_model(cfg.model, load=False, decision=cfg.iared, calibration=calibration)
    report = load_weights(model, checkpoint, strict=True)
    if report.missing:
        raise WeightsError(
            f"{source or checkpoint} does not hold every weight of {cfg.model.name} (interpreters before "
            f"blocks {list(cfg.model.group_starts)}, {cfg.model.num_classes} classes): "
            f"missing {', '.join(report.missing[:6])}{' ...' if len(report.missing) > 6 else ''}")
    return model.to(device).eval()


def load_start_weights(model: nn.Module, cfg: Config) -> tuple[LoadReport, list[str]]:
    """Load ``cfg.model.weights`` into a training model -> (what was loaded, the checkpoint's class names).

    Allowed to stay at their initialisation: the interpreters in the ``interpreters`` stage (a
    backbone checkpoint has none) and in the dense ``backbone`` stage (unused there), and the head with
    ``model.reset_head=true``. Anything else missing or left over stops the run: the interpreters would
    train against a random head, fine-tuning would run random interpreters.
    """
    stage, source = cfg.iared.stage, cfg.model.weights
    if cfg.model.reset_head and stage == "interpreters":
        raise ConfigError("model.reset_head=true in the interpreters stage would train the interpreters "
                          "against a random, frozen head; reset the head in the backbone or finetune stage")
    raw = read_checkpoint(source)
    report = load_weights(model, raw, strict=True, new_head=cfg.model.reset_head)
    allowed_new = ("interpreters.",) if stage in ("interpreters", "backbone") else ()
    head = ("head.", "backbone.head.") if cfg.model.reset_head or "inflated" in report.source else ()
    missing = [key for key in report.missing if not key.startswith(allowed_new + head)]
    if missing:
        what = "interpreters" if all(k.startswith("interpreters.") for k in missing) else "weights"
        hint = (f"the {stage} stage needs trained interpreters: point model.weights at the interpreters "
                f"stage's checkpoint" if what == "interpreters" else "check model.name and its settings")
        raise WeightsError(f"model.weights={source} lacks {len(missing)} {what} of the model "
                           f"({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}): {hint}")
    return report, checkpoint_classes(raw) if isinstance(raw, Mapping) else []


def checkpoint_classes(checkpoint: Mapping) -> list[str]:
    """The class names a checkpoint of this project was trained on (empty for older or foreign files)."""
    names = checkpoint.get(CLASSES_KEY)
    return [str(name) for name in names] if isinstance(names, (list, tuple)) else []


def check_classes(trained: Sequence[str], found: Sequence[str], *, checkpoint: str, where: str) -> None:
    """Stop when the class names a checkpoint was trained on differ from the ones ``where`` lists (a
    ``classes.json``, a ``--classes`` file): its ids would mean other classes. Either side empty: unknown."""
    if not trained or not found or list(trained) == list(found):
        return
    if len(trained) != len(found):
        raise UserError(f"{where} lists {len(found)} classes but {checkpoint} was trained on "
                        f"{len(trained)}: use the class list it was trained with")
    first = next(i for i, (a, b) in enumerate(zip(trained, found)) if a != b)
    raise UserError(f"{where} differs from the classes {checkpoint} was trained on (class {first}: "
                    f"{found[first]!r} here, {trained[first]!r} in the checkpoint): use the class list it "
                    "was trained with")


def check_labels(labels: Sequence[int], num_classes: int, *, where: str, model: str = "the model") -> None:
    """Stop when a list holds labels the model cannot predict (a list of another dataset)."""
    top = max(labels, default=-1)
    if top >= num_classes:
        raise UserError(f"{where} has labels up to {top} but {model} predicts {num_classes} classes "
                        f"(model.num_classes): a list of another dataset, or the wrong model.num_classes")


def inference_config(checkpoint: Mapping, *, config: str | None = None,
                     overrides: Sequence[str] = ()) -> Config:
    """The config to run a checkpoint with: ``config`` (a YAML file), else the one saved in the checkpoint,
    else one inferred from its weights (:func:`infer_model_overrides`); ``overrides`` apply on top."""
    if config:
        return load_config(config, list(overrides))
    if isinstance(checkpoint.get("config"), dict):
        return config_from_dict(checkpoint["config"], list(overrides))
    state, _ = extract_state_dict(checkpoint)
    return load_config(None, [*infer_model_overrides(state), *overrides])


def infer_model_overrides(state: Mapping[str, torch.Tensor]) -> list[str]:
    """``model.*`` overrides that fit a state dict with no config (official ``.pyth``, timm ViT).

    Class count, frames, image size and attention type are read off the weight shapes; the name is
    the registered variant with the same patch size, width and depth (the closest image size first).
    """
    try:
        proj = state["patch_embed.proj.weight"]
        classes = state["head.weight"].shape[0]
        grid = round((state["pos_embed"].shape[1] - 1) ** 0.5)
    except KeyError as err:
        raise WeightsError(f"not a TimeSformer/ViT checkpoint: no {err.args[0]} weight") from None
    dim, patch = proj.shape[0], proj.shape[-1]
    depth = len({key.split(".")[1] for key in state if key.startswith("blocks.")})
    img_size = grid * patch
    shapes = {name: model_defaults(name) for name in list_variants()}
    candidates = [name for name, kw in shapes.items()
                  if (kw.get("patch_size"), kw.get("embed_dim"), kw.get("depth")) == (patch, dim, depth)]
    if not candidates:
        raise WeightsError(f"no registered model has patch {patch}, width {dim} and depth {depth}; "
                           "pass --config naming one")
    name = min(candidates, key=lambda n: abs(shapes[n].get("img_size", img_size) - img_size))
    if any(".temporal_attn." in key for key in state):
        attention = "divided_space_time"
    else:
        attention = "joint_space_time" if "time_embed" in state else "space_only"
    overrides = [f"model.name={name}", f"model.num_classes={classes}", f"model.img_size={img_size}",
                 f"model.attention_type={attention}"]
    if "time_embed" in state:
        overrides.append(f"model.num_frames={state['time_embed'].shape[1]}")
    return overrides
