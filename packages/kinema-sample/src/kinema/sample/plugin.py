"""kinema-sample's plugin: schedulers, text encoders and the `kinema sample`, `eval` and `demo` commands.

Registered by name (``Lazy``): discovery imports neither torch, diffusers nor transformers.
"""

from __future__ import annotations

from kinema.core import Lazy, hookimpl

# registry name -> scheduler class; a config or the CLI picks one by name
SCHEDULERS = {
    "iddpm": "kinema.sample.schedulers.iddpm:IDDPMScheduler",
    "ddim": "kinema.sample.schedulers.diffusers_wrappers:DDIMSampler",
    "dpm-solver": "kinema.sample.schedulers.diffusers_wrappers:DPMSolverSampler",
    "rflow": "kinema.sample.schedulers.rflow:RectifiedFlowScheduler",
}

# registry name -> text encoder factory
TEXT_ENCODERS = {
    "t5": "kinema.sample.text_encoders.hf:t5",
    "clip": "kinema.sample.text_encoders.hf:clip",
    "minilm": "kinema.sample.text_encoders.hf:minilm",
    "tiny-t5": "kinema.sample.text_encoders.hf:tiny_t5",
    "classes": "kinema.sample.text_encoders.labels:ClassLabelEncoder",
    "unconditional": "kinema.sample.text_encoders.labels:UnconditionalEncoder",
}


@hookimpl
def register_schedulers(register):
    for name, target in SCHEDULERS.items():
        register(name, Lazy(target))


@hookimpl
def register_text_encoders(register):
    for name, target in TEXT_ENCODERS.items():
        register(name, Lazy(target))


@hookimpl
def register_commands(cli):
    cli.add_lazy_command("sample", "kinema.sample.cli:sample_command",
                         "Generate videos from text (and reference images/videos) with a pipeline folder.")
    cli.add_lazy_command("eval", "kinema.sample.adherence:eval_group", "Evaluate generators.")
    cli.add_lazy_command("demo", "kinema.sample.demo:demo_command",
                         "Serve a local web page to generate videos and images with a pipeline "
                         "(needs kinema-sample[demo]).")
