"""kinema-sample's plugin: schedulers, text encoders and the `kinema sample`, `eval` and `demo` commands.

Registered by name (``Lazy``): discovery imports neither torch, diffusers nor transformers.
"""

from __future__ import annotations

from kinema.core import Lazy, hookimpl

# registry name -> training objective (iddpm, rflow: train with them; their sampler() samples) or a factory of
# a diffusers scheduler on the trained chain (sampling only)
SCHEDULERS = {
    "iddpm": "kinema.sample.schedulers.iddpm:IDDPMScheduler",
    "rflow": "kinema.sample.schedulers.rflow:RectifiedFlowScheduler",
    "ddim": "kinema.sample.schedulers.samplers:ddim",
    "dpm-solver": "kinema.sample.schedulers.samplers:dpm_solver",
    "pndm": "kinema.sample.schedulers.samplers:pndm",
    "euler": "kinema.sample.schedulers.samplers:euler",
    "euler-a": "kinema.sample.schedulers.samplers:euler_a",
    "heun": "kinema.sample.schedulers.samplers:heun",
    "unipc": "kinema.sample.schedulers.samplers:unipc",
    "ddpm": "kinema.sample.schedulers.samplers:ddpm",
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
    cli.add_lazy_command("pipeline", "kinema.sample.assemble:pipeline_group",
                         "Pipeline folders: assemble one from converted upstream parts.")
    cli.add_lazy_command("demo", "kinema.sample.demo:demo_command",
                         "Serve a local web page to generate videos and images with a pipeline "
                         "(needs kinema-sample[demo]).")
