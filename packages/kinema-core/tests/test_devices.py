"""resolve_device: a --device value -> a torch.device that exists here, or one line saying what to pass."""

import pytest
import torch
from kinema.core import KinemaError
from kinema.core.devices import resolve_device


def test_cpu_and_the_default():
    assert resolve_device("cpu", "--device") == torch.device("cpu")
    assert resolve_device(" cpu ", "--device") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None, "--device").type == expected


@pytest.mark.parametrize("text", ["bogus", "cuda:x", "gpu", "", "cpu:1", "meta"])
def test_names_torch_or_kinema_cannot_use(text):
    if text == "":
        assert resolve_device(text, "--device").type in ("cpu", "cuda")
        return
    with pytest.raises(KinemaError, match=f"^--device {text}: "):
        resolve_device(text, "--device")


def test_cuda_without_a_cuda_build(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None)
    with pytest.raises(KinemaError) as err:
        resolve_device("cuda", "--device")
    assert str(err.value) == ("--device cuda: this torch build has no CUDA; use --device cpu or install a CUDA "
                              "build of torch")


def test_gpu_index_past_the_visible_ones(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1", "device") == torch.device("cuda", 1)
    with pytest.raises(KinemaError, match=r"^device cuda:2: there are 2 visible GPUs; use cuda:0 to cuda:1"):
        resolve_device("cuda:2", "device")


def test_a_cuda_build_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(KinemaError, match="no CUDA GPU is visible"):
        resolve_device("cuda", "--device")


def test_importing_the_module_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, kinema.core.devices; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
