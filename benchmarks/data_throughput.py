"""Clips per second of each kinema-data stage on real clips, with 1 and 2 worker processes.

    python benchmarks/data_throughput.py [--clips 12] [--workers 1 2] [--stages info scenes flow ...]

Uses the animated WebP clips of comfyui-workflow-templates-media-video (kinema-data's test extra).
Each run starts from an empty output, so nothing is skipped; starting the pool's workers is
included, the one-off start of the fork server is not (a warm-up run does it).
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import pandas as pd

from kinema.data.info import VideoInfoStage
from kinema.data.runner import run_stage
from kinema.data.scenes import SceneDetectStage
from kinema.data.scorers.blur import BlurScorer
from kinema.data.scorers.cmotion import CameraMotionScorer
from kinema.data.scorers.flow import FlowScorer
from kinema.data.scorers.ocr import OcrScorer

STAGES = {
    "info": VideoInfoStage,
    "scenes": SceneDetectStage,
    "flow": FlowScorer,
    "ocr": OcrScorer,
    "blur": BlurScorer,
    "cmotion": CameraMotionScorer,
}


def real_clips(count: int) -> list[str]:
    spec = importlib.util.find_spec("comfyui_workflow_templates_media_video")
    if spec is None:
        raise SystemExit("pip install comfyui-workflow-templates-media-video (kinema-data's test extra)")
    folder = Path(spec.origin).parent / "templates"
    clips = sorted(p for p in folder.glob("*.webp") if p.stat().st_size > 100_000)  # skip 1-frame stills
    return [str(p) for p in clips[:count]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    args = parser.parse_args()

    paths = real_clips(args.clips)
    with tempfile.TemporaryDirectory() as tmp:
        info = run_stage(VideoInfoStage(), pd.DataFrame({"path": paths}), Path(tmp) / "info.csv", workers=1,
                         progress=False)
        table = pd.read_csv(info.output)
        run_stage(VideoInfoStage(), table.iloc[:2], Path(tmp) / "warmup.csv", workers=2, progress=False)
        frames = int(table["num_frames"].sum())
        print(f"{len(paths)} real clips, {frames} frames, sizes "
              f"{sorted({f'{h}x{w}' for h, w in zip(table.height, table.width)})}")
        print(f"{'stage':<10}" + "".join(f"{f'{w} proc clips/s':>18}" for w in args.workers) + f"{'speed-up':>10}")
        for name in args.stages:
            rates = []
            for workers in args.workers:
                out = Path(tmp) / f"{name}-{workers}.csv"
                start = time.perf_counter()
                report = run_stage(STAGES[name](), table, out, workers=workers, progress=False, save_every=10_000)
                elapsed = time.perf_counter() - start
                if report.errors:
                    print(f"  ({name}: {report.errors} errors)")
                rates.append(len(table) / elapsed)
            ratio = f"{rates[-1] / rates[0]:.2f}x" if len(rates) > 1 else ""
            print(f"{name:<10}" + "".join(f"{r:>18.2f}" for r in rates) + f"{ratio:>10}")


if __name__ == "__main__":
    main()
