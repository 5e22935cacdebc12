"""The training loop: batch -> VAE/text encode -> masks, noise, timesteps -> loss -> AdamW -> EMA.

Randomness that shapes a step (timesteps, noise, caption dropout, frame masks, image frames)
comes from per-sample generators seeded by (seed, step, position in the global batch). A step
therefore computes the same thing whatever the parallel layout and whether or not the run was
resumed; the global RNG states are checkpointed as well for anything else that draws from them.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from kinema.core import KinemaError
from kinema.dit.compile import compile_blocks
from kinema.dit.contract import aspect_condition, size_conditions

from . import checkpoint as ckpt
from .components import build_model, build_scheduler, build_text_encoder, build_vae, move
from .config import TrainConfig
from .data import BatchStream, StreamPosition
from .distributed import ParallelContext, init_parallel
from .ema import EMA
from .lr_schedule import lr_factor
from .masking import MaskGenerator
from .metrics import MetricsLogger
from .runlog import RunLog
from .tracking import Trackers, build_trackers, check_trackers_installed
from .parallelize import clip_gradients, data_parallel, parallelize, sync_gradients
from .tensor_parallel import local_from_dense, to_dense


@dataclass
class Sample:
    """A logged sample: uint8 frames [T, H, W, 3], its caption and numbers measured on it."""

    frames: torch.Tensor
    fps: float
    caption: str
    scores: dict = field(default_factory=dict)


class NonFiniteLossError(KinemaError):
    """The loss became NaN or inf; the message names the step and the batch."""


def _sample_seed(seed: int, step: int, position: int) -> int:
    return (seed * 1_000_003 + step) * 65_537 + position


class Trainer:
    def __init__(self, cfg: TrainConfig, ctx: Optional[ParallelContext] = None):
        self.cfg = cfg
        p = cfg.parallel
        self.ctx = ctx or init_parallel(p.tensor, p.sequence, p.backend)
        torch.manual_seed(cfg.optim.seed)  # identical dense init on every rank
        random.seed(cfg.optim.seed)
        self.device = self.ctx.device
        check_trackers_installed(cfg.logging)
        self._claim_run_folder()  # before any model is built: a folder holds one run

        self._build_task()

        self.step = 0
        self.step_scalars: dict[str, float] = {}
        self._reported_warnings: set[tuple] = set()
        self._position = StreamPosition()
        self.out_dir = Path(cfg.checkpoint.dir)
        self.data = BatchStream(cfg.data, cfg.optim.seed, self.ctx.dp_size, self.ctx.dp_rank)
        resume_from = self._resume_path()
        if resume_from is not None:  # dense weights go in before sharding
            ckpt.load_model_weights(self.model, resume_from)

        self._shard_model()
        self.model.train()
        # training runs through the wrapper; self.model stays the plain module (names, EMA, checkpoints).
        # FSDP2 shards self.model in place (its parameters become DTensor shards): list them after
        self.train_model = data_parallel(self.model, self.ctx, p.data,
                                         bf16_params=cfg.optim.mixed_precision == "bf16-params")
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = self._build_optimizer()
        o = cfg.optim
        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, o.warmup_steps, o.max_steps, o.decay_steps, o.min_lr_factor)
        )
        self.ema = EMA(self.model, cfg.optim.ema_decay) if cfg.optim.ema_decay > 0 else None
        if resume_from is not None:
            self._load_training_state(resume_from)

    # -- construction ------------------------------------------------------------------------
    # The task hooks (_build_task, _shard_model, loss, _tokens_per_sample, evaluate, sample_videos, finish) are
    # the diffusion task's here; VaeTrainer (vae_task.py) overrides them to train a VAE on the same loop.

    def _build_task(self) -> None:
        """The trained model (self.model) and what its loss needs."""
        cfg = self.cfg
        aspect_condition(1, 1, cfg.model.ar_convention)  # a bad convention fails before any model is built
        self.scheduler = build_scheduler(cfg.scheduler)
        self.model = build_model(cfg.model).to(self.device)
        self.contract = self.model.contract()
        self.vae = move(build_vae(cfg.vae), self.device)
        self.text_encoder = move(build_text_encoder(cfg.text_encoder), self.device)
        self.masks = MaskGenerator(cfg.data.mask_ratios) if cfg.data.mask_ratios else None
        if self.masks is not None and not self.contract.frame_mask:
            raise KinemaError(f"data.mask_ratios needs a model with frame masks (x_mask); {cfg.model.name} has none")
        if cfg.data.use_image_num and not self.contract.image_frames:
            raise KinemaError(f"data.use_image_num needs a joint image-video model (Latte); "
                f"{cfg.model.name} is not one")
        if cfg.logging.eval_every and not (cfg.data.source == "synthetic" and cfg.data.holdout > 0):
            raise KinemaError(f"logging.eval_every={cfg.logging.eval_every} needs held-out samples: set "
                              "data.holdout > 0 (data.source=synthetic) or logging.eval_every=0")

    def _shard_model(self) -> None:
        """Tensor/sequence sharding, gradient checkpointing and compilation of the trained model."""
        cfg = self.cfg
        parallelize(self.model, self.ctx)
        if cfg.model.gradient_checkpointing:
            self.model.enable_gradient_checkpointing()
        if cfg.model.compile:  # after sharding and checkpointing, which change the blocks' code
            compile_blocks(self.model)

    def _build_optimizer(self) -> torch.optim.Optimizer:
        o = self.cfg.optim
        kwargs = dict(lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)
        if o.shard_optimizer and self.ctx.dp_size > 1:
            from torch.distributed.optim import ZeroRedundancyOptimizer

            return ZeroRedundancyOptimizer(self.params, torch.optim.AdamW, process_group=self.ctx.dp_group, **kwargs)
        return torch.optim.AdamW(self.params, **kwargs)

    def _claim_run_folder(self) -> None:
        """Refuse to mix this run with another one in checkpoint.dir (or move that one aside, with
        checkpoint.overwrite), and find the checkpoint to resume, before anything slow starts."""
        c = self.cfg.checkpoint
        aside = ckpt.claim_run_folder(c.dir, c.resume, c.overwrite)  # every rank looks before rank 0 moves
        self.ctx.barrier()
        if aside is not None and self.ctx.is_main:
            moved = ckpt.move_run_aside(c.dir, aside)
            warnings.warn(f"checkpoint.overwrite=true: the previous run in {c.dir} was moved to {moved}", stacklevel=2)
        self.ctx.barrier()
        self._resume_from = ckpt.resolve_checkpoint(c.dir, c.resume) if c.resume else None

    def _resume_path(self) -> Optional[Path]:
        return self._resume_from

    def _local_optimizer(self) -> torch.optim.Optimizer:
        return getattr(self.optimizer, "optim", self.optimizer)  # ZeRO: this rank's partition

    # -- one step ----------------------------------------------------------------------------

    def _autocast(self):
        mode = self.cfg.optim.mixed_precision
        if mode == "bf16-params":  # FSDP2 gathers the weights in bf16 already
            return contextlib.nullcontext()
        use_bf16 = mode == "bf16" or (mode == "auto" and self.device.type == "cuda")
        if not use_bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    @torch.no_grad()
    def encode(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """-> (latents x0 [B, C, T, H, W], captions y [B, 1, L, D], caption mask [B, L] or None)."""
        if "latents" in batch:
            x0 = batch["latents"].to(self.device).float()
        elif self.vae is not None:
            x0 = self.vae.encode_video(batch["video"].to(self.device)).float()
        else:  # no VAE configured: the model learns in pixel space
            x0 = batch["video"].to(self.device).float()
        if "y" in batch:
            y, mask = batch["y"].to(self.device).float(), batch.get("y_mask")
            y = y[:, None] if y.dim() == 3 else y
        elif self.text_encoder is not None:
            encoded = self._encode_captions(list(batch["text"]))
            y, mask = encoded.y.to(self.device).float(), encoded.mask
        else:
            raise KinemaError("the batch has no caption embeddings; set text_encoder.name (e.g. tiny-t5, minilm, t5)")
        return x0, y, None if mask is None else mask.to(self.device)

    def _encode_captions(self, texts: list[str]):
        """The encoder's warnings (truncated captions) are reported once per run, by the main rank: every batch
        of every rank would repeat them."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            encoded = self.text_encoder.encode(texts)
        for w in caught:
            kind = (w.category, str(w.message).split(";")[0])  # "<encoder> reads at most N tokens"
            if kind not in self._reported_warnings and self.ctx.is_main:
                warnings.warn(f"{w.message} (reported once per run)", w.category, stacklevel=2)
            self._reported_warnings.add(kind)
        return encoded

    def prepare(self, batch: dict, step: int):
        """Everything the loss needs for this rank's share of the global batch at ``step``."""
        x0, y, y_mask = self.encode(batch)
        B = x0.shape[0]
        first = self.ctx.dp_rank * B  # position of this share in the global batch
        gens = [torch.Generator().manual_seed(_sample_seed(self.cfg.optim.seed, step, first + i)) for i in range(B)]
        rngs = [random.Random(_sample_seed(self.cfg.optim.seed, step, first + i)) for i in range(B)]

        drop = torch.tensor([r.random() < self.cfg.data.caption_dropout for r in rngs], device=self.device)
        if not self.contract.caption_dropout and drop.any():  # no null caption: zero features mean "no caption"
            y = torch.where(drop[:, None, None, None], torch.zeros_like(y), y)
        sizes = None
        if self.contract.size_conditions:
            sizes = size_conditions(*(batch[k].to(self.device) for k in ("num_frames", "height", "width", "fps")),
                                    ar_convention=self.cfg.model.ar_convention)
        n_img = self.cfg.data.use_image_num
        if n_img:  # joint image-video (Latte): still frames of the clip appended after the video frames
            picks = [torch.tensor([r.randrange(x0.shape[2]) for _ in range(n_img)]) for r in rngs]
            images = torch.stack([x0[i][:, picks[i]] for i in range(B)])
            x0 = torch.cat([x0, images], dim=2)
        kwargs = self.model.model_inputs(y, y_mask, sizes=sizes, image_frames=n_img,
                                         drop=drop if self.contract.caption_dropout else None)
        frame_mask = None
        if self.masks is not None:
            frame_mask = torch.stack([self.masks.frame_mask(x0.shape[2], r) for r in rngs]).to(self.device)
        t = torch.cat([self.scheduler.sample_training_timesteps(1, generator=g) for g in gens]).to(self.device)
        noise = torch.stack([torch.randn(x0.shape[1:], generator=g) for g in gens]).to(self.device)
        return x0, t, noise, kwargs, frame_mask

    def model_fn(self, inputs: dict):
        """The model as the training objective calls it: (x_t, t, frame mask) with this batch's conditions."""
        net = self.train_model if torch.is_grad_enabled() else self.model

        def fn(x, t, frame_mask):
            return net(x, t, **inputs, **self.model.frame_mask_argument(frame_mask))

        return fn

    def loss(self, batch: dict, step: int) -> torch.Tensor:
        """Mean loss over this rank's samples (with autograd graph)."""
        x0, t, noise, kwargs, frame_mask = self.prepare(batch, step)
        with self._autocast():
            losses = self.scheduler.training_losses(self.model_fn(kwargs), x0, t, mask=frame_mask, noise=noise)
        return losses["loss"].float().mean()

    def train_step(self, batch: dict, step: int) -> tuple[float, float]:
        """One optimizer step; returns (global mean loss, grad norm before clipping)."""
        loss = self.loss(batch, step)
        global_loss = self._mean_over_data(loss.detach())
        if not math.isfinite(global_loss):
            raise NonFiniteLossError(
                f"loss is {global_loss} at step {step} (data position epoch {self._position.epoch}, batch "
                f"{self._position.step_in_epoch}; captions {list(batch.get('text', []))[:4]}); lower optim.lr, "
                f"check the data, or resume from the last checkpoint"
            )
        loss.backward()
        sync_gradients(self.params, self.ctx)
        norm = self.clip_gradients()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.lr_schedule.step()
        if self.ema is not None:
            self.ema.update(self.model, decay=0.0 if step == 0 else None)
        return global_loss, norm

    def clip_gradients(self) -> float:
        """Clip to optim.grad_clip; returns the norm before clipping."""
        return clip_gradients(self.params, self.cfg.optim.grad_clip, self.ctx).item()

    def _mean_over_data(self, value: torch.Tensor) -> float:
        if self.ctx.distributed and self.ctx.dp_size > 1:
            value = value.clone()
            torch.distributed.all_reduce(value, group=self.ctx.dp_group)
            value /= self.ctx.dp_size
        return value.item()

    # -- loop --------------------------------------------------------------------------------

    def train(self, max_steps: Optional[int] = None) -> list[float]:
        """Train up to ``max_steps`` (default optim.max_steps) total steps; returns this call's losses."""
        cfg = self.cfg
        end = cfg.optim.max_steps if max_steps is None else max_steps
        main = self.ctx.is_main
        self.log = RunLog(self.out_dir, active=main)
        trackers = Trackers()
        logger = None
        try:
            self._write_config()
            trackers = build_trackers(cfg.logging, self.out_dir, cfg.to_dict(), self.step, active=main)
            logger = MetricsLogger(self.out_dir, cfg.logging.csv, trackers, cfg.logging.progress,
                                   end, self.step, active=main)
            self.log.info(f"{'resuming at' if self.step else 'starting at'} step {self.step} of {end}: "
                          f"task {cfg.task}, {sum(p.numel() for p in self.params):,} trained parameters, "
                          f"run folder {self.out_dir}")
            losses = self._loop(end, logger, trackers)
            self.finish()
            self.log.info(f"trained to step {self.step}")
            return losses
        finally:
            if logger is not None:
                logger.close()
            trackers.close()
            self.log.close()

    def _loop(self, end: int, logger: MetricsLogger, trackers: Trackers) -> list[float]:
        cfg = self.cfg
        losses: list[float] = []
        stream = iter(self.data)
        window_start, window_samples, window_tokens = time.perf_counter(), 0, 0
        while self.step < end:
            self._position, batch = next(stream)
            lr = self.optimizer.param_groups[0]["lr"]  # the rate this step uses (the schedule moves after it)
            self.step_scalars: dict[str, float] = {}  # a task's extra numbers for this step (e.g. VAE loss terms)
            loss, norm = self.train_step(batch, self.step)
            losses.append(loss)
            self.step += 1
            n = self._global_batch_size(batch)
            window_samples += n
            window_tokens += n * self._tokens_per_sample(batch)
            logger.advance()
            if self.step % cfg.logging.every == 0 or self.step == end:
                elapsed = max(time.perf_counter() - window_start, 1e-9)
                values = {"step": self.step, "loss": loss, "grad_norm": norm,
                          "lr": lr, "epoch": self.data.position.epoch,
                          "samples_per_s": window_samples / elapsed, "tokens_per_s": window_tokens / elapsed}
                logger.log({**values, **self.step_scalars})
                line = "  ".join(f"{k}={v:.4g}" for k, v in {**values, **self.step_scalars}.items() if k != "step")
                (self.log.file_only if cfg.logging.progress else self.log.info)(f"step {self.step}  {line}")
                window_start, window_samples, window_tokens = time.perf_counter(), 0, 0
            if cfg.logging.eval_every and self.step % cfg.logging.eval_every == 0:
                scores = self.evaluate()
                trackers.scalars(scores, self.step)
                self.log.info(f"eval at step {self.step}: " + "  ".join(f"{k}={v:.4g}" for k, v in scores.items()))
            if cfg.logging.sample_every and self.step % cfg.logging.sample_every == 0:
                self._log_samples(trackers)
            if self.step % cfg.checkpoint.every == 0 or self.step == end:
                path = self.save()
                self.log.info(f"checkpoint {path}")
        return losses

    def _write_config(self) -> None:
        """The effective config as config.yaml; a resume with a different config keeps the earlier one."""
        from .check import effective_yaml

        if not self.ctx.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path, text = self.out_dir / "config.yaml", effective_yaml(self.cfg)
        if path.is_file() and path.read_text() != text:
            os.replace(path, self.out_dir / f"config-before-step-{self.step:09d}.yaml")
        tmp = path.with_name(f".config.yaml.tmp-{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)

    def _log_samples(self, trackers: Trackers) -> None:
        """The task's samples as mp4 files (samples/step-N/<i>.mp4) and in the trackers. Every rank samples (a
        sharded model needs all of them); the main rank writes."""
        from kinema.core.video import write_video

        samples = self.sample_videos()
        if not self.ctx.is_main:
            return
        folder = self.out_dir / "samples" / f"step-{self.step:09d}"
        scores: dict[str, float] = {}
        for i, sample in enumerate(samples):
            path = write_video(folder / f"{i}.mp4", sample.frames, sample.fps)
            trackers.video(f"samples/{i}", sample.frames.numpy(), sample.fps, self.step, sample.caption, path)
            scores.update({f"samples/{k}_{i}": v for k, v in sample.scores.items()})
        if scores:
            trackers.scalars(scores, self.step)
        self.log.info(f"samples at step {self.step}: {folder}" + "".join(
            f"\n  {i}: {s.caption}" for i, s in enumerate(samples)))

    # -- diffusion task: evaluation, samples, the end ------------------------------------------

    def evaluate(self) -> dict[str, float]:
        """Scalars of the held-out evaluation (logging.eval_every)."""
        scores = {"eval/loss": self.held_out_loss()}
        if self.ema is not None:
            scores["eval/loss_ema"] = self.held_out_loss(use_ema=True)
        return scores

    @torch.no_grad()
    def sample_videos(self) -> list[Sample]:
        """logging.sample_prompts through a KinemaVideoPipeline of the model (EMA weights if any), with fixed
        seeds, few steps and the training clip size."""
        from kinema.core.video import to_uint8

        lc, d = self.cfg.logging, self.cfg.data
        pipe = self._sampling_pipeline()
        gens = [torch.Generator(self.device).manual_seed(lc.sample_seed + i) for i in range(len(lc.sample_prompts))]
        kwargs = {} if lc.sample_guidance_scale is None else {"guidance_scale": lc.sample_guidance_scale}
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []), \
                    self._ema_weights():
                if self.vae is None:  # a pixel-space model: the pipeline denoises given noise, no decoding
                    shape = (self.contract.latent_channels, d.num_frames, *d.image_size)
                    noise = torch.stack([torch.randn(shape, generator=g, device=self.device) for g in gens])
                    out = pipe(list(lc.sample_prompts), latents=noise, height=d.image_size[0], width=d.image_size[1],
                               num_inference_steps=lc.sample_steps,
                               generator=gens, output_type="latent", **kwargs).frames
                    videos = [to_uint8(video) for video in out]
                else:
                    videos = pipe(list(lc.sample_prompts), num_frames=d.num_frames, height=d.image_size[0],
                                  width=d.image_size[1], num_inference_steps=lc.sample_steps, generator=gens,
                                  output_type="uint8", **kwargs).frames
        finally:
            self.model.train(was_training)
        fps = pipe.defaults.get("fps") or 8
        return [Sample(video.cpu(), float(fps), f"{prompt} (seed {lc.sample_seed + i})")
                for i, (prompt, video) in enumerate(zip(lc.sample_prompts, videos))]

    def _sampling_pipeline(self):
        if getattr(self, "_pipeline", None) is None:
            from kinema.sample.pipeline import KinemaVideoPipeline
            from kinema.sample.text_encoders import HFTextEncoder

            te, tokenizer = self.text_encoder, None
            if isinstance(te, HFTextEncoder):  # as export.py puts it: the model and its tokenizer
                te, tokenizer = te.model, te.tokenizer
            objective = self.scheduler
            self._pipeline = KinemaVideoPipeline(
                transformer=self.model, scheduler=objective.sampler(), vae=self.vae, text_encoder=te,
                tokenizer=tokenizer, prediction_type=objective.prediction_type,
                cfg_channel=objective.config.cfg_channel)
            self._pipeline.set_progress_bar_config(disable=True)  # the training bar stays the only one
        return self._pipeline

    @contextlib.contextmanager
    def _ema_weights(self):
        """The model holds the EMA weights inside the block (if there is an EMA)."""
        if self.ema is None:
            yield
            return
        backup = {n: p.detach().clone() for n, p in self.model.named_parameters() if n in self.ema.shadow}
        self._copy_weights(self.ema.shadow)
        try:
            yield
        finally:
            self._copy_weights(backup)

    def finish(self) -> None:
        """What the task writes when training ends (the diffusion task: nothing beyond the checkpoints)."""

    def _global_batch_size(self, batch: dict) -> int:
        key = "latents" if "latents" in batch else "video"
        return batch[key].shape[0] * self.ctx.dp_size

    def _tokens_per_sample(self, batch: dict) -> int:
        """Patch tokens the model sees per sample (latent T*H*W / patch volume)."""
        shape = batch["latents"].shape if "latents" in batch else self._latent_shape(batch["video"].shape)
        patch = self.model.config.get("patch_size", (1, 2, 2))
        patch = (1, patch, patch) if isinstance(patch, int) else tuple(patch)
        return math.prod(math.ceil(n / p) for n, p in zip(shape[2:], patch))

    def _latent_shape(self, shape) -> tuple:
        if self.vae is None:
            return tuple(shape)
        return (*shape[:2], *self.vae.latent_size(tuple(shape[2:])))  # kinema.vae.interface

    # -- checkpoints -------------------------------------------------------------------------

    def dense_ema(self) -> Optional[dict[str, torch.Tensor]]:
        return None if self.ema is None else to_dense(self.model, self.ema.state_dict())

    def save(self) -> Path:
        model_state = to_dense(self.model, self.model.state_dict())
        ema_state = self.dense_ema()
        rank_state = {
            "lr_schedule": self.lr_schedule.state_dict(),
            "rng": ckpt.rng_state(),
        }
        p = self.ctx
        meta = {"data": self.data.state_dict(), "world_size": p.world_size, "tensor": p.tp_size,
                "sequence": p.cp_size, "data_parallel": p.dp_size, "config": self.cfg.to_dict()}
        return ckpt.save_checkpoint(self.out_dir, self.step, self.ctx, model_state, ema_state, rank_state, meta,
                                    keep=self.cfg.checkpoint.keep, optimizer_state=self.dense_optimizer_state())

    _MOMENTS = ("exp_avg", "exp_avg_sq")

    def dense_optimizer_state(self) -> dict[str, torch.Tensor]:
        """AdamW's moments and step per parameter, dense and upstream-named ("exp_avg/<name>"), identical
        on every rank whatever the layout. Collective. A parameter without state yet is saved as AdamW
        would initialise it (zeros, step 0)."""
        local = self._local_optimizer().state
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        moments = {k: {n: local.get(p, {}).get(k, torch.zeros_like(p)).detach().clone() for n, p in named}
                   for k in self._MOMENTS}
        steps = {n: local.get(p, {}).get("step", torch.zeros(())).detach().float().clone() for n, p in named}
        if self.cfg.optim.shard_optimizer and self.ctx.dp_size > 1:  # ZeRO: each state lives on one data rank
            tensors = [t for k in self._MOMENTS for t in moments[k].values()] + list(steps.values())
            flat = _flatten_dense_tensors(tensors)
            torch.distributed.all_reduce(flat, group=self.ctx.dp_group)  # the others contribute zeros
            for t, full in zip(tensors, _unflatten_dense_tensors(flat, tensors)):
                t.copy_(full)
        state = {f"step/{n}": v for n, v in steps.items()}
        for k in self._MOMENTS:
            state.update({f"{k}/{n}": v for n, v in to_dense(self.model, moments[k]).items()})
        return state

    def _load_optimizer_state(self, dense: dict[str, torch.Tensor]) -> None:
        """Give this rank's optimizer (its ZeRO partition) its slices of the dense state."""
        moments = {k: {n[len(k) + 1:]: v for n, v in dense.items() if n.startswith(k + "/")} for k in self._MOMENTS}
        moments = {k: local_from_dense(self.model, v) for k, v in moments.items()}  # TP/FSDP shards
        optimizer = self._local_optimizer()
        names = {p: n for n, p in self.model.named_parameters()}
        saved = optimizer.state_dict()  # param groups as this run built them; state indexed by position
        params = [p for group in optimizer.param_groups for p in group["params"]]
        saved["state"] = {i: {"step": dense[f"step/{names[p]}"].clone(),
                              **{k: moments[k][names[p]].clone() for k in self._MOMENTS}}
                          for i, p in enumerate(params)}
        optimizer.load_state_dict(saved)

    def _load_training_state(self, path: Path) -> None:
        meta = ckpt.load_meta(path)
        layout = (meta["world_size"], meta["tensor"], meta["sequence"])
        here = (self.ctx.world_size, self.ctx.tp_size, self.ctx.cp_size)
        dense_optimizer = ckpt.load_optimizer_state(path, self.ctx.distributed)
        if layout != here and (dense_optimizer is None or self.cfg.data.bucket_config):
            why = "its optimizer state is per rank" if dense_optimizer is None else "the bucket order is per rank"
            raise KinemaError(f"{path} was saved with (world, tensor, sequence) = {layout}, this run has {here} and "
                              f"{why}; resume with the same layout (or start from its weights with model.pretrained)")
        self.step = int(meta["step"])
        self.data.load_state_dict(meta["data"])
        if self.ema is not None and (path / "ema.safetensors").exists():
            dense = ckpt.load_model_state(path, "ema")
            self.ema.load_state_dict(local_from_dense(self.model, dense))
        state = ckpt.load_rank_state(path, self.ctx.rank)
        if dense_optimizer is not None:
            self._load_optimizer_state(dense_optimizer)
        else:  # a checkpoint from before the dense optimizer state
            self._local_optimizer().load_state_dict(state["optimizer"])
        self.lr_schedule.load_state_dict(state["lr_schedule"])
        # the rate follows this run's config (optim.lr, max_steps, decay), not the saved run's
        self.lr_schedule.base_lrs = [self.cfg.optim.lr for _ in self.optimizer.param_groups]
        for group, rule in zip(self.optimizer.param_groups, self.lr_schedule.lr_lambdas):
            group["lr"] = self.cfg.optim.lr * rule(self.lr_schedule.last_epoch)
        ckpt.set_rng_state(state["rng"])

    # -- evaluation --------------------------------------------------------------------------

    @torch.no_grad()
    def held_out_loss(self, use_ema: bool = False, seed: int = 12345) -> float:
        """Mean denoising loss on the synthetic hold-out samples with fixed noise and timesteps."""
        from .data import collate

        if not self.data.holdout:
            raise KinemaError("no held-out samples; set data.holdout > 0 (synthetic data)")
        swap = use_ema and self.ema is not None
        if swap:
            backup = {n: p.detach().clone() for n, p in self.model.named_parameters() if n in self.ema.shadow}
            self._copy_weights(self.ema.shadow)
        was_training = self.model.training
        self.model.eval()
        try:
            batch = collate(self.data.holdout)
            saved = (self.cfg.data.caption_dropout, self.masks, self.ctx.dp_rank)
            self.cfg.data.caption_dropout, self.masks = 0.0, None
            try:
                x0, t, noise, kwargs, _ = self.prepare(batch, step=-seed)
            finally:
                self.cfg.data.caption_dropout, self.masks = saved[0], saved[1]
            losses = self.scheduler.training_losses(self.model_fn(kwargs), x0, t, noise=noise)
            return losses["loss"].float().mean().item()
        finally:
            self.model.train(was_training)
            if swap:
                self._copy_weights(backup)

    def _copy_weights(self, values: dict[str, torch.Tensor]) -> None:
        for name, p in self.model.named_parameters():
            if name in values:
                p.data.copy_(values[name].to(p.dtype))

    def close(self) -> None:
        from .distributed import shutdown_parallel

        shutdown_parallel(self.ctx)


def build_trainer(cfg: TrainConfig, ctx: Optional[ParallelContext] = None) -> Trainer:
    """The trainer of ``cfg.task``: diffusion (this module) or vae (vae_task.py)."""
    if cfg.task == "vae":
        from .vae_task import VaeTrainer

        return VaeTrainer(cfg, ctx)
    if cfg.task != "diffusion":
        raise KinemaError(f"task={cfg.task!r} is not a training task; use diffusion or vae")
    return Trainer(cfg, ctx)


def run(cfg: TrainConfig) -> Trainer:
    trainer = build_trainer(cfg)
    try:
        trainer.train()
    finally:
        trainer.close()
    return trainer

