"""Experiment trackers behind one small interface: scalars, videos, close.

``Trackers`` fans every call out to the enabled ones (TensorBoard, Weights & Biases); other ranks than
the main one get an empty fan-out, so the trainer calls it unconditionally. Each tracker's own files live
in the run folder (``tensorboard/``, ``wandb/``).
"""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path
from typing import Optional

import numpy as np

from kinema.core import KinemaError


class Tracker:
    """What the trainer logs: numbers by name at a step, and videos (uint8 [T, H, W, 3], also written as mp4)."""

    def scalars(self, values: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def video(self, name: str, frames: np.ndarray, fps: float, step: int, caption: str = "",
              path: Optional[Path] = None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Trackers(Tracker):
    """The fan-out over the enabled trackers."""

    def __init__(self, trackers: list[Tracker] = ()):
        self.trackers = list(trackers)

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def scalars(self, values: dict[str, float], step: int) -> None:
        numbers = {k: float(v) for k, v in values.items() if k != "step" and isinstance(v, (int, float))}
        for tracker in self.trackers:
            tracker.scalars(numbers, step)

    def video(self, name: str, frames: np.ndarray, fps: float, step: int, caption: str = "",
              path: Optional[Path] = None) -> None:
        for tracker in self.trackers:
            tracker.video(name, frames, fps, step, caption, path)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()


class TensorBoardTracker(Tracker):
    def __init__(self, folder: Path, start_step: int):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise KinemaError("logging.tensorboard=true needs TensorBoard: pip install 'kinema-train[tensorboard]'") \
                from None
        # purge_step drops events a resumed run replays
        self.writer = SummaryWriter(str(folder / "tensorboard"), purge_step=start_step or None)

    def scalars(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key if "/" in key else f"train/{key}", value, step)

    def video(self, name: str, frames: np.ndarray, fps: float, step: int, caption: str = "",
              path: Optional[Path] = None) -> None:
        # SummaryWriter.add_video needs moviepy to make its GIF; Pillow makes the same animated GIF summary
        from tensorboard.compat.proto.summary_pb2 import Summary

        image = Summary.Image(height=frames.shape[1], width=frames.shape[2], colorspace=3,
                              encoded_image_string=animated_gif(frames, fps))
        self.writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=name, image=image)]), step)
        if caption:
            self.writer.add_text(f"{name}/caption", caption, step)

    def close(self) -> None:
        self.writer.close()


class WandbTracker(Tracker):
    """A Weights & Biases run in the run folder; resuming a training run resumes the same wandb run."""

    def __init__(self, folder: Path, project: str, mode: Optional[str], config: dict, name: str):
        try:
            import wandb
        except ImportError:
            raise KinemaError("logging.wandb=true needs Weights & Biases: pip install 'kinema-train[wandb]'") \
                from None
        self.wandb = wandb
        id_file = folder / "wandb-run-id"
        run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:12]
        if not id_file.is_file():
            _atomic_write_text(id_file, run_id + "\n")
        self.run = wandb.init(project=project, dir=str(folder), id=run_id, resume="allow", name=name,
                              config=config, mode=mode or os.environ.get("WANDB_MODE") or "online",
                              settings=wandb.Settings(console="off"))

    def scalars(self, values: dict[str, float], step: int) -> None:
        self.run.log({k if "/" in k else f"train/{k}": v for k, v in values.items()}, step=step)

    def video(self, name: str, frames: np.ndarray, fps: float, step: int, caption: str = "",
              path: Optional[Path] = None) -> None:
        if path is not None:  # the mp4 the trainer wrote: wandb uploads it as is (arrays would need moviepy)
            video = self.wandb.Video(str(path), caption=caption or None, format="mp4")
        else:
            video = self.wandb.Video(io.BytesIO(animated_gif(frames, fps)), caption=caption or None, format="gif")
        self.run.log({name: video}, step=step)

    def close(self) -> None:
        self.run.finish()


def animated_gif(frames: np.ndarray, fps: float) -> bytes:
    from PIL import Image

    images = [Image.fromarray(np.ascontiguousarray(f)) for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:],
                   duration=max(1, round(1000 / max(fps, 1e-3))), loop=0)
    return buffer.getvalue()


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def build_trackers(logging_cfg, folder: str | os.PathLike, config: dict, start_step: int,
                   active: bool = True) -> Trackers:
    """The trackers ``logging`` enables (none on ranks other than the main one)."""
    if not active:
        return Trackers()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    trackers: list[Tracker] = []
    if logging_cfg.tensorboard:
        trackers.append(TensorBoardTracker(folder, start_step))
    if logging_cfg.wandb:
        trackers.append(WandbTracker(folder, logging_cfg.wandb_project, logging_cfg.wandb_mode, config,
                                     name=folder.resolve().name))
    return Trackers(trackers)


def check_trackers_installed(logging_cfg) -> None:
    """The trackers a config asks for are installed: checked before the run folder is touched, so a missing
    extra does not leave a half-started run behind (looked up, not imported: both imports are slow)."""
    from importlib.util import find_spec

    if logging_cfg.tensorboard and find_spec("tensorboard") is None:
        raise KinemaError("logging.tensorboard=true needs TensorBoard: pip install 'kinema-train[tensorboard]'")
    if logging_cfg.wandb and find_spec("wandb") is None:
        raise KinemaError("logging.wandb=true needs Weights & Biases: pip install 'kinema-train[wandb]'")
