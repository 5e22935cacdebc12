"""KinemaVideoPipeline: prompt (+ references) -> text encoder -> scheduler loop over the DiT -> VAE decode.

A diffusers-layout folder (model_index.json + transformer/ vae/ text_encoder/ tokenizer/ scheduler/)
loads with ``from_pretrained`` and saves with ``save_pretrained``; ``__call__`` takes diffusers'
argument names. The scheduler is swapped by name with ``set_scheduler("ddim")``.
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from diffusers.utils.torch_utils import randn_tensor
from kinema.core import KinemaError, lookup

from .conditioning import Insertion, apply_insertions, loop_insertion, parse_mask_strategy, pixel_frames
from .pipeline_folder import INDEX, load_component, read_index, write_folder
from .references import load_reference
from .schedulers import Guidance, IDDPMScheduler, KinemaScheduler
from .sizes import check_num_frames, check_size, fit_to_multiple, size_from_table
from .text_encoders import TextEmbedding, UnconditionalEncoder, as_text_encoder, check_prompts

COMPONENTS = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")
OUTPUT_TYPES = ("pt", "np", "uint8", "latent")
TEXT_ENCODER_REF = "_kinema_text_encoder"  # model_index.json key naming a registered text encoder
# keys a scheduler swap carries over: they describe the trained chain, not the sampler
CHAIN_KEYS = ("num_train_timesteps", "beta_start", "beta_end", "cfg_channel")

DEFAULTS = {"num_frames": 16, "resolution": "240p", "aspect_ratio": "9:16", "height": None, "width": None,
            "fps": 24, "guidance_scale": 7.0}


@dataclass
class VideoPipelineOutput:
    """``frames``: pt [B, T, 3, H, W] in [0, 1]; np [B, T, H, W, 3] in [0, 1]; uint8 [B, T, H, W, 3];
    latent [B, C, t, h, w]."""

    frames: Any
    fps: float


class KinemaVideoPipeline:
    def __init__(self, transformer, vae, text_encoder, tokenizer=None, scheduler: KinemaScheduler | None = None,
                 defaults: dict | None = None, random_init: bool = False, text_encoder_ref: dict | None = None):
        self.transformer, self.vae = transformer, vae
        # {"name": registered text encoder, "kwargs": {...}}: the folder names its text encoder instead of
        # holding a copy of its weights (e.g. minilm, which ships in its own package)
        self.text_encoder_ref = text_encoder_ref
        self.text_encoder, self.tokenizer = text_encoder, tokenizer
        self.scheduler = scheduler if scheduler is not None else IDDPMScheduler()
        unknown = set(defaults or {}) - set(DEFAULTS)
        if unknown:
            raise KinemaError(f"unknown pipeline defaults {sorted(unknown)}; known: {', '.join(DEFAULTS)}")
        self.defaults = {**DEFAULTS, **(defaults or {})}
        self.random_init = random_init  # a test pipeline whose output is noise
        self._progress: dict = {}
        self._offload_device: torch.device | None = None

    # ------------------------------------------------------------------ folder I/O

    @classmethod
    def from_pretrained(cls, path: str | Path, torch_dtype: torch.dtype | None = None) -> KinemaVideoPipeline:
        path = Path(path)
        index = read_index(path)
        text_ref = index.get(TEXT_ENCODER_REF)
        parts = {}
        for name in COMPONENTS:
            library, class_name = index.get(name) or (None, None)
            if text_ref is not None and name in ("text_encoder", "tokenizer"):
                continue
            kwargs = {"torch_dtype": torch_dtype} if torch_dtype is not None and name in ("transformer", "vae") else {}
            parts[name] = load_component(path, name, library, class_name, **kwargs)
        if text_ref is not None:
            parts["text_encoder"], parts["tokenizer"] = _registered_text_encoder(text_ref, path), None
        for name in ("transformer", "vae", "text_encoder"):
            if parts[name] is None:
                raise KinemaError(f"pipeline {str(path)!r} has no {name}; {INDEX} must name one")
        return cls(**parts, defaults=index.get("_kinema_defaults"), random_init=bool(index.get("_kinema_random_init")),
                   text_encoder_ref=text_ref)

    def save_pretrained(self, path: str | Path) -> None:
        extra = {"_kinema_defaults": self.defaults, **({"_kinema_random_init": True} if self.random_init else {})}
        components = self.components
        if self.text_encoder_ref is not None:
            extra[TEXT_ENCODER_REF] = self.text_encoder_ref
            components.update(text_encoder=None, tokenizer=None)
        write_folder(Path(path), components, extra)

    @property
    def components(self) -> dict:
        return {name: getattr(self, name) for name in COMPONENTS}

    # ------------------------------------------------------------------ switches

    def set_scheduler(self, name: str, **config) -> KinemaScheduler:
        """Swap the scheduler by registry name, keeping the trained chain (betas, steps, cfg_channel)."""
        cls = lookup("scheduler", name)
        chain = {k: v for k, v in self.scheduler.config.items() if k in CHAIN_KEYS}
        accepted = inspect.signature(cls.__init__).parameters
        self.scheduler = cls(**{k: v for k, v in {**chain, **config}.items() if k in accepted})
        return self.scheduler

    def enable_vae_tiling(self) -> None:
        self.vae.enable_tiling()

    def disable_vae_tiling(self) -> None:
        self.vae.disable_tiling()

    def enable_vae_slicing(self) -> None:
        self.vae.enable_slicing()

    def disable_vae_slicing(self) -> None:
        self.vae.disable_slicing()

    def enable_model_cpu_offload(self, device: str | torch.device = "cuda") -> None:
        """Keep every model on the CPU and move each one to ``device`` only while it runs."""
        self._offload_device = torch.device(device)
        self.to("cpu")

    def disable_model_cpu_offload(self) -> None:
        self._offload_device = None

    def set_progress_bar_config(self, **kwargs) -> None:
        """tqdm keyword arguments for the denoising bar; ``disable=True`` hides it."""
        self._progress = kwargs

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> KinemaVideoPipeline:
        for module in (self.transformer, self.vae, self.text_encoder):
            if isinstance(module, torch.nn.Module):
                cast = {"dtype": dtype} if dtype is not None and module is not self.text_encoder else {}
                module.to(device=device, **cast)
        if self.text_encoder_ref is not None and device is not None:  # a registered encoder object
            self.text_encoder.to(device)
        return self

    @property
    def device(self) -> torch.device:
        if self._offload_device is not None:
            return self._offload_device
        return next(self.transformer.parameters()).device

    @contextlib.contextmanager
    def _running(self, module):
        """Under CPU offload, ``module`` lives on the execution device only inside this block."""
        if self._offload_device is None or not isinstance(module, torch.nn.Module):
            yield module
            return
        module.to(self._offload_device)
        try:
            yield module
        finally:
            module.to("cpu")

    # ------------------------------------------------------------------ pieces

    def text_encoder_adapter(self):
        return as_text_encoder(self.text_encoder, self.tokenizer, self.transformer.config.model_max_length)

    def encode_prompt(self, prompts: list[str], negative_prompt, guidance_scale: float
                      ) -> tuple[TextEmbedding, Guidance | None]:
        """Condition embeddings, and guidance whose unconditional branch is the negative prompt, or the
        model's learned null caption (``y_embedding``) under the prompt's own token mask (Open-Sora)."""
        encoder = self.text_encoder_adapter()
        with self._running(self.text_encoder):
            cond = encoder.encode(prompts, allow_empty=isinstance(self.text_encoder, UnconditionalEncoder))
            negative = None
            if negative_prompt is not None and guidance_scale > 1.0:
                negatives = [negative_prompt] * len(prompts) if isinstance(negative_prompt, str) else negative_prompt
                if len(negatives) != len(prompts):
                    raise KinemaError(f"{len(negatives)} negative prompts for {len(prompts)} prompts")
                negative = encoder.encode(list(negatives), allow_empty=True)
        channels = self.transformer.config.caption_channels
        if cond.y.shape[-1] != channels:
            raise KinemaError(f"the text encoder gives {cond.y.shape[-1]}-d features but the transformer expects "
                           f"caption_channels={channels}; pair them as trained")
        if guidance_scale <= 1.0 or isinstance(self.text_encoder, UnconditionalEncoder):
            return cond, None
        if negative is not None:
            null = negative
        else:
            null_tokens = getattr(getattr(self.transformer, "y_embedder", None), "y_embedding", None)
            if null_tokens is None:
                with self._running(self.text_encoder):
                    null = encoder.encode([""] * len(prompts), allow_empty=True)
            else:
                y = null_tokens.detach().float()[None, None].expand(len(prompts), 1, -1, -1)
                null = TextEmbedding(y=y, mask=cond.mask)
        return cond, Guidance(scale=guidance_scale, uncond_kwargs={"y": null.y, "mask": null.mask})

    def resolve_size(self, height, width, resolution, aspect_ratio) -> tuple[int, int]:
        multiple = self.vae.spatial_compression
        if height is not None or width is not None:
            if height is None or width is None:
                raise KinemaError("give both height and width, or a resolution and aspect_ratio")
            check_size(int(height), int(width), multiple)
            return int(height), int(width)
        d = self.defaults
        if resolution is None and aspect_ratio is None and d["height"] and d["width"]:
            return int(d["height"]), int(d["width"])
        h, w = size_from_table(resolution or d["resolution"], aspect_ratio or d["aspect_ratio"])
        h, w = fit_to_multiple(h, w, multiple)
        check_size(h, w, multiple)
        return h, w

    def _model_kwargs(self, cond: TextEmbedding, num_frames: int, height: int, width: int, fps: float) -> dict:
        kwargs = {"y": cond.y, "mask": cond.mask}
        accepted = inspect.signature(self.transformer.forward).parameters
        b = cond.y.shape[0]
        extras = {"num_frames": num_frames, "height": height, "width": width, "ar": height / width, "fps": fps}
        for k, v in extras.items():
            if k in accepted:  # STDiT2's size / frame-rate conditions
                kwargs[k] = torch.full((b,), float(v), device=cond.y.device)
        return kwargs

    def _encode_references(self, refs: list[list], height: int, width: int, device) -> list[list[torch.Tensor]]:
        out = []
        with self._running(self.vae):
            for per_prompt in refs:
                latents = []
                for ref in per_prompt:
                    video = load_reference(ref, height, width).to(device=device, dtype=self.vae.dtype)
                    latents.append(self.vae.encode_video(video[None], sample=False)[0].float())
                out.append(latents)
        return out

    # ------------------------------------------------------------------ call

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        resolution: str | None = None,
        aspect_ratio: str | None = None,
        fps: float | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        reference=None,
        mask_strategy: str | list[str] | None = None,
        loop: int = 1,
        condition_frame_length: int = 4,
        num_videos_per_prompt: int = 1,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: tuple[str, ...] = ("latents",),
        output_type: str = "pt",
        return_dict: bool = True,
    ):
        """Generate videos.

        reference: references shared by every prompt (a path or [3, T, H, W] tensor, or a list of them),
        or one list per prompt. mask_strategy: one string, or one per prompt (see kinema.sample.conditioning);
        references without a mask_strategy condition the first frame ("0", image-to-video).
        loop > 1 generates longer videos: each further clip opens with the previous clip's last
        ``condition_frame_length`` latent frames.
        """
        if output_type not in OUTPUT_TYPES:
            raise KinemaError(f"output_type {output_type!r}; choose one of {', '.join(OUTPUT_TYPES)}")
        if set(callback_on_step_end_tensor_inputs) - {"latents"}:
            raise KinemaError("callback_on_step_end_tensor_inputs supports only 'latents'")
        unconditional = isinstance(self.text_encoder, UnconditionalEncoder)
        prompts = [p for p in check_prompts(prompt, allow_empty=unconditional) for _ in range(num_videos_per_prompt)]
        b = len(prompts)
        d = self.defaults
        num_frames = int(num_frames or d["num_frames"])
        fps = float(fps or d["fps"])
        guidance_scale = float(d["guidance_scale"] if guidance_scale is None else guidance_scale)
        height, width = self.resolve_size(height, width, resolution, aspect_ratio)
        tc = getattr(self.vae, "temporal_compression", 1)
        check_num_frames(num_frames, tc)
        t_lat, h_lat, w_lat = self.vae.latent_size((num_frames, height, width))
        if loop < 1:
            raise KinemaError(f"loop must be >= 1, got {loop}")
        if loop > 1 and not 1 <= condition_frame_length < t_lat:
            raise KinemaError(f"condition_frame_length must be in [1, {t_lat - 1}] (latent frames per clip), "
                           f"got {condition_frame_length}")
        if output_type == "latent" and loop > 1:
            raise KinemaError("output_type='latent' returns one clip; use loop=1")
        refs = _per_prompt(reference, b, num_videos_per_prompt, "reference")
        strategies = _strategies(mask_strategy, refs, b, num_videos_per_prompt)

        device = self.device
        cond, guidance = self.encode_prompt(prompts, negative_prompt, guidance_scale)
        cond = TextEmbedding(cond.y.to(device), cond.mask.to(device))
        if guidance is not None:
            guidance.uncond_kwargs = {k: v.to(device) for k, v in guidance.uncond_kwargs.items()}
        model_kwargs = self._model_kwargs(cond, num_frames, height, width, fps)
        ref_latents = self._encode_references(refs, height, width, device)

        channels = self.vae.latent_channels
        shape = (b, channels, t_lat, h_lat, w_lat)
        if latents is not None and tuple(latents.shape) != shape:
            raise KinemaError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
        overlap = pixel_frames(condition_frame_length, tc)

        def step_callback(step, t, x):
            if callback_on_step_end is None:
                return None
            out = callback_on_step_end(self, step, t, {"latents": x})
            return (out or {}).get("latents")

        clips, tail = [], None
        for loop_id in range(loop):
            z = latents.to(device).float() if (latents is not None and loop_id == 0) else \
                randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)
            z, mask = self._condition(z, ref_latents, strategies, loop_id, tail, condition_frame_length)
            with self._running(self.transformer):
                x0 = self.scheduler.sample(
                    self.transformer, z, model_kwargs, guidance, mask=mask, num_inference_steps=num_inference_steps,
                    generator=generator, progress=self._progress_arg(loop_id, loop), callback=step_callback,
                )
            if output_type == "latent":
                return VideoPipelineOutput(frames=x0, fps=fps) if return_dict else (x0,)
            with self._running(self.vae):
                video = self.vae.decode_video(x0.to(self.vae.dtype)).float()
                if loop_id + 1 < loop:
                    tail = [self.vae.encode_video(video[i:i + 1, :, -overlap:].to(self.vae.dtype), sample=False)[0]
                            .float() for i in range(b)]
            clips.append(video if loop_id == 0 else video[:, :, overlap:])
        frames = _to_output(torch.cat(clips, dim=2), output_type)
        return VideoPipelineOutput(frames=frames, fps=fps) if return_dict else (frames,)

    def _condition(self, z, ref_latents, strategies, loop_id, tail, condition_frame_length):
        """Write reference latents for this loop; -> (z, frame mask [B, T] or None)."""
        insertions = []
        for i in range(z.shape[0]):
            refs = list(ref_latents[i]) + ([tail[i]] if tail is not None else [])
            extra = [loop_insertion(loop_id, len(ref_latents[i]), condition_frame_length)] if tail is not None else []
            insertions.append((refs, [s for s in strategies[i] if s.loop_id == loop_id] + extra))
        if not any(ins for _, ins in insertions):
            return z, None
        zs, masks = zip(*(apply_insertions(z[i], refs, ins, loop_id) for i, (refs, ins) in enumerate(insertions)))
        return torch.stack(zs), torch.stack(masks)

    def _progress_arg(self, loop_id: int, loop: int):
        if self._progress.get("disable"):
            return False
        desc = f"clip {loop_id + 1}/{loop}" if loop > 1 else "denoising"
        return {"desc": desc, **{k: v for k, v in self._progress.items() if k != "disable"}}


# ------------------------------------------------------------------ argument helpers


def _registered_text_encoder(ref, path: Path):
    if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
        raise KinemaError(f"{path / INDEX}: {TEXT_ENCODER_REF} must be {{\"name\": ..., \"kwargs\": {{...}}}}, "
                       f"got {ref!r}")
    return lookup("text_encoder", ref["name"])(**(ref.get("kwargs") or {}))


def _per_prompt(value, b: int, repeats: int, name: str) -> list[list]:
    """None / one item / a shared list / one list per prompt -> one list per (repeated) prompt."""
    if value is None:
        return [[] for _ in range(b)]
    if isinstance(value, (str, Path, torch.Tensor)):
        return [[value] for _ in range(b)]
    value = list(value)
    if value and all(isinstance(v, (list, tuple)) for v in value):
        if len(value) * repeats != b:
            raise KinemaError(f"{len(value)} {name} lists for {b // repeats} prompts; give one per prompt")
        return [list(v) for v in value for _ in range(repeats)]
    return [list(value) for _ in range(b)]


def _strategies(mask_strategy, refs: list[list], b: int, repeats: int) -> list[list[Insertion]]:
    if mask_strategy is None:
        # references alone condition the first frame: image-to-video
        return [parse_mask_strategy("0") if r else [] for r in refs]
    if isinstance(mask_strategy, str):
        return [parse_mask_strategy(mask_strategy) for _ in range(b)]
    mask_strategy = list(mask_strategy)
    if len(mask_strategy) * repeats != b:
        raise KinemaError(f"{len(mask_strategy)} mask strategies for {b // repeats} prompts; give one per prompt")
    return [parse_mask_strategy(s) for s in mask_strategy for _ in range(repeats)]


def _to_output(video: torch.Tensor, output_type: str):
    """[B, 3, T, H, W] in [-1, 1] -> the requested layout."""
    unit = ((video.clamp(-1, 1) + 1) / 2).cpu()
    if output_type == "pt":
        return unit.permute(0, 2, 1, 3, 4).contiguous()
    frames = unit.permute(0, 2, 3, 4, 1)
    if output_type == "np":
        return frames.numpy()
    return (frames * 255).round().to(torch.uint8)
