"""An evaluation session: this process's place in the job, the checkpoint loaded strictly, and the
multi-view test loader (with the views' actor masks on request: the sweep's oracle rows) — what every
evaluation pass (``evaluate``, each point of ``sweep``) needs."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping

import torch
from torch import Tensor, nn

from video_iared.config import Config
from video_iared.data.kinetics import VideoDataset
from video_iared.data.transforms import normalize_on_device
from video_iared.errors import UserError
from video_iared.models.weights import read_checkpoint

from . import distributed
from .datasets import InputSpec, build_dataset, build_loader, input_spec
from .harness import Batch
from .loading import check_classes, check_labels, checkpoint_classes, load_for_inference
from .sampler import ResumableSampler

__all__ = ["EvalSession", "evaluation_session", "test_loader", "check_test_set"]


def test_loader(cfg: Config, env: distributed.DistEnv, device: torch.device, *,
                with_masks: bool = False) -> tuple[VideoDataset, Iterator[Batch]]:
    """The multi-view test set and this rank's batches (in order; the last round padded by the sampler),
    with ``Batch.masks`` when ``with_masks`` (every test video needs its mask sidecar)."""
    spec = input_spec(cfg)
    dataset = build_dataset(cfg, "test", spec, with_masks=with_masks)
    sampler = ResumableSampler(len(dataset), num_replicas=env.world_size, rank=env.rank, shuffle=False)
    loader = build_loader(dataset, sampler, batch_size=cfg.data.batch_size, num_workers=cfg.data.num_workers,
                          drop_last=False, pin_memory=device.type == "cuda")
    return dataset, (Batch(b["clip"], b["label"], b["video"], b["view"], b.get("masks")) for b in loader)


@dataclass
class EvalSession:
    """What every evaluation pass needs: the process's place in the job, the loaded model, the input
    spec and the test views (``batches``: a fresh DataLoader iterator, with masks when ``with_masks``;
    reload with ``reload()``)."""

    cfg: Config
    env: distributed.DistEnv
    device: torch.device
    model: nn.Module
    spec: InputSpec
    dataset: VideoDataset
    batches: Iterable[Batch]
    with_masks: bool = False
    calibration: dict | None = None  # the thresholds ``video-iared calibrate`` saved, and their budget

    def reload(self) -> None:
        self.dataset, self.batches = test_loader(self.cfg, self.env, self.device, with_masks=self.with_masks)

    def prepare(self, clip: Tensor) -> Tensor:
        """uint8 clip -> normalised float clip on the device (normalised as late as possible)."""
        return normalize_on_device(clip.to(self.device), self.spec.mean, self.spec.std)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def check_test_set(dataset: VideoDataset, cfg: Config, checkpoint: Mapping, source: str) -> None:
    """Stop when the test set's classes are not the checkpoint's: other names in ``classes.json``, another
    class count, labels the model cannot predict. Its accuracy would be a wrong number, not a low one."""
    names, where = dataset.info.class_names, f"classes.json of data.root={cfg.data.root}"
    check_classes(checkpoint_classes(checkpoint), names, checkpoint=source, where=where)
    if len(names) > cfg.model.num_classes:
        raise UserError(f"{where} names {len(names)} classes but {source} predicts {cfg.model.num_classes}: "
                        "evaluate it on the dataset it was trained for")
    check_labels(dataset.labels, cfg.model.num_classes, where="data.test_list", model=source)


@contextlib.contextmanager
def evaluation_session(cfg: Config, checkpoint: str, *, with_masks: bool = False) -> Iterator[EvalSession]:
    """Distributed setup from the environment, ``checkpoint`` loaded strictly, the multi-view test
    loader (its batches with the actor masks when ``with_masks``); the process group is torn down on
    exit."""
    env = distributed.detect()
    device = distributed.resolve_device(cfg.run.device)
    distributed.setup(env, device)
    try:
        views = test_loader(cfg, env, device, with_masks=with_masks)  # first: a missing sidecar fails fast
        raw = read_checkpoint(checkpoint)
        check_test_set(views[0], cfg, raw, str(checkpoint))
        model = load_for_inference(cfg, raw, device, source=str(checkpoint))
        yield EvalSession(cfg, env, device, model, input_spec(cfg), *views, with_masks=with_masks,
                          calibration=raw.get("calibration"))
    finally:
        distributed.teardown()
