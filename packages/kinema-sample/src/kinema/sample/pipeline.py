"""KinemaVideoPipeline: a diffusers ``DiffusionPipeline`` for kinema's video models.

    prompt -> text encoder -> denoising loop (transformer + any diffusers scheduler) -> VAE decode -> frames

The folder is diffusers' layout (``model_index.json`` + ``transformer/ vae/ text_encoder/ tokenizer/
scheduler/``) and loads with ``KinemaVideoPipeline.from_pretrained(folder)`` or, through diffusers' route for
pipelines that live outside it, ``DiffusionPipeline.from_pretrained(folder, custom_pipeline=
kinema.sample.DIFFUSERS_CUSTOM_PIPELINE, trust_remote_code=True)``. Only the first checks the folder (no code,
no path leading outside it): diffusers' loader with ``trust_remote_code=True`` runs a folder's component code.
``__call__`` takes diffusers' arguments (``prompt_embeds``, ``max_sequence_length``,
``callback_on_step_end`` with ``PipelineCallback`` objects, ``output_type`` "pil" by default) plus Open-Sora's:
``reference`` + ``mask_strategy`` (image-to-video, extension, editing), ``loop`` (longer videos), resolution and
aspect-ratio tables.

The loop is written once, here: the scheduler only steps (:mod:`kinema.sample.denoising`), the transformer is
called through its contract (:mod:`kinema.dit.contract`).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from diffusers import DiffusionPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from torch.utils._pytree import tree_map
from kinema.core import KinemaError
from kinema.core.validate import check_number
from kinema.dit.contract import VideoModel, size_conditions

from . import denoising
from .aspect_size import parse_ratio, size_near_area
from .conditioning import Insertion, apply_insertions, loop_insertion, parse_mask_strategy, pixel_frames
from .pipeline_folder import (COMPONENTS, HOW_TO_PROVIDE, check_index, explain_weights_mismatch,
                              import_components, load_transformers_components, read_index,
                              replace_folder)
from .references import load_reference
from .schedulers import sampler_by_name
from .sizes import check_num_frames, check_size, fit_to_multiple, size_from_table
from .text_encoders import TextEmbedding, UnconditionalEncoder, as_text_encoder, check_prompts

OUTPUT_TYPES = ("pil", "np", "pt", "uint8", "latent")
CALLBACK_TENSOR_INPUTS = ("latents", "prompt_embeds", "prompt_attention_mask")

DEFAULTS = {"num_frames": 16, "resolution": "240p", "aspect_ratio": "9:16", "height": None, "width": None,
            "fps": 24, "guidance_scale": 7.0, "num_inference_steps": 50, "max_sequence_length": None}


@dataclass
class VideoPipelineOutput(BaseOutput):
    """``frames``: pil: one list of PIL images per video; np [B, T, H, W, 3] in [0, 1]; pt [B, T, 3, H, W] in
    [0, 1]; uint8 [B, T, H, W, 3]; latent [B, C, t, h, w]. ``fps``: the frame rate the video was made for."""

    frames: Any
    fps: float


@dataclass
class PromptEmbeddings:
    """Caption features [B, 1, L, C] with their token masks [B, L]; the negative pair is None without guidance."""

    prompt_embeds: torch.Tensor
    prompt_attention_mask: torch.Tensor
    negative_prompt_embeds: torch.Tensor | None = None
    negative_prompt_attention_mask: torch.Tensor | None = None


class KinemaVideoPipeline(DiffusionPipeline):
    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _optional_components = ["vae", "text_encoder", "tokenizer"]
    _callback_tensor_inputs = list(CALLBACK_TENSOR_INPUTS)

    def __init__(self, transformer, scheduler, vae=None, text_encoder=None, tokenizer=None,
                 defaults: dict | None = None, prediction_type: str = "epsilon", cfg_channel: int | None = None,
                 random_init: bool = False):
        """``defaults``: call arguments used when not given (see DEFAULTS); ``prediction_type``: what the
        transformer was trained to predict, "epsilon" (IDDPM) or "flow" (rectified flow); ``cfg_channel``:
        guide only the first that many latent channels (Open-Sora 1.0's checkpoints: 3); ``random_init``: a
        test pipeline whose output is noise."""
        super().__init__()
        if not isinstance(transformer, VideoModel):
            raise KinemaError(f"transformer is a {type(transformer).__name__}; the pipeline takes a kinema video "
                              "model (kinema.dit.contract.VideoModel: STDiT, STDiT2, DiT, PixArt, LatteT2V)")
        unknown = set(defaults or {}) - set(DEFAULTS)
        if unknown:
            raise KinemaError(f"unknown pipeline defaults {sorted(unknown)}; known: {', '.join(DEFAULTS)}")
        check_parts(transformer, vae)
        denoising.check_scheduler(scheduler, prediction_type)
        self.register_modules(transformer=transformer, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                              scheduler=scheduler)
        self.register_to_config(defaults={**DEFAULTS, **(defaults or {})}, prediction_type=prediction_type,
                                cfg_channel=cfg_channel, random_init=bool(random_init))
        self._offload_device: torch.device | None = None
        self._sequential_hooks: list = []
        self._guidance_scale = 1.0
        self._num_timesteps = 0
        self.attention_cache = None

    def __setattr__(self, name, value):
        if name == "scheduler" and value is not None:
            value = denoising.adopt_scheduler(value)
        super().__setattr__(name, value)
        # diffusers records a component's library from its module path, and takes kinema.dit.* for its own
        # "dit" pipelines; record kinema classes by their full module, which is what its loader imports
        if name in COMPONENTS and value is not None and type(value).__module__.startswith("kinema."):
            self.register_to_config(**{name: (type(value).__module__, type(value).__name__)})

    # ------------------------------------------------------------------ folder I/O

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> KinemaVideoPipeline:
        """diffusers' loader, after checking the folder: it exists, names only classes from kinema,
        transformers, diffusers or an installed kinema plugin, and carries no code and no path leading outside it
        (a folder is data; it cannot pick code to import or run). Nothing is asked on the terminal."""
        from diffusers.utils import is_accelerate_available

        path = Path(pretrained_model_name_or_path)
        for option in ("trust_remote_code", "custom_pipeline"):
            if kwargs.get(option):
                raise KinemaError(f"{option}={kwargs[option]!r}: KinemaVideoPipeline.from_pretrained never runs code "
                                  "from a model folder; leave it out (the pipeline's code is this installed package)")
        kwargs["trust_remote_code"] = False
        index = read_index(path)
        check_index(path, index)
        import_components(index)
        dtype = kwargs.get("torch_dtype", kwargs.get("dtype"))
        kwargs.update(load_transformers_components(path, index, dtype, skip=set(kwargs)))
        kwargs.setdefault("low_cpu_mem_usage", is_accelerate_available())
        try:
            return super().from_pretrained(str(path), **kwargs)
        except (OSError, ValueError, RuntimeError) as exc:
            explain_weights_mismatch(path, index)  # a config.json that does not describe its weights
            if isinstance(exc, RuntimeError):
                raise
            raise KinemaError(f"cannot load the pipeline at {str(path)!r}: {exc}. A component's files may be missing "
                              f"or incomplete. {HOW_TO_PROVIDE}") from exc

    def save_pretrained(self, save_directory, **kwargs) -> None:
        """diffusers' layout, written aside and swapped into place: never a half-written pipeline."""
        target = Path(save_directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            super().save_pretrained(str(tmp), **kwargs)
            replace_folder(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # ------------------------------------------------------------------ properties and switches

    @property
    def defaults(self) -> dict:
        return dict(self.config.defaults)

    @property
    def device(self) -> torch.device:
        return self.transformer.device

    @property
    def dtype(self) -> torch.dtype:
        return self.transformer.dtype

    @property
    def _execution_device(self) -> torch.device:
        return self._offload_device if self._offload_device is not None else self.device

    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        return self._guidance_scale > 1.0

    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    def set_scheduler(self, name: str, **config):
        """Swap the scheduler by registry name (``kinema plugins`` lists them): a diffusers scheduler on the
        trained chain, or a training objective's sampler (``rflow`` keeps the current shift unless given)."""
        if name == "rflow" and denoising.is_flow_scheduler(self.scheduler):
            config.setdefault("shift", self.scheduler.config.shift)
        scheduler, _ = sampler_by_name(name, **config)
        denoising.check_scheduler(scheduler, self.config.prediction_type)
        self.scheduler = scheduler
        return scheduler

    def compile_transformer(self, **compile_kwargs) -> None:
        """``torch.compile`` each transformer block in place (``kinema.dit.compile.compile_blocks``): seconds to
        compile, the same weights and outputs; the first step at each new size compiles. ``compile_kwargs`` go to
        ``torch.compile``. A one-line KinemaError says what is missing where compile cannot run."""
        from kinema.dit.compile import compile_blocks

        compile_blocks(self.transformer, **compile_kwargs)

    def enable_vae_tiling(self) -> None:
        self.vae.enable_tiling()

    def disable_vae_tiling(self) -> None:
        self.vae.disable_tiling()

    def enable_attention_cache(self, config=None, **intervals):
        """Reuse attention outputs across denoising steps (:mod:`kinema.sample.attention_cache`): an
        ``AttentionCacheConfig``, or its fields (``spatial``, ``temporal``, ``cross``, ``start``, ``end``).
        ``pipe.attention_cache.stats`` counts the attention calls and FLOPs computed and skipped."""
        from .attention_cache import AttentionCache, AttentionCacheConfig

        if config is not None and intervals:
            raise KinemaError("enable_attention_cache takes a config or its fields, not both")
        self.disable_attention_cache()
        self.attention_cache = AttentionCache(self.transformer, config or AttentionCacheConfig(**intervals))
        return self.attention_cache

    def disable_attention_cache(self) -> None:
        if self.attention_cache is not None:
            self.attention_cache.remove()
            self.attention_cache = None

    def enable_vae_slicing(self) -> None:
        self.vae.enable_slicing()

    def disable_vae_slicing(self) -> None:
        self.vae.disable_slicing()

    # ------------------------------------------------------------------ offloading

    def enable_model_cpu_offload(self, gpu_id: int | None = None, device: str | torch.device | None = None) -> None:
        """Keep every model in CPU memory and move each to ``device`` only while it runs."""
        self._offload_device = _offload_target(gpu_id, device, "enable_model_cpu_offload")
        self._remove_sequential_hooks()
        self.to("cpu")

    def enable_sequential_cpu_offload(self, gpu_id: int | None = None, device: str | torch.device | None = None
                                      ) -> None:
        """Keep every weight in CPU memory and move each layer's own weights to ``device`` only while that layer
        runs: the least memory, the slowest. Buffers (position tables, rotary frequencies: small, and read by
        methods other than forward) stay on ``device``, as accelerate's offload keeps them."""
        self._offload_device = _offload_target(gpu_id, device, "enable_sequential_cpu_offload")
        self.to("cpu")
        self._remove_sequential_hooks()
        self._sequential_hooks = []
        for component in (self.transformer, self.vae, self.text_encoder):
            if isinstance(component, torch.nn.Module):
                for module in component.modules():
                    for name, buffer in module._buffers.items():
                        if buffer is not None:
                            module._buffers[name] = buffer.to(self._offload_device)
                    self._sequential_hooks += _layer_offload_hooks(module, self._offload_device)

    def disable_cpu_offload(self) -> None:
        self._remove_sequential_hooks()
        self._offload_device = None

    def _remove_sequential_hooks(self) -> None:
        for hook in self._sequential_hooks:
            hook.remove()
        self._sequential_hooks = []

    @contextlib.contextmanager
    def _running(self, module):
        """Under model CPU offload, ``module`` lives on the execution device only inside this block."""
        if self._offload_device is None or self._sequential_hooks or not isinstance(module, torch.nn.Module):
            yield module
            return
        module.to(self._offload_device)
        try:
            yield module
        finally:
            module.to("cpu")

    # ------------------------------------------------------------------ prompts

    def encode_prompt(self, prompt, negative_prompt=None, do_classifier_free_guidance: bool = True,
                      num_videos_per_prompt: int = 1, device=None, prompt_embeds=None, prompt_attention_mask=None,
                      negative_prompt_embeds=None, negative_prompt_attention_mask=None,
                      max_sequence_length: int | None = None) -> PromptEmbeddings:
        """Caption features for the prompts (or the given embeddings), repeated per video, and, with guidance,
        the unconditional branch: the negative prompt, else the model's learned null caption under the prompt's
        own token mask (Open-Sora), else the encoded empty prompt (Open-Sora-Plan)."""
        device = device or self._execution_device
        contract = self.transformer.contract()
        null = self.transformer.null_caption()
        length = max_sequence_length or contract.caption_length
        if null is not None and length != contract.caption_length:
            raise KinemaError(f"max_sequence_length={length}, but this transformer's null caption has "
                              f"{contract.caption_length} tokens; leave it unset or pass {contract.caption_length}")
        unconditional = isinstance(self.text_encoder, UnconditionalEncoder)

        if prompt_embeds is None:
            cond = self._encode(check_prompts(prompt, allow_empty=unconditional), length)
        else:
            cond = _given_embeddings(prompt_embeds, prompt_attention_mask, "prompt_embeds")
        cond = _repeat(cond, num_videos_per_prompt, device)
        _check_caption_shape(cond, contract, "prompt_embeds")
        if not do_classifier_free_guidance or unconditional:
            return PromptEmbeddings(cond.y, cond.mask)

        batch = cond.y.shape[0] // num_videos_per_prompt
        if negative_prompt_embeds is not None:
            neg = _repeat(_given_embeddings(negative_prompt_embeds, negative_prompt_attention_mask,
                                            "negative_prompt_embeds"), num_videos_per_prompt, device)
        elif negative_prompt is not None:
            negatives = [negative_prompt] * batch if isinstance(negative_prompt, str) else list(negative_prompt)
            if len(negatives) != batch:
                raise KinemaError(f"{len(negatives)} negative prompts for {batch} prompts; give one, or one per prompt")
            neg = _repeat(self._encode(check_prompts(negatives, allow_empty=True), length), num_videos_per_prompt,
                          device)
        elif null is not None:
            y = null.detach().float()[None, None].to(device).expand(cond.y.shape[0], 1, -1, -1)
            neg = TextEmbedding(y=y, mask=cond.mask)
        else:
            neg = _repeat(self._encode([""] * batch, length), num_videos_per_prompt, device)
        _check_caption_shape(neg, contract, "negative_prompt_embeds")
        if neg.y.shape != cond.y.shape:
            raise KinemaError(f"negative embeddings {tuple(neg.y.shape)} differ from the prompt's "
                              f"{tuple(cond.y.shape)}; encode both with the same max_sequence_length")
        return PromptEmbeddings(cond.y, cond.mask, neg.y, neg.mask)

    def _encode(self, prompts: list[str], length: int) -> TextEmbedding:
        if self.text_encoder is None:
            raise KinemaError("this pipeline has no text encoder; pass prompt_embeds (and negative_prompt_embeds)")
        encoder = as_text_encoder(self.text_encoder, self.tokenizer, length)
        with self._running(self.text_encoder):
            return encoder.encode(prompts, allow_empty=True)

    # ------------------------------------------------------------------ sizes and references

    def resolve_size(self, height, width, resolution, aspect_ratio) -> tuple[int, int]:
        multiple = self.vae.spatial_compression
        if height is not None or width is not None:
            if height is None or width is None:
                raise KinemaError("give both height and width, or a resolution and aspect_ratio")
            check_size(int(height), int(width), multiple)
            return int(height), int(width)
        d = self.config.defaults
        if resolution is None and d["height"] and d["width"]:
            if aspect_ratio is None:
                return int(d["height"]), int(d["width"])
            # a model with a fixed default size keeps its pixel count and changes only the shape
            return size_near_area(int(d["height"]) * int(d["width"]), parse_ratio(aspect_ratio), multiple)
        h, w = size_from_table(resolution or d["resolution"], aspect_ratio or d["aspect_ratio"])
        h, w = fit_to_multiple(h, w, multiple)
        check_size(h, w, multiple)
        return h, w

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
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        resolution: str | None = None,
        aspect_ratio: str | None = None,
        fps: float | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        num_videos_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        prompt_attention_mask: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        negative_prompt_attention_mask: torch.Tensor | None = None,
        max_sequence_length: int | None = None,
        reference=None,
        mask_strategy: str | list[str] | None = None,
        loop: int = 1,
        condition_frame_length: int = 4,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] | tuple[str, ...] = ("latents",),
    ):
        """Generate videos (every argument is checked before any model runs).

        reference: references shared by every prompt (a path or [3, T, H, W] tensor, or a list of them), or one
        list per prompt. mask_strategy: one string, or one per prompt (see kinema.sample.conditioning);
        references without a mask_strategy condition the first frame ("0", image-to-video). loop > 1 generates
        longer videos: each further clip opens with the previous clip's last ``condition_frame_length`` latent
        frames. Without a VAE, pass ``latents`` and use output_type="latent".
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        if output_type not in OUTPUT_TYPES:
            raise KinemaError(f"output_type {output_type!r}; choose one of {', '.join(OUTPUT_TYPES)}")
        unknown = set(callback_on_step_end_tensor_inputs) - set(CALLBACK_TENSOR_INPUTS)
        if unknown:
            raise KinemaError(f"callback_on_step_end_tensor_inputs {sorted(unknown)}; this pipeline passes "
                              f"{', '.join(CALLBACK_TENSOR_INPUTS)}")
        if (prompt is None) == (prompt_embeds is None):
            raise KinemaError("pass either prompt or prompt_embeds (one of them)")
        denoising.check_scheduler(self.scheduler, self.config.prediction_type)
        d = self.config.defaults
        contract = self.transformer.contract()
        # 0 or NaN would otherwise fall back to the defaults below or sample noise
        for name, value, low, integer in (("fps", fps, 0, False), ("guidance_scale", guidance_scale, 0, False),
                                          ("num_inference_steps", num_inference_steps, 1, True),
                                          ("num_frames", num_frames, 1, True)):
            if value is not None:  # numpy and torch scalars as their Python numbers
                check_number(value.item() if hasattr(value, "item") else value, name, minimum=low,
                             min_open=name == "fps", integer=integer)
        fps = float(fps or d["fps"])
        num_inference_steps = int(num_inference_steps or d["num_inference_steps"])
        max_sequence_length = max_sequence_length or d.get("max_sequence_length")
        self._guidance_scale = float(d["guidance_scale"] if guidance_scale is None else guidance_scale)
        if loop < 1:
            raise KinemaError(f"loop must be >= 1, got {loop}")

        # sizes: from the VAE, or from the given latents when there is no VAE
        if self.vae is None:
            if latents is None or output_type != "latent" or loop > 1:
                raise KinemaError("this pipeline has no VAE: pass latents and output_type='latent' (loop=1)")
            num_frames, height, width = num_frames or latents.shape[2], height or 0, width or 0
            latent_shape = tuple(latents.shape[2:])
            tc = 1
        else:
            num_frames = int(num_frames or d["num_frames"])
            height, width = self.resolve_size(height, width, resolution, aspect_ratio)
            tc = self.vae.temporal_compression
            check_num_frames(num_frames, tc)
            latent_shape = tuple(self.vae.latent_size((num_frames, height, width)))
        _check_latent_shape(latent_shape, contract, type(self.transformer).__name__)
        t_lat = latent_shape[0]
        if loop > 1 and not 1 <= condition_frame_length < t_lat:
            raise KinemaError(f"condition_frame_length must be in [1, {t_lat - 1}] (latent frames per clip), "
                              f"got {condition_frame_length}")
        if output_type == "latent" and loop > 1:
            raise KinemaError("output_type='latent' returns one clip; use loop=1")

        batch = (len(check_prompts(prompt, allow_empty=True)) if prompt is not None else prompt_embeds.shape[0])
        b = batch * num_videos_per_prompt
        refs = _per_prompt(reference, b, num_videos_per_prompt, "reference")
        strategies = _strategies(mask_strategy, refs, b, num_videos_per_prompt)
        if (reference is not None or mask_strategy is not None or loop > 1) and not contract.frame_mask:
            raise KinemaError(f"{type(self.transformer).__name__} takes no frame mask, so it cannot condition on "
                              "references (reference, mask_strategy, loop); use STDiT, STDiT2 or DiT")
        channels = latents.shape[1] if self.vae is None else self.vae.latent_channels
        shape = (b, channels, *latent_shape)
        if latents is not None and tuple(latents.shape) != shape:
            raise KinemaError(f"latents must have shape {shape}, got {tuple(latents.shape)}")

        device = self._execution_device
        embeds = self.encode_prompt(prompt, negative_prompt, self.do_classifier_free_guidance, num_videos_per_prompt,
                                    device, prompt_embeds, prompt_attention_mask, negative_prompt_embeds,
                                    negative_prompt_attention_mask, max_sequence_length)
        sizes = size_conditions(num_frames, height, width, fps) if contract.size_conditions else None
        ref_latents = self._encode_references(refs, height, width, device) if any(refs) else [[] for _ in refs]
        overlap = pixel_frames(condition_frame_length, tc)

        clips, tail = [], None
        for loop_id in range(loop):
            z = latents.to(device).float() if (latents is not None and loop_id == 0) else \
                randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)
            z, frame_mask = self._condition(z, ref_latents, strategies, loop_id, tail, condition_frame_length)
            x0 = self.denoise(z, embeds, sizes, frame_mask, num_inference_steps, generator,
                              callback_on_step_end, callback_on_step_end_tensor_inputs)
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

    def denoise(self, z: torch.Tensor, embeds: PromptEmbeddings, sizes, frame_mask: torch.Tensor | None,
                num_inference_steps: int, generator=None, callback: Callable | None = None,
                callback_tensor_inputs=("latents",)) -> torch.Tensor:
        """The denoising loop: start latents ``z`` (references written at the frames ``frame_mask`` marks
        below 1) -> clean latents. Guidance, held frames, callbacks and progress live here and nowhere else."""
        scheduler, transformer = self.scheduler, self.transformer
        prediction_type, cfg_channel = self.config.prediction_type, self.config.cfg_channel
        channels = z.shape[1]
        timesteps = denoising.set_timesteps(scheduler, num_inference_steps, z.device)
        self._num_timesteps = len(timesteps)
        total = scheduler.config.num_train_timesteps
        held = None if frame_mask is None else denoising.HeldFrames(frame_mask, z.float(), generator)
        x = denoising.start_latents(scheduler, z.float())
        state = {"latents": x, "prompt_embeds": embeds.prompt_embeds,
                 "prompt_attention_mask": embeds.prompt_attention_mask}
        if self.do_classifier_free_guidance and embeds.negative_prompt_embeds is not None:  # diffusers' order
            state["prompt_embeds"] = torch.cat([embeds.negative_prompt_embeds, embeds.prompt_embeds])
            state["prompt_attention_mask"] = torch.cat([embeds.negative_prompt_attention_mask,
                                                        embeds.prompt_attention_mask])
        with self._running(transformer), self.progress_bar(total=len(timesteps)) as progress:
            for i, t in enumerate(timesteps):
                if self.attention_cache is not None:
                    self.attention_cache.at_step(i, len(timesteps))
                active = None
                if held is not None:
                    x, active = held.before(x, float(t) / total,
                                            lambda clean, noise, t=t: denoising.renoise(scheduler, clean, noise, t))
                y, y_mask = state["prompt_embeds"], state["prompt_attention_mask"]
                guided = self.do_classifier_free_guidance and y.shape[0] == 2 * x.shape[0]
                x_in = denoising.model_input(scheduler, torch.cat([x, x]) if guided else x, t)
                frames = None if active is None else (torch.cat([active, active]) if guided else active)
                inputs = transformer.model_inputs(y, y_mask, frame_mask=frames, sizes=sizes)
                out = transformer(x_in, t.reshape(1).expand(x_in.shape[0]), **inputs).float()
                if guided:
                    out = denoising.guide(out, self._guidance_scale, cfg_channel)
                pred = denoising.scheduler_input(out, channels, prediction_type, scheduler)
                x = scheduler.step(pred, t, x, **denoising.step_kwargs(scheduler, generator)).prev_sample
                if held is not None:
                    x = held.after(x, active)
                if callback is not None:
                    state["latents"] = x
                    changed = callback(self, i, t, {k: state[k] for k in callback_tensor_inputs}) or {}
                    state.update({k: v for k, v in changed.items() if k in state})
                    x = state["latents"]
                    rows = state["prompt_embeds"].shape[0]
                    if rows not in (x.shape[0], 2 * x.shape[0]):
                        raise KinemaError(
                            f"callback_on_step_end left prompt_embeds with {rows} rows after step {i} for "
                            f"{x.shape[0]} videos; keep {x.shape[0]} (conditional only) or {2 * x.shape[0]} "
                            "(unconditional, then conditional); to turn guidance off midway with several prompts, "
                            "keep the conditional half, prompt_embeds[rows // 2:] (diffusers' SDCFGCutoffCallback "
                            "keeps one row: it is written for one prompt)")
                    if state["prompt_attention_mask"].shape[0] != rows:  # e.g. a CFG cut-off kept the last rows
                        state["prompt_attention_mask"] = state["prompt_attention_mask"][-rows:]
                progress.update()
        return x

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


# ------------------------------------------------------------------ helpers


def check_parts(transformer, vae) -> None:
    """The VAE makes the latents the transformer denoises (the text encoder is checked when it first encodes:
    its width is only known then for registered encoders)."""
    contract = transformer.contract()
    if vae is not None and vae.latent_channels != contract.latent_channels:
        raise KinemaError(f"the VAE ({type(vae).__name__}) makes {vae.latent_channels}-channel latents but the "
                          f"transformer ({type(transformer).__name__}) denoises {contract.latent_channels}-channel "
                          "ones; pair them as trained")


def _offload_target(gpu_id, device, what: str) -> torch.device:
    if device is not None:
        return torch.device(device)
    if not torch.cuda.is_available():
        raise KinemaError(f"{what} keeps models in CPU memory and runs each on a GPU, and no GPU is visible; "
                          "on this machine leave it off (everything already runs on the CPU), or pass device=... "
                          "(--device with --cpu-offload)")
    return torch.device("cuda", gpu_id or 0)


def _layer_offload_hooks(module: torch.nn.Module, device: torch.device) -> list:
    """Hooks moving ``module``'s own parameters (not its children's) and its tensor inputs to ``device`` for its
    forward, and the parameters back after it (accelerate's sequential offload, without accelerate)."""
    if not any(p is not None for p in module._parameters.values()):
        return []

    def move_weights(to):
        for param in module._parameters.values():
            if param is not None:
                param.data = param.data.to(to)

    def before(_, args, kwargs):
        move_weights(device)
        return tree_map(lambda v: v.to(device) if isinstance(v, torch.Tensor) else v, (args, kwargs))

    return [module.register_forward_pre_hook(before, with_kwargs=True),
            module.register_forward_hook(lambda *_: move_weights("cpu"))]


def _given_embeddings(embeds: torch.Tensor, mask: torch.Tensor | None, name: str) -> TextEmbedding:
    """User embeddings [B, L, C] (diffusers' layout) or [B, 1, L, C]; a missing mask means every token counts."""
    if embeds.dim() == 3:
        embeds = embeds[:, None]
    if embeds.dim() != 4 or embeds.shape[1] != 1:
        raise KinemaError(f"{name} must be [batch, tokens, channels] (or [batch, 1, tokens, channels]), "
                          f"got {tuple(embeds.shape)}")
    if mask is None:
        mask = torch.ones(embeds.shape[0], embeds.shape[2], dtype=torch.long, device=embeds.device)
    if tuple(mask.shape) != (embeds.shape[0], embeds.shape[2]):
        raise KinemaError(f"{name}'s attention mask must be [batch, tokens] = {(embeds.shape[0], embeds.shape[2])}, "
                          f"got {tuple(mask.shape)}")
    return TextEmbedding(y=embeds.float(), mask=mask)


def _repeat(emb: TextEmbedding, times: int, device) -> TextEmbedding:
    return TextEmbedding(y=emb.y.repeat_interleave(times, dim=0).to(device),
                         mask=emb.mask.repeat_interleave(times, dim=0).to(device))


def _check_caption_shape(emb: TextEmbedding, contract, name: str) -> None:
    if emb.y.shape[-1] != contract.caption_channels:
        raise KinemaError(f"{name} have {emb.y.shape[-1]} channels but the transformer expects "
                          f"caption_channels={contract.caption_channels}; pair text encoder and transformer as trained")


def _check_latent_shape(latent_shape, contract, name: str) -> None:
    if contract.max_frames is not None and latent_shape[0] > contract.max_frames:
        raise KinemaError(f"{name} is an image model ({contract.max_frames} latent frame); got {latent_shape[0]} "
                          "latent frames: use num_frames=1")
    if contract.latent_size is not None and tuple(latent_shape) != tuple(contract.latent_size):
        raise KinemaError(f"{name} was built for latents of (T, H, W) = {tuple(contract.latent_size)}; this call "
                          f"makes {tuple(latent_shape)}: choose num_frames/height/width to match")


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
    uint8 = (frames * 255).round().to(torch.uint8)
    if output_type == "uint8":
        return uint8
    from PIL import Image

    return [[Image.fromarray(frame.numpy()) for frame in clip] for clip in uint8]
