"""The training engine: one entry, :func:`train`, for a CPU, one GPU, torchrun and SLURM.

``train(cfg)`` runs the stage ``cfg.iared.stage`` (``backbone`` | ``interpreters`` | ``finetune``,
see :mod:`.stages`) for ``cfg.optim.epochs`` epochs into ``cfg.run.output_dir`` and returns the
final validation metrics. The SLURM launcher calls exactly this function; a requeued or restarted
job calls it again with the same config and continues from the latest checkpoint.

Exact resume: a checkpoint (every ``run.ckpt_every_steps`` optimiser steps and at each epoch end)
holds the model, optimiser, scheduler, AMP scaler, EMA, REINFORCE baseline, every rank's RNG states
and the position in the epoch. The data order is a function of (seed, epoch), the augmentation of
(seed, epoch, index), and DataLoader workers draw from their own generator, so a resumed run
consumes the same items with the same augmentation and the same drop-path / token-sampling draws.
"""
from __future__ import annotations

import contextlib
import json
import random
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from video_iared.config import Config, ConfigError
from video_iared.errors import Interrupted
from video_iared.data.files import atomic_write_text
from video_iared.data.transforms import clips_to_device
from video_iared.flops import shape_of
from video_iared.models.build import build_model
from video_iared.models.iared import backbone_of
from video_iared.models.registry import model_defaults

from . import checkpoint as ckpt
from . import distributed, policy
from .data_wait import DataWait, available_cores, input_bound_verdict
from .interrupt import StopSignals
from .loading import CLASSES_KEY, check_classes, check_labels, checkpoint_classes, load_start_weights
from .datasets import build_dataset, build_loader, input_spec, loader_seed
from .run_log import RunLogger
from .optim import build_optimizer, build_scheduler
from .sampler import ResumableSampler, videos_per_batch
from .stages import (backbone_loss, check_stage, finetune_loss, interpreter_loss, set_trainable,
                     stage_info)
from .validate import validate

__all__ = ["train", "check_config"]


def check_config(cfg: Config, device: torch.device) -> None:
    """Fail before any work (model, data) on settings the engine cannot honour."""
    if cfg.run.amp == "fp16" and device.type != "cuda":
        raise ConfigError("run.amp=fp16 needs CUDA (GradScaler); use run.amp=bf16 on CPU")
    if min(cfg.optim.accum_steps, cfg.data.batch_size, cfg.optim.epochs, cfg.run.log_every,
           cfg.run.eval_every_epochs) < 1:
        raise ConfigError("optim.accum_steps, optim.epochs, data.batch_size, run.log_every and "
                          "run.eval_every_epochs must be >= 1")
    if cfg.iared.decision == "calibrated":
        raise ConfigError("iared.decision=calibrated is fitted after training (video-iared calibrate on the "
                          "fine-tuned checkpoint); train and validate with iared.decision=budget")
    if cfg.iared.stage != "interpreters" and cfg.iared.curriculum_epochs:
        raise ConfigError("iared.curriculum_epochs applies to the interpreters stage only")
    check_curriculum_length(cfg.iared.curriculum_epochs, cfg.optim.epochs)
    if cfg.iared.rollouts < 1 or (cfg.iared.baseline == "leave_one_out" and cfg.iared.rollouts < 2):
        raise ConfigError(f"iared.rollouts={cfg.iared.rollouts}: need >= 1, and >= 2 for "
                          "iared.baseline=leave_one_out (it compares a clip's rollouts)")
    if not 0.0 <= cfg.optim.ema_decay < 1.0:
        raise ConfigError("optim.ema_decay must be in [0, 1); 0 turns EMA off")
    try:
        depth = model_defaults(cfg.model.name)["depth"]
    except KeyError as err:
        raise ConfigError(f"model.name: {err.args[0]}") from err
    check_stage(cfg, depth)


def check_curriculum_length(curriculum_epochs: list[int], epochs: int) -> None:
    """Stop when the curriculum switches a group on at an epoch the run never reaches: that group's
    interpreter would stay at its initialisation while the run reports success."""
    late = [start for start in curriculum_epochs if start >= epochs]
    if late:
        raise ConfigError(f"iared.curriculum_epochs {list(curriculum_epochs)} starts {len(late)} of "
                          f"{len(curriculum_epochs)} interpreter groups at epoch {min(late)} or later "
                          f"(0-based), but optim.epochs={epochs}: they would never train; set "
                          f"optim.epochs >= {max(late) + 1} or start them earlier")


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _Trainer:
    """The state of one run; :meth:`fit` is the loop."""

    def __init__(self, cfg: Config, env: distributed.DistEnv, device: torch.device,
                 stop: StopSignals | None = None) -> None:
        self.cfg, self.env, self.device = cfg, env, device
        self.stop, self.stopping = stop or StopSignals(), False
        self.stage = cfg.iared.stage
        self.out = Path(cfg.run.output_dir)
        _seed_all(cfg.run.seed)  # the same initial weights on every rank
        # the deployed decision is the model's default, for fine-tuning and validation
        self.model = build_model(cfg.model, load=False, decision=cfg.iared)
        start_classes: list[str] = []
        if cfg.model.weights:
            report, start_classes = load_start_weights(self.model, cfg)
            if env.is_main:
                tqdm.write(f"model.weights: {report}")
        self.model.to(device)
        self.spec = input_spec(cfg)
        shape = shape_of(backbone_of(self.model))
        self.info = stage_info(cfg, shape.depth, shape.num_frames * shape.num_patches)
        set_trainable(self.model, self.stage)
        self.ema = None
        if cfg.optim.ema_decay:
            from timm.utils import ModelEmaV3

            self.ema = ModelEmaV3(self.model, decay=cfg.optim.ema_decay)
        self.net: nn.Module = self.model
        if env.distributed:
            self.net = DistributedDataParallel(
                self.model, device_ids=[env.local_rank] if device.type == "cuda" else None,
                find_unused_parameters=self.stage == "interpreters")  # curriculum: later groups idle

        batch = cfg.data.batch_size
        self.train_set = build_dataset(cfg, "train", self.spec)
        self.val_set = build_dataset(cfg, "val", self.spec)
        self.classes = self._check_data(start_classes)
        self.sampler = ResumableSampler(len(self.train_set), num_replicas=env.world_size, rank=env.rank,
                                        seed=cfg.run.seed, shuffle=True)
        val_sampler = ResumableSampler(len(self.val_set), num_replicas=env.world_size, rank=env.rank,
                                       shuffle=False)
        pin = device.type == "cuda"
        # batch_size counts clips; a loader batch is videos, each giving data.num_samples clips
        self.videos_per_batch = videos_per_batch(batch, cfg.data.num_samples)
        workers = dict(num_workers=cfg.data.num_workers, prefetch_factor=cfg.data.prefetch_factor,
                       persistent_workers=cfg.data.persistent_workers, pin_memory=pin)
        self.loader = build_loader(self.train_set, self.sampler, batch_size=self.videos_per_batch,
                                   drop_last=True, **workers)
        self.val_loader = build_loader(self.val_set, val_sampler, batch_size=batch, drop_last=False,
                                       **workers)
        self.data_wait = DataWait()
        self.accum = cfg.optim.accum_steps
        self.steps_per_epoch = len(self.sampler) // self.videos_per_batch // self.accum
        if self.steps_per_epoch < 1:
            raise ConfigError(
                f"an epoch must hold at least one optimiser step: {len(self.train_set)} training videos give "
                f"{len(self.sampler)} per process ({env.world_size} processes), fewer than a step's "
                f"{self.videos_per_batch * self.accum} (data.batch_size={batch}, optim.accum_steps="
                f"{self.accum}); lower data.batch_size or optim.accum_steps")
        self.global_batch = batch * env.world_size * self.accum
        self.optimizer = build_optimizer(self.model, cfg.optim, self.global_batch)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler(device.type, enabled=cfg.run.amp == "fp16")
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.run.amp)
        self.baseline = policy.RunningMean(cfg.iared.baseline_momentum)
        self.epoch = self.step_in_epoch = self.global_step = 0
        self.last_checkpoint: Path | None = None
        resumed = self._resume()
        if not resumed:
            _seed_all(cfg.run.seed + 1 + env.rank)  # per-rank streams for drop path and sampling
        # a fresh run also drops the rows of an earlier attempt that stopped before its first checkpoint
        self.logger = RunLogger(self.out, enabled=env.is_main, resume_step=self.global_step)
        if env.is_main:
            cfg.save(self.out / "config.yaml")

    def _check_data(self, start_classes: list[str]) -> list[str]:
        """The training set's class names, checked against the model and ``model.weights``' classes."""
        cfg, names = self.cfg, self.train_set.info.class_names
        where = f"classes.json of data.root={cfg.data.root}"
        if len(names) > cfg.model.num_classes:
            raise ConfigError(f"{where} names {len(names)} classes but model.num_classes="
                              f"{cfg.model.num_classes}: set model.num_classes={len(names)}")
        check_labels(self.train_set.labels, cfg.model.num_classes, where="data.train_list")
        if not cfg.model.reset_head:
            check_classes(start_classes, names, checkpoint=f"model.weights={cfg.model.weights}", where=where)
        return list(names)

    # -- checkpoints ------------------------------------------------------------------------------
    def _resume(self) -> bool:
        """Load ``run.resume`` (``auto``: this run's own checkpoint, if any). True when resumed."""
        source = self.cfg.run.resume
        path = ckpt.find_checkpoint(self.out) if source == "auto" else Path(source)
        if path is None:
            return False
        if not path.is_file():
            raise ConfigError(f"run.resume={source}: no such checkpoint")
        state = ckpt.load_checkpoint(path)
        check_classes(checkpoint_classes(state), self.classes, checkpoint=str(path),
                      where=f"classes.json of data.root={self.cfg.data.root}")
        if state["stage"] != self.stage:
            raise ConfigError(f"{path} is a {state['stage']} checkpoint but iared.stage={self.stage}; "
                              "start a new stage in a new output_dir with model.weights pointing at it")
        same_world = state["world_size"] == self.env.world_size
        if state["step_in_epoch"] and not same_world:
            raise ConfigError(f"{path} was written mid-epoch by {state['world_size']} processes; resume it "
                              f"with the same number (got {self.env.world_size}) or from an epoch end")
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as err:
            raise ConfigError(f"{path} holds a different model than this config builds "
                              f"({self.cfg.model.name}, {self.cfg.model.num_classes} classes, interpreters "
                              f"{self.cfg.model.group_starts}); run.output_dir belongs to another run: "
                              f"choose a new output_dir (or run.resume=<path> of a matching checkpoint).\n"
                              f"{err}") from err
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.baseline.load_state_dict(state["baseline"])
        if self.ema is not None:
            self.ema.module.load_state_dict(state["ema"])
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.global_step = state["global_step"]
        if same_world:
            ckpt.set_rng_state(state["rng"][self.env.rank])
        else:
            _seed_all(self.cfg.run.seed + 1 + self.env.rank + 7919 * self.global_step)
        self.last_checkpoint = path
        if self.env.is_main:
            tqdm.write(f"resumed from step {self.global_step} (epoch {self.epoch + 1}): {path}")
        return True

    def save(self) -> None:
        """Checkpoint the current step (every rank takes part: RNG states are gathered)."""
        rng = distributed.all_gather_objects(ckpt.rng_state())
        if self.env.is_main:
            path = ckpt.checkpoint_path(self.out)
            ckpt.save_checkpoint({
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "ema": self.ema.module.state_dict() if self.ema is not None else None,
                "baseline": self.baseline.state_dict(), "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                "world_size": self.env.world_size, "rng": rng, "stage": self.stage,
                "config": self.cfg.to_dict(), CLASSES_KEY: self.classes}, path)
            self.last_checkpoint = path
        distributed.barrier()

    # -- stopping on SIGINT / SIGTERM --------------------------------------------------------------
    def _should_stop(self) -> bool:
        """Whether any process received a stop signal (every process takes part, so all stop together)."""
        flag = self.stop.requested
        if self.env.distributed:
            flag = distributed.all_reduce_mean(torch.tensor([float(flag)], device=self.device)).item() > 0
        self.stopping = self.stopping or flag
        return self.stopping

    def _until_stopped(self, batches: Any) -> Any:
        """``batches`` until they end, or until the loader fails because a stop signal also reached its
        workers (SIGTERM to the process group): the step boundary before it is saved."""
        iterator = iter(batches)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except RuntimeError:
                if not self.stop.requested:
                    raise
                self.stopping = True
                return
            yield batch

    def _save_and_stop(self, saved: bool = False) -> None:
        """Checkpoint the last completed optimiser step (unless just ``saved``); raise ``Interrupted``."""
        if not saved:
            self.step_in_epoch -= self.step_in_epoch % self.accum  # micro-batches since the step: redone
            self.save()
        self.logger.close()
        signum = self.stop.signum or signal.SIGTERM
        raise Interrupted(f"{signal.Signals(signum).name}: stopped at step {self.global_step} (epoch "
                          f"{self.epoch + 1}); checkpoint saved to {ckpt.checkpoint_path(self.out)}; run the "
                          "same command to resume", signum)

    # -- steps --------------------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _loss(self, clips: torch.Tensor, labels: torch.Tensor, active: int) -> tuple[torch.Tensor, dict]:
        smoothing = self.cfg.optim.label_smoothing
        if self.stage == "backbone":
            return backbone_loss(self.net, clips, labels, smoothing, self.info)
        if self.stage == "finetune":
            return finetune_loss(self.net, clips, labels, smoothing, self.info, self.cfg.iared.decision)
        return interpreter_loss(self.net, clips, labels, active=active, info=self.info,
                                wrong_penalty=self.cfg.iared.wrong_penalty,
                                baseline_kind=self.cfg.iared.baseline, running=self.baseline,
                                rollouts=self.cfg.iared.rollouts)

    def _check_finite(self, loss: float) -> None:
        if not torch.isfinite(torch.tensor(loss)):
            last = self.last_checkpoint or "none yet"
            raise FloatingPointError(
                f"loss is {loss} at optimiser step {self.global_step + 1} (epoch {self.epoch}, "
                f"micro-batch {self.step_in_epoch}); stopping. Last good checkpoint: {last}")

    def _optimizer_step(self) -> None:
        if self.cfg.optim.clip_grad:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad],
                                     self.cfg.optim.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.global_step += 1

    def train_epoch(self) -> None:
        cfg, epoch = self.cfg, self.epoch
        active = (policy.active_groups(epoch, cfg.iared.curriculum_epochs, self.info.num_groups)
                  if self.stage == "interpreters" else self.info.num_groups)
        # the interpreters stage learns against the deployed (eval-mode) backbone
        self.net.train(self.stage != "interpreters")
        self.sampler.set_epoch(epoch)
        self.train_set.set_epoch(epoch)
        self.sampler.set_start(self.step_in_epoch * self.videos_per_batch)
        failed_before = self.train_set.failure_log.events
        self.loader.generator.manual_seed(loader_seed(cfg.run.seed, epoch))
        micro_batches = self.steps_per_epoch * self.accum
        bar = tqdm(total=self.steps_per_epoch, initial=self.step_in_epoch // self.accum,
                   desc=f"{self.stage} epoch {epoch + 1}/{cfg.optim.epochs}", disable=not self.env.is_main,
                   dynamic_ncols=True)
        window: list[torch.Tensor] = []
        tick = time.perf_counter()
        for index, batch in enumerate(self._until_stopped(self.data_wait.batches(self.loader)),
                                      start=self.step_in_epoch):
            if index >= micro_batches:
                break
            clips = clips_to_device(batch["clip"], self.device, size=self.spec.crop_size, mean=self.spec.mean,
                                    std=self.spec.std)
            labels = batch["label"].to(self.device, non_blocking=True)
            sync = (index + 1) % self.accum == 0
            no_sync = self.net.no_sync if self.env.distributed and not sync else contextlib.nullcontext
            with no_sync():
                with self._autocast():
                    loss, stats = self._loss(clips, labels, active)
                values = distributed.all_reduce_mean(torch.stack([loss.detach().float(),
                                                                  *[v.float() for v in stats.values()]]))
                self._check_finite(values[0].item())
                self.scaler.scale(loss / self.accum).backward()
            window.append(values.cpu())
            self.step_in_epoch = index + 1
            if not sync:
                continue
            lr = self.optimizer.param_groups[0]["lr"]
            self._optimizer_step()
            bar.update(1)
            if self.global_step % cfg.run.log_every == 0 or self.step_in_epoch == micro_batches:
                mean = torch.stack(window).mean(0).tolist()
                rate = len(window) * self.global_batch / self.accum / (time.perf_counter() - tick)
                wait = self.data_wait.window_share()
                scalars = {"loss": mean[0], **dict(zip(stats, mean[1:])), "lr": lr, "clips_per_s": rate,
                           "data_wait": wait}
                self.logger.log("train", epoch=epoch, step=self.global_step, **scalars)
                bar.set_postfix(loss=f"{mean[0]:.4f}", lr=f"{lr:.2e}", clips_s=f"{rate:.1f}",
                                data_wait=f"{100 * wait:.0f}%")
                window, tick = [], time.perf_counter()
            if cfg.run.ckpt_every_steps and self.global_step % cfg.run.ckpt_every_steps == 0 \
                    and self.step_in_epoch < micro_batches:
                self.save()
            if self._should_stop():
                break
        bar.close()
        replaced = self.train_set.failure_log.events - failed_before  # this process's workers only
        if replaced:
            self.logger.log("train", epoch=epoch, step=self.global_step, replaced_videos=replaced)
            tqdm.write(f"epoch {epoch + 1}: {replaced} unreadable training videos replaced by random others "
                       f"(listed in the log; data_prep/check_videos.py finds them all)")
        if self.stopping:
            self._save_and_stop()

    def validate(self) -> dict[str, float]:
        active = (policy.active_groups(self.epoch, self.cfg.iared.curriculum_epochs, self.info.num_groups)
                  if self.stage == "interpreters" else self.info.num_groups)
        models = {"": self.model} | ({"ema_": self.ema.module} if self.ema is not None else {})
        metrics: dict[str, float] = {}
        for prefix, model in models.items():
            result = validate(model, self.val_loader, spec=self.spec, device=self.device,
                              autocast=self._autocast, info=self.info, active=active,
                              decision=self.cfg.iared.decision, rank=self.env.rank,
                              world_size=self.env.world_size)
            metrics.update({prefix + key: value for key, value in result.items()})
        return metrics

    def fit(self) -> dict[str, Any]:
        cfg = self.cfg
        metrics: dict[str, float] = {}
        while self.epoch < cfg.optim.epochs:
            self.train_epoch()
            last = self.epoch + 1 == cfg.optim.epochs
            if last or (self.epoch + 1) % cfg.run.eval_every_epochs == 0:
                metrics = self.validate()
                self.logger.log("val", epoch=self.epoch, step=self.global_step, **metrics)
                if self.env.is_main:
                    tqdm.write(f"{self.stage} epoch {self.epoch + 1}: "
                               + "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
            self.epoch, self.step_in_epoch = self.epoch + 1, 0
            self.save()
            if self._should_stop() and self.epoch < cfg.optim.epochs:
                self._save_and_stop(saved=True)
        if not metrics:  # resumed after the last epoch's checkpoint: report the final model
            metrics = self.validate()
        self.logger.close()
        if self.env.is_main and self.data_wait.run_total:
            data = cfg.data
            tqdm.write(input_bound_verdict(self.data_wait.run_share, num_workers=data.num_workers,
                                           cores=available_cores(), format=data.format,
                                           augment_on=data.augment_on, num_samples=data.num_samples))
        result = {"stage": self.stage, "epochs": cfg.optim.epochs, "global_step": self.global_step,
                  "checkpoint": str(ckpt.checkpoint_path(self.out)), **metrics}
        if self.env.is_main:  # marks the stage finished (the demo and scripts look for it)
            atomic_write_text(self.out / "final_metrics.json", json.dumps(result, indent=1) + "\n")
        return result


def train(cfg: Config) -> dict[str, Any]:
    """Run ``cfg.iared.stage`` to the end of ``cfg.optim.epochs`` (resuming when ``run.output_dir``
    holds a checkpoint) and return the final validation metrics: ``top1`` (clip, %), ``gflops`` per
    view and, with interpreters, ``kept_share`` (block-weighted) and ``kept_share_g*``.

    Distributed setup comes from the environment (torchrun, submitit/SLURM, or a single process).
    """
    env = distributed.detect()
    device = distributed.resolve_device(cfg.run.device)
    check_config(cfg, device)
    owns_group = not torch.distributed.is_initialized()
    distributed.setup(env, device)
    if device.type == "cuda":
        device = torch.device("cuda", env.local_rank)
    try:
        with StopSignals() as stop:
            return _Trainer(cfg, env, device, stop).fit()
    finally:
        if owns_group:
            distributed.teardown()
