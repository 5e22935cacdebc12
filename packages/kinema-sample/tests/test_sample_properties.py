"""Property: whatever `kinema sample` is given, it exits 0, 1 or 2 with a message, never with a traceback.

Values that would be valid are drawn small (a few frames, one or two steps, the 32x32 default model), so the
runs that get past validation sample in about a second; most examples are refused by the checks.
"""

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sample_runner import EXCEPTION_PREFIX, kinema, png_header

HUGE = [2**63, 2**70, -(2**70), 10**40]
odd_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
odd_float = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["nan", "inf", "-inf", "1e999"]))
odd_int = st.one_of(st.integers(), st.sampled_from(HUGE), st.sampled_from(["0x10", "1.5", "", " 3", "-0"]))


def small_or_odd(valid):
    """Valid values kept small (a run stays fast; drawn half the time), or anything that should be refused."""
    refused = st.one_of(st.integers(max_value=min(valid) - 1), st.sampled_from(HUGE), odd_text)
    return st.one_of(st.sampled_from(valid), refused)


OPTIONS = {
    "--seed": odd_int,
    "--cfg": odd_float,
    "--fps": odd_float,
    "--batch-size": odd_int,
    "--aspect-ratio": st.one_of(odd_text, st.sampled_from(["9:16", "1:1", "0.5", "1:0", "nan", "8:1", "1:9"])),
    "--resolution": st.one_of(odd_text, st.sampled_from(["999p", "0x0", "-4x8", "8x8", "16x24", "100000x100000",
                                                         "3x5", "99999999999999999999x4"])),
    "--device": st.one_of(odd_text, st.sampled_from(["cpu", "cuda", "cuda:7", "bogus", "meta", "mps", "cpu:0"])),
    "--dtype": st.one_of(odd_text, st.sampled_from(["float32", "bfloat16", "float64"])),
    "--scheduler": st.one_of(odd_text, st.sampled_from(["rflow", "ddim", "euler", "nope"])),
    "--negative-prompt": odd_text,
    "--mask-strategy": odd_text,
    "--attention-cache": st.one_of(odd_text, st.sampled_from(["default", "spatial=0", "start=nan", "end=2"])),
    "--loop": small_or_odd([1, 2]),
    "--condition-frame-length": small_or_odd([1, 2]),
    "--reference": st.sampled_from(["missing.png", "huge.png", "junk.mp4"]),
    "--prompt-file": st.sampled_from(["binary.txt", "text.txt", "empty.txt"]),
    "--from-sidecar": st.sampled_from(["missing.json", "binary.txt", "text.txt"]),
    "-o": st.sampled_from(["out.mp4", "out.webp", "sub/out.gif", "out.png", "out.avi", ".", "/sys/out.mp4"]),
}


def write_inputs(folder: Path) -> None:
    png_header(folder / "huge.png", 12000, 12000)
    (folder / "junk.mp4").write_bytes(b"\x00\x01 not a video")
    (folder / "binary.txt").write_bytes(bytes(range(256)))
    (folder / "text.txt").write_text("a red circle moving right\n")
    (folder / "empty.txt").write_text("\n\n")


@settings(deadline=None, max_examples=25, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(prompt=st.one_of(st.just("a red circle moving right"), st.none(), odd_text),
       options=st.lists(st.sampled_from(sorted(OPTIONS)), min_size=1, max_size=4, unique=True).flatmap(
           lambda chosen: st.fixed_dictionaries({k: OPTIONS[k] for k in chosen})),
       steps=small_or_odd([1, 2]), num_frames=small_or_odd([1, 5, 9]))
def test_sample_never_fails_with_a_traceback(prompt, options, steps, num_frames):
    args = [] if prompt is None else [prompt]
    for name, value in options.items():
        args += [name, str(value)]
    args += ["--steps", str(steps), "--num-frames", str(num_frames)]
    with tempfile.TemporaryDirectory() as folder:
        write_inputs(Path(folder))
        run = kinema("sample", *args, cwd=Path(folder))
    assert run.exit_code in (0, 1, 2), (args, run.exit_code, run.output)
    assert run.exception is None or isinstance(run.exception, SystemExit), (args, repr(run.exception))
    assert "Traceback" not in run.output, (args, run.output)
    assert not EXCEPTION_PREFIX.search(run.output), (args, run.output)
    assert "unexpected failure" not in run.output, (args, run.output)
