"""Loading weights into TimeSformer (and IA-RED² models): official ``.pyth`` checkpoints, ImageNet
ViT/DeiT weights (inflated as in the official recipe) and the project's own checkpoints.

Files are read with ``torch.load(weights_only=True)`` (or safetensors): a pickle that carries code is
refused, never executed.
"""
from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from timm.layers import resample_abs_pos_embed
from torch import Tensor, nn

from video_iared.errors import UserError

from .iared import backbone_of
from .timesformer import resize_time_embed

StateDict = dict[str, Tensor]

_PREFIXES = ("module.", "model.")   # DDP wrapper; official .pyth ``model_state`` keys


class WeightsError(UserError, RuntimeError):
    """A checkpoint that cannot be read, or does not fit the model."""


_ZIP_MAGIC, _PICKLE_MAGIC = b"PK\x03\x04", b"\x80"  # torch.save's zip format; its legacy pickle format


def _check_format(path: Path) -> bool:
    """Refuse a file that is neither of torch.save's formats before torch.load's cryptic messages: a
    web page saved instead of the file it links to, a text file, an empty download."""
    with open(path, "rb") as handle:
        head = handle.read(64)
    if head.startswith((_ZIP_MAGIC, _PICKLE_MAGIC)):
        return
    if not head:
        raise WeightsError(f"{path} is empty; download or copy the checkpoint again")
    text = head.lstrip().lower()
    if text.startswith(b"<"):  # <!DOCTYPE html>, <html>, <?xml ...>
        raise WeightsError(f"{path} is a web page, not a checkpoint: download the file itself (the link's "
                           "raw or download address), not the page that shows it")
    raise WeightsError(f"{path} is not a checkpoint (neither torch.save's zip nor its pickle format; it "
                       f"starts with {head[:16]!r})")


@dataclass
class LoadReport:
    """What :func:`load_weights` did with every key (model keys unless said otherwise)."""

    source: str
    loaded: list[str] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)      # interpolated to the model's grid / frames
    inflated: list[str] = field(default_factory=list)     # created from image weights or zeroed
    missing: list[str] = field(default_factory=list)      # left at the model's initialisation
    unexpected: list[str] = field(default_factory=list)   # checkpoint keys not used

    def __str__(self) -> str:
        parts = [f"{self.source}: {len(self.loaded)} loaded"]
        for name in ("resized", "inflated", "missing", "unexpected"):
            keys = getattr(self, name)
            if keys:
                parts.append(f"{len(keys)} {name} ({', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''})")
        return "; ".join(parts)


def read_checkpoint(path: str | Path, *, mmap: bool = False) -> Mapping:
    """Load a ``.safetensors`` file or a torch pickle restricted to tensors and plain containers
    (``mmap``: tensors stay on disk until used, for reading only a checkpoint's config)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no checkpoint at {path}" + (" (a folder)" if path.is_dir() else ""))
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    is_zip = _check_format(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and is_zip)
    except pickle.UnpicklingError as err:
        if "weights_only" not in str(err) and "Weights only" not in str(err):
            raise WeightsError(f"{path} is not a checkpoint torch can read ({_first_line(err)})") from err
        raise WeightsError(
            f"{path} holds Python objects beyond tensors and containers, which torch.load(weights_only=True) "
            f"refuses to unpickle because unpickling can run arbitrary code. If you trust the file, re-save "
            f"only its state dict (torch.save(obj['model_state'], ...)) and load that. "
            f"({_first_line(err)})") from err
    except (RuntimeError, EOFError, KeyError, OSError) as err:  # a truncated or damaged file
        raise WeightsError(f"{path} is damaged or cut short; copy it again "
                           f"({type(err).__name__}: {_first_line(err)})") from err


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(err).__name__


def extract_state_dict(checkpoint: Mapping) -> tuple[StateDict, str]:
    """Find the model weights in a checkpoint and strip wrapper prefixes -> (state dict, source)."""
    for key, source in (("model_state", "official TimeSformer checkpoint"), ("model", "checkpoint['model']"),
                        ("state_dict", "checkpoint['state_dict']")):
        if isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    else:
        source = "state dict"
    state = {}
    for key, value in checkpoint.items():
        if not isinstance(value, Tensor):
            raise WeightsError(f"{source}: entry {key!r} is a {type(value).__name__}, not a tensor")
        for prefix in _PREFIXES:
            key = key.removeprefix(prefix)
        state[key] = value
    return state, source


def is_image_model(state: StateDict) -> bool:
    """An ImageNet ViT/DeiT state dict: blocks, but neither time embedding nor temporal attention."""
    return "time_embed" not in state and not any(".temporal_" in k for k in state)


def inflate_image_weights(state: StateDict, model_state: StateDict) -> tuple[StateDict, list[str]]:
    """ViT/DeiT -> TimeSformer (official recipe): ``attn -> temporal_attn``, ``norm1 -> temporal_norm1``,
    ``temporal_fc`` and ``time_embed`` zero, so the inflated model equals the image model frame by frame."""
    state, inflated = dict(state), []
    for key in model_state:
        if key in state:
            continue
        source = re.sub(r"\.temporal_(attn|norm1)\.", r".\1.", key)
        if source != key and source in state:
            state[key] = state[source].clone()
        elif ".temporal_fc." in key or key == "time_embed":
            state[key] = torch.zeros_like(model_state[key])
        else:
            continue
        inflated.append(key)
    return state, inflated


def _fit_to_model(state: StateDict, model_state: StateDict, report: LoadReport, new_head: bool) -> StateDict:
    """Resize embeddings; drop the head (it stays at its initialisation) when ``new_head``, or when it comes
    from image weights (ImageNet classes are never a video task's); another class count is an error else."""
    state = dict(state)
    if "patch_embed.proj.weight" in state and state["patch_embed.proj.weight"].ndim == 2:
        # jax-style linear patch embedding -> conv (D, C*p*p) -> (D, C, p, p)
        state["patch_embed.proj.weight"] = state["patch_embed.proj.weight"].reshape(
            model_state["patch_embed.proj.weight"].shape)
    for key in ("pos_embed", "time_embed"):
        if key in state and key in model_state and state[key].shape != model_state[key].shape \
                and state[key].shape[-1] == model_state[key].shape[-1]:
            target = model_state[key].shape[1]
            if key == "pos_embed":  # the square grid, nearest (the official rule), CLS entry kept
                side = int(round((target - 1) ** 0.5))
                state[key] = resample_abs_pos_embed(state[key], [side, side], num_prefix_tokens=1,
                                                    interpolation="nearest", antialias=False)
            else:
                state[key] = resize_time_embed(state[key], target)
            report.resized.append(key)
    prefix = "backbone." if "backbone.head.weight" in model_state else ""  # a whole IA-RED² checkpoint
    head = [k for k in (prefix + "head.weight", prefix + "head.bias") if k in state and k in model_state]
    other_count = bool(head) and state[head[0]].shape != model_state[head[0]].shape
    if other_count and not (new_head or report.inflated):
        theirs, ours = state[head[0]].shape[0], model_state[head[0]].shape[0]
        raise WeightsError(f"{report.source} has a {theirs}-class head but the model has {ours} classes: set "
                           f"model.num_classes={theirs} to use it, or model.reset_head=true to train a new "
                           f"{ours}-class head")
    if head and (new_head or other_count):
        for key in head:
            del state[key]
        report.missing.extend(head)  # a new head for the new task
    return state


def load_weights(model: nn.Module, checkpoint: str | Path | Mapping, strict: bool = True, *,
                 new_head: bool = False) -> LoadReport:
    """Load official, ImageNet (inflated) or project weights into ``model``; returns a :class:`LoadReport`.

    ``checkpoint`` is a path (``.pyth``/``.pth``/``.pt``/``.safetensors``) or an already loaded mapping.
    An IA-RED² model (one with a ``backbone``) receives backbone-only checkpoints in its backbone.
    With ``strict`` a checkpoint that does not fit (shapes, keys missing or left over, beyond the
    embeddings that are resized and a new head) raises :class:`WeightsError`. The head is new (left at
    its initialisation) with ``new_head``, or when image weights of another class count are inflated; a
    head of another class count is an error otherwise, strict or not.
    """
    raw = read_checkpoint(checkpoint) if isinstance(checkpoint, (str, Path)) else checkpoint
    state, source = extract_state_dict(raw)
    target, extra_missing = model, []
    backbone = backbone_of(model)
    if backbone is not model and not any(k.startswith("backbone.") for k in state):
        target = backbone
        extra_missing = [k for k in model.state_dict() if not k.startswith("backbone.")]
    model_state = target.state_dict()
    report = LoadReport(source)
    if is_image_model(state) and not is_image_model(model_state):
        state, report.inflated = inflate_image_weights(state, model_state)
        report.source = f"{source} (image weights, inflated)"
    state = _fit_to_model(state, model_state, report, new_head)
    new_head = list(report.missing)
    report.unexpected = [k for k in state if k not in model_state]
    report.missing += [k for k in model_state if k not in state and k not in new_head]
    problems = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(model_state[k].shape)}"
                for k, v in state.items() if k in model_state and v.shape != model_state[k].shape]
    problems += [f"missing {k}" for k in report.missing if k not in new_head]
    problems += [f"unexpected {k}" for k in report.unexpected]
    if problems and strict:
        raise WeightsError(
            f"{report.source} does not fit {type(target).__name__} ({len(problems)} problems: "
            + "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
            + "): check that the model's name, embed_dim, depth and attention_type match the checkpoint")
    usable = {k: v for k, v in state.items() if k in model_state and v.shape == model_state[k].shape}
    target.load_state_dict(usable, strict=False)
    report.loaded = [k for k in usable if k not in report.resized and k not in report.inflated]
    report.missing += extra_missing
    return report
