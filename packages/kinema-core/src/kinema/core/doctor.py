"""`kinema doctor`: what this machine can run — torch build, devices, kernels, optional tools."""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass

import torch

from .plugins import get_plugins
from .registry import get_registry

OPTIONAL_MODULES = {
    "diffusers": "VAEs, schedulers, pipelines",
    "transformers": "T5 / CLIP / MiniLM text encoders",
    "av": "video read/write (PyAV)",
    "cv2": "optical flow, blur and camera-motion scores (OpenCV)",
    "scenedetect": "scene split (PySceneDetect)",
    "pytesseract": "OCR score (Tesseract)",
    "webdataset": "webdataset shards",
    "megatron.core": "tensor / sequence parallel training",
    "flash_attn": "flash_attn attention backend (CUDA only)",
    "xformers": "xformers attention backend (CUDA only)",
    "gradio": "kinema demo",
}
OPTIONAL_BINARIES = {"ffmpeg": "video cutting and encoding", "tesseract": "OCR score"}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def torch_checks() -> list[Check]:
    cuda = torch.cuda.is_available()
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU build"
    devices = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    capability = torch.backends.cpu.get_cpu_capability()
    checks = [
        Check("torch", True, f"{torch.__version__} ({build})"),
        Check("cpu", True, f"{torch.get_num_threads()} threads, capability {capability}"),
        Check("cuda", cuda, devices if cuda else "no CUDA device"),
    ]
    if cuda:
        checks.append(Check("bf16", torch.cuda.is_bf16_supported(), "bf16 autocast on CUDA"))
    else:
        checks.append(Check("bf16", False, "CPU: kinema runs fp32 (bf16 matmul has no fast path on most CPUs)"))
    return checks


def attention_checks() -> list[Check]:
    checks = []
    for entry in get_registry("attention_backend").entries():
        ok, why = entry.obj.available()
        devices = ",".join(sorted(entry.obj.devices))
        detail = why or f"available (devices: {devices}; from {entry.distribution})"
        checks.append(Check(f"attention:{entry.name}", ok, detail))
    return checks


def dependency_checks() -> list[Check]:
    checks = []
    for module, purpose in OPTIONAL_MODULES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        checks.append(Check(module, found, purpose if found else f"not installed ({purpose})"))
    for binary, purpose in OPTIONAL_BINARIES.items():
        path = shutil.which(binary)
        checks.append(Check(binary, path is not None, path or f"not on PATH ({purpose})"))
    return checks


def plugin_failure_checks() -> list[Check]:
    return [
        Check(f"plugin:{f.name}", False, f"distribution {f.distribution}: {f.error}")
        for f in get_plugins().failures
    ]


def run_checks() -> list[Check]:
    return torch_checks() + attention_checks() + dependency_checks() + plugin_failure_checks()
