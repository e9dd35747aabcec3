"""An evaluation session: this process's place in the job, the checkpoint loaded strictly, and the
multi-view test loader (with the views' actor masks on request: the sweep's oracle rows) — what every
evaluation pass (``evaluate``, each point of ``sweep``) needs."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch
from torch import Tensor, nn

from video_iared.config import Config
from video_iared.data.kinetics import VideoDataset
from video_iared.data.transforms import normalize_on_device

from . import distributed
from .datasets import InputSpec, build_dataset, build_loader, input_spec
from .harness import Batch
from .loading import load_for_inference
from .sampler import ResumableSampler

__all__ = ["EvalSession", "evaluation_session", "test_loader"]


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

    def reload(self) -> None:
        self.dataset, self.batches = test_loader(self.cfg, self.env, self.device, with_masks=self.with_masks)

    def prepare(self, clip: Tensor) -> Tensor:
        """uint8 clip -> normalised float clip on the device (normalised as late as possible)."""
        return normalize_on_device(clip.to(self.device), self.spec.mean, self.spec.std)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()


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
        model = load_for_inference(cfg, checkpoint, device)
        yield EvalSession(cfg, env, device, model, input_spec(cfg), *views, with_masks=with_masks)
    finally:
        distributed.teardown()
