"""One typed, layered config: defaults -> experiment YAML (with ``_base_`` files) -> ``key=value`` overrides.

Every section is a dataclass, so a misspelled key fails at load time naming the key and the nearest
valid one (DINOv2-style layering, without a global config read by constructors: only
``models.build`` and the engine read it). The resolved config is saved in each run's
output directory as ``config.yaml``.

A partial file (a stage recipe without a model) names the config it is layered on with
``_layer_on_: <path relative to the file>``: read as a ``_base_`` it is merged like any file, asked
for on its own it is a :class:`ConfigError` that says what to layer it on.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from video_iared.errors import UserError


# the packaged configs: video_iared/configs links to the checkout's configs/ and the wheel ships a copy
CONFIG_DIR = Path(__file__).parent / "configs"


class ConfigError(UserError, ValueError):
    """A config file or override that does not fit the schema."""


@dataclass
class ModelConfig:
    """Backbone and interpreters; mapped to constructor kwargs by ``models.build.build_model``."""

    name: str = "timesformer_tiny_patch8_32"
    num_classes: int = 400
    num_frames: Optional[int] = None  # None: the registered model's default
    img_size: Optional[int] = None  # None: the registered model's default
    # None: the registered model's own (image models such as DeiT take none)
    attention_type: Optional[Literal["divided_space_time", "joint_space_time", "space_only"]] = None
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.1
    # truncated-normal std of a from-scratch TimeSformer; None: 0.02 (official)
    init_std: Optional[float] = None
    weights: str = ""  # a file load_weights understands: official .pyth, timm/DeiT ImageNet, ours
    # start a new classifier head instead of loading the one in ``weights`` (fine-tuning to new classes);
    # without it a head of another class count is an error
    reset_head: bool = False
    grad_checkpointing: bool = False
    # IA-RED2: an interpreter before each listed block; empty = dense model.
    group_starts: list[int] = field(default_factory=list)
    interpreter_heads: int = 6


@dataclass
class DataConfig:
    """Video lists (official ``path label`` format) and the sampling/augmentation recipe."""

    root: str = ""  # folder holding the lists and classes.json
    train_list: str = "train.csv"
    val_list: str = "val.csv"
    test_list: str = "test.csv"
    path_prefix: str = ""  # prepended to every path in the lists
    num_frames: Optional[int] = None  # None: the model's metadata
    sampling_rate: Optional[int] = None  # None: the model's metadata
    crop_size: Optional[int] = None  # None: the model's metadata
    train_jitter_scales: list[int] = field(default_factory=list)  # [min, max] short side; empty: the model's
    test_scale: Optional[int] = None  # short side before the centre crop; None: crop * 256 / 224
    # images: the training crop's area range (random resized crop); empty: DeiT's [0.08, 1]
    crop_scale: list[float] = field(default_factory=list)
    num_ensemble_views: int = 1
    num_spatial_crops: int = 3
    batch_size: int = 8  # per process
    num_workers: int = 4
    flip: Optional[bool] = None  # None: off when classes.json says flip_sensitive
    # the input path (docs/design.md, Data path; README, Data loading)
    # frames: JPEG folders of data_prep/extract_frames.py; images: an ImageNet-layout folder
    # (root/{train,val}/CLASS/IMAGE, masks in root/masks/...), each image a one-frame clip
    format: Literal["video", "frames", "images"] = "video"
    frames_root: str = ""  # with format=frames: the tree extract_frames.py wrote (the lists stay the same)
    num_samples: int = 1  # training clips per decoded window (repeated sampling); divides batch_size
    augment_on: Literal["host", "device"] = "host"  # device: resize on the GPU in the training step
    decode_threads: int = 1  # decord threads per worker
    prefetch_factor: int = 2  # batches each worker loads ahead
    persistent_workers: bool = True  # keep workers (and their imports) across epochs


@dataclass
class OptimConfig:
    """Optimiser and schedule; defaults are the official TimeSformer K400 recipe."""

    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.005  # for ``global_batch``; scaled linearly if the real global batch differs
    global_batch: int = 64
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    schedule: Literal["step", "cosine"] = "step"
    lr_steps: list[int] = field(default_factory=lambda: [11, 14])
    lr_decay: float = 0.1
    warmup_epochs: float = 0.0
    epochs: int = 15
    label_smoothing: float = 0.0
    clip_grad: float = 0.0  # 0: off
    accum_steps: int = 1
    ema_decay: float = 0.0  # 0: off


@dataclass
class IARedConfig:
    """The paper's schedule and reward (Pan et al. 2021, Sec. 3); hyperparameters are not public."""

    stage: Literal["backbone", "interpreters", "finetune"] = "backbone"
    decision: Literal["threshold", "calibrated", "budget", "none"] = "threshold"  # at evaluation
    threshold: float = 0.5
    budget: list[float] = field(default_factory=list)  # cumulative keep ratio per group
    wrong_penalty: float = 1.0  # tau: reward of a wrong prediction is -tau
    # running_mean of R; greedy: R of the threshold rollout (self-critical); leave_one_out: mean R of
    # the clip's other sampled rollouts (needs rollouts >= 2)
    baseline: Literal["running_mean", "greedy", "leave_one_out"] = "running_mean"
    baseline_momentum: float = 0.9
    rollouts: int = 1  # sampled keep/drop rollouts per clip and step (more: lower-variance gradient)
    curriculum_epochs: list[int] = field(default_factory=list)  # epoch at which group g switches on


@dataclass
class RunConfig:
    """Where and how a run executes."""

    output_dir: str = "runs/default"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["none", "bf16", "fp16"] = "none"
    log_every: int = 10
    ckpt_every_steps: int = 0  # 0: epoch ends only
    # auto: continue from output_dir's checkpoint when there is one; or a checkpoint path
    resume: str = "auto"
    eval_every_epochs: int = 1


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    iared: IARedConfig = field(default_factory=IARedConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def _unknown_key(key: str, valid: list[str], where: str) -> ConfigError:
    near = difflib.get_close_matches(key, valid, n=1)
    hint = f"; did you mean '{near[0]}'?" if near else f"; valid keys: {', '.join(valid)}"
    return ConfigError(f"unknown config key '{where}{key}'{hint}")


def _coerce(value: Any, hint: Any, name: str) -> Any:
    """Check/convert ``value`` to the annotated type ``hint`` (the few types the schema uses)."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        if value not in typing.get_args(hint):
            choices = ", ".join(map(str, typing.get_args(hint)))
            raise ConfigError(f"config key '{name}' must be one of {choices}; got {value!r}")
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], name)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            value = [value]
        (item,) = typing.get_args(hint)[:1]
        return [_coerce(v, item, f"{name}[{i}]") for i, v in enumerate(value)]
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads ``1e-3`` (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"config key '{name}' expects {hint.__name__}, got {value!r}")


# Keys renamed for one name per idea, old -> new: read from older configs and checkpoints.
RENAMED_KEYS = {"model.interpreter_blocks": "model.group_starts"}


def _merge(section: Any, updates: dict[str, Any], where: str) -> None:
    hints = typing.get_type_hints(type(section))
    valid = [f.name for f in dataclasses.fields(section)]
    for key, value in updates.items():
        key = RENAMED_KEYS.get(where + key, where + key)[len(where):]
        if key not in hints:
            raise _unknown_key(key, valid, where)
        current = getattr(section, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{where}{key}' is a section; give it a mapping")
            _merge(current, value, f"{where}{key}.")
        else:
            setattr(section, key, _coerce(value, hints[key], where + key))


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a YAML file, resolving ``_base_`` (a path or list, relative to the file) first."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.resolve() in seen:
        raise ConfigError(f"config file {path} includes itself through _base_")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {_yaml_problem(err)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at top level")
    layer_on = data.pop("_layer_on_", None)
    if layer_on is not None and not seen:  # the file asked for, not one of another file's bases
        raise _partial(path, layer_on)
    bases = data.pop("_base_", [])
    merged: dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else bases:
        _deep_update(merged, _read_yaml(path.parent / base, seen + (path.resolve(),)))
    _deep_update(merged, data)
    return merged


def _yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's error in one line: what is wrong and where (line and column, 1-based)."""
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{getattr(err, 'problem', None) or type(err).__name__}{where}"


def _partial(path: Path, layer_on: Any) -> ConfigError:
    """The error for a partial file asked for on its own: which config to layer it on, and how."""
    if not isinstance(layer_on, str):
        return ConfigError(f"config file {path}: _layer_on_ must be a path, got {layer_on!r}")
    base = os.path.normpath(path.parent / layer_on)
    return ConfigError(f"{path} is a partial config, layered on a model config such as {base}: run a config "
                       f"that lists both (_base_: [{layer_on}, {path.name}]) instead")


def _deep_update(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_update(into[key], value)
        else:
            into[key] = value


def parse_override(text: str) -> dict[str, Any]:
    """``optim.lr=0.01`` -> ``{"optim": {"lr": 0.01}}`` (the value is parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not of the form section.key=value")
    dotted, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override '{text}': the value is not valid YAML ({_yaml_problem(err)}); "
                          "quote it") from None
    nested: dict[str, Any] = {}
    node = nested
    parts = dotted.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return nested


def config_from_dict(data: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults, then a nested mapping (a saved ``Config.to_dict()``, e.g. a checkpoint's), then overrides."""
    cfg = Config()
    _merge(cfg, data, "")
    for text in overrides:
        _merge(cfg, parse_override(text), "")
    return cfg


def config_names() -> list[str]:
    """The packaged configs' names (``tiny/backbone``, ``k400/iared/finetune``, ...), sorted."""
    return sorted(str(p.relative_to(CONFIG_DIR).with_suffix("")) for p in CONFIG_DIR.rglob("*.yaml"))


def config_path(name: str | Path) -> Path:
    """The file a ``--config`` names: a path to a YAML file, or a packaged config's name such as
    ``tiny/backbone`` (also ``tiny/backbone.yaml`` and ``configs/tiny/backbone.yaml``, the checkout's
    path, from any folder)."""
    path = Path(name)
    if path.is_file():
        return path
    rel = path if path.suffix in (".yaml", ".yml") else path.with_name(path.name + ".yaml")
    if rel.parts[:1] == ("configs",):
        rel = Path(*rel.parts[1:])
    if not rel.is_absolute() and (CONFIG_DIR / rel).is_file():
        return CONFIG_DIR / rel
    near = difflib.get_close_matches(str(rel.with_suffix("")), config_names(), n=1)
    hint = f"did you mean '{near[0]}'?" if near else f"the packaged configs are under {CONFIG_DIR}"
    raise ConfigError(f"config file not found: {name}; give a YAML path or a packaged config's name ({hint})")


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults, then the YAML file ``path`` names (a path or a packaged config's name, see
    :func:`config_path`), if any, then ``key=value`` overrides."""
    return config_from_dict(_read_yaml(config_path(path)) if path else {}, overrides)
