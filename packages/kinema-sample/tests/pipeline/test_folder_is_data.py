"""A pipeline folder is data: loading one never asks on the terminal, never runs code it carries and never
reads a file outside it."""

import json
import os
import subprocess
import sys

import pytest
from kinema.core import KinemaError

from kinema.sample.pipeline import KinemaVideoPipeline
from kinema.sample.pipeline_folder import load_transformers_components, read_index
from kinema.sample.testing import make_tiny_pipeline
from kinema.sample.text_encoders.registered import folder_paths

# what a folder's own code would do if it ever ran (transformers runs a copy from its cache: the marker path
# is absolute)
EVIL = """
from pathlib import Path
Path({marker!r}).write_text("yes")
from transformers import T5Config, T5EncoderModel

class EvilConfig(T5Config):
    model_type = "kinema-evil"

class EvilModel(T5EncoderModel):
    config_class = EvilConfig
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny"
    make_tiny_pipeline(path)
    return path


@pytest.fixture()
def copy(folder, tmp_path):
    target = tmp_path / "copy"
    KinemaVideoPipeline.from_pretrained(folder).save_pretrained(target)
    return target


def _edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _with_auto_map(folder, marker=None):
    """The folder names transformers' AutoModel for its text encoder and asks, by auto_map, for its own classes
    (of a model type transformers does not know: without trust_remote_code=False, transformers asks
    "Do you wish to run the custom code? [y/N]" on the terminal)."""
    _edit_json(folder / "model_index.json", text_encoder=["transformers", "AutoModel"])
    _edit_json(folder / "text_encoder" / "config.json", model_type="kinema-evil",
               auto_map={"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"})
    if marker is not None:
        (folder / "text_encoder" / "evil.py").write_text(EVIL.format(marker=str(marker)))


def _one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def test_auto_map_is_refused_naming_the_file_and_key(copy):
    _with_auto_map(copy)
    with pytest.raises(KinemaError) as err:
        KinemaVideoPipeline.from_pretrained(copy)
    message = _one_line(err)
    assert "text_encoder/config.json" in message and "'auto_map'" in message and "evil.EvilModel" in message


def test_python_files_anywhere_in_the_folder_are_refused(copy):
    (copy / "vae" / "helper.py").write_text("raise SystemExit('ran')\n")
    with pytest.raises(KinemaError, match=r"vae/helper\.py is Python code; kinema never runs code"):
        KinemaVideoPipeline.from_pretrained(copy)


def test_custom_pipeline_keys_and_class_modules_are_refused(copy):
    _edit_json(copy / "model_index.json", custom_pipeline="pipeline_evil")
    with pytest.raises(KinemaError, match=r"model_index.json: key 'custom_pipeline' names code"):
        KinemaVideoPipeline.from_pretrained(copy)
    _edit_json(copy / "model_index.json", custom_pipeline=None, _class_name=["pipeline_evil", "Evil"])
    with pytest.raises(KinemaError, match=r"key '_class_name' is \['pipeline_evil', 'Evil'\]"):
        KinemaVideoPipeline.from_pretrained(copy)


def test_loading_options_cannot_ask_for_remote_code(folder):
    for option in ({"trust_remote_code": True}, {"custom_pipeline": "x.py"}):
        with pytest.raises(KinemaError, match="never runs code from a model folder"):
            KinemaVideoPipeline.from_pretrained(folder, **option)


def test_loading_answers_no_question_even_with_yes_on_stdin(copy, tmp_path):
    """The reported case end to end: a terminal answering y to transformers' question would run the code."""
    marker = tmp_path / "folder-code-ran"
    _with_auto_map(copy, marker)
    code = ("from kinema.sample.pipeline import KinemaVideoPipeline\n"
            f"KinemaVideoPipeline.from_pretrained({str(copy)!r})\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-c", code], input="y\ny\ny\n", capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode != 0
    assert "KinemaError" in result.stderr and "kinema never runs code from a model folder" in result.stderr
    assert "Do you wish to run the custom code" not in result.stdout + result.stderr
    assert not marker.exists()


def test_transformers_components_load_with_remote_code_off_and_never_read_stdin(copy, tmp_path, monkeypatch):
    """Below the folder check, the transformers loader itself is told trust_remote_code=False."""
    marker = tmp_path / "folder-code-ran"
    _with_auto_map(copy, marker)

    class NoStdin:
        def readline(self, *args):
            raise AssertionError("stdin was read")

        read = readline

    monkeypatch.setattr(sys, "stdin", NoStdin())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(KinemaError) as err:
        load_transformers_components(copy, read_index(copy))
    assert _one_line(err).startswith("cannot load text_encoder/ of the pipeline")
    assert not marker.exists()
    # the transformers components of an ordinary folder load this way, as diffusers would build them
    loaded = load_transformers_components(copy, {**read_index(copy), "text_encoder": [None, None]})
    assert type(loaded["tokenizer"]).__name__ == "ByT5Tokenizer"


def test_links_leading_out_of_the_folder_are_refused(copy, tmp_path):
    outside = tmp_path / "outside.safetensors"
    weights = next((copy / "vae").glob("*.safetensors"))
    os.replace(weights, outside)
    weights.symlink_to(outside)
    with pytest.raises(KinemaError) as err:
        KinemaVideoPipeline.from_pretrained(copy)
    message = _one_line(err)
    assert "link" in message and str(outside) in message and "leads outside the model folder" in message


def test_a_component_folder_linked_from_elsewhere_is_refused(copy, tmp_path):
    os.replace(copy / "scheduler", tmp_path / "scheduler-elsewhere")
    (copy / "scheduler").symlink_to(tmp_path / "scheduler-elsewhere")
    with pytest.raises(KinemaError, match="model_index.json component 'scheduler'.*leads outside the model folder"):
        KinemaVideoPipeline.from_pretrained(copy)


def test_registered_text_encoder_paths_must_stay_in_the_folder(tmp_path):
    from kinema.sample.text_encoders import RegisteredTextEncoder

    pipe = make_tiny_pipeline()
    pipe.text_encoder, pipe.tokenizer = RegisteredTextEncoder("tiny-t5", {"max_length": 16, "hidden_size": 32}), None
    pipe.save_pretrained(tmp_path / "named")
    config = tmp_path / "named" / "text_encoder" / "config.json"
    for bad in ("../../../../etc", "/etc", "~/.ssh"):
        _edit_json(config, name="t5", options={"path": bad})
        with pytest.raises(KinemaError) as err:
            KinemaVideoPipeline.from_pretrained(tmp_path / "named")
        message = _one_line(err)
        assert f"options.path {bad!r} leads outside the model folder" in message
    # a path-looking value under any key is checked too
    _edit_json(config, name="t5", options={"weights": "../../secrets"})
    with pytest.raises(KinemaError, match=r"options.weights '../../secrets' leads outside"):
        KinemaVideoPipeline.from_pretrained(tmp_path / "named")


def test_registered_text_encoder_paths_are_relative_to_its_folder(tmp_path):
    (tmp_path / "t5-weights").mkdir()
    (tmp_path / "t5-weights" / "escape").symlink_to(tmp_path.parent)
    checked = folder_paths(tmp_path, {"path": "t5-weights", "max_length": 120, "version": "1.1"})
    assert checked == {"path": str((tmp_path / "t5-weights").resolve()), "max_length": 120, "version": "1.1"}
    with pytest.raises(KinemaError, match="options.model_dir 't5-weights/escape' leads outside"):
        folder_paths(tmp_path, {"model_dir": "t5-weights/escape"})


def test_named_encoders_load_transformers_folders_with_remote_code_off(tmp_path, monkeypatch):
    import transformers

    from kinema.sample.text_encoders import hf

    seen = []

    def record(name):
        def from_pretrained(path, **options):
            seen.append((name, options.get("trust_remote_code", "not passed")))
            raise OSError("stop here")
        return from_pretrained

    for cls in ("AutoTokenizer", "T5EncoderModel", "CLIPTextModel"):
        monkeypatch.setattr(getattr(transformers, cls), "from_pretrained", record(cls))
    monkeypatch.setattr(hf, "_missing", lambda *args: KinemaError("missing"))
    for build in (lambda: hf.t5(str(tmp_path)), lambda: hf.clip(str(tmp_path))):
        with pytest.raises(KinemaError):
            build()
    assert seen == [("AutoTokenizer", False), ("AutoTokenizer", False)]
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda path, **o: object())
    for build in (lambda: hf.t5(str(tmp_path)), lambda: hf.clip(str(tmp_path))):
        with pytest.raises(KinemaError):
            build()
    assert seen[2:] == [("T5EncoderModel", False), ("CLIPTextModel", False)]


def test_a_hugging_face_cache_snapshot_links_into_its_blobs(folder, tmp_path):
    """snapshot_download's cache layout: files are links to ../../blobs/<hash>, still the same repository."""
    repo = tmp_path / "models--someone--tiny"
    snapshot = repo / "snapshots" / "0123abc"
    KinemaVideoPipeline.from_pretrained(folder).save_pretrained(snapshot)
    (repo / "blobs").mkdir()
    for i, file in enumerate(sorted(snapshot.rglob("*.safetensors"))):
        os.replace(file, repo / "blobs" / f"blob{i}")
        file.symlink_to(os.path.relpath(repo / "blobs" / f"blob{i}", file.parent))
    assert KinemaVideoPipeline.from_pretrained(snapshot).transformer is not None
    (repo / "elsewhere.safetensors").write_bytes(b"")
    link = snapshot / "vae" / "extra.safetensors"
    link.symlink_to(repo / "elsewhere.safetensors")
    with pytest.raises(KinemaError, match="leads outside the model folder"):
        KinemaVideoPipeline.from_pretrained(snapshot)
