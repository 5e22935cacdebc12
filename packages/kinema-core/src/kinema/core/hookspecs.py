"""Hook specifications of the `kinema` pluggy project.

Every hook hands the plugin a ``register`` callback, so one plugin can contribute
any number of components. ``register(name, obj, **info)`` adds ``obj`` under
``name`` to the registry of that kind; ``info`` is free-form metadata shown by
``kinema plugins``. Register ``kinema.core.Lazy("my_package.kernels:my_backend")`` instead of the
object to keep discovery import-light: the module is imported when the component is first used.
A plugin module should import nothing heavy at its top (no torch, diffusers, transformers, pandas).

A plugin is a module (or object) listed under the ``kinema`` entry-point group:

    [project.entry-points.kinema]
    my_kernels = "my_package.kinema_plugin"

and implements any of these hooks with ``@kinema.core.hookimpl``.
"""

from __future__ import annotations

import pluggy

PROJECT = "kinema"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_models(register):
    """Diffusion transformers: ``register("STDiT-XL/2", factory)``; factory(**config) -> a diffusers ``ModelMixin``
    that implements ``kinema.dit.contract.VideoModel`` (what it takes: ``contract()``, ``null_caption()``), which is
    how the pipeline and the trainer call it."""


@hookspec
def register_vaes(register):
    """Video autoencoders: ``register("causal-video-vae", factory)``."""


@hookspec
def register_attention_backends(register):
    """Attention kernels: ``register("sdpa", AttentionBackend(...))`` (see ``kinema.core.attention``)."""


@hookspec
def register_schedulers(register):
    """Noise schedulers (training and sampling sides): ``register("iddpm", factory)``."""


@hookspec
def register_text_encoders(register):
    """Text / class-label encoders: ``register("t5", factory)``."""


@hookspec
def register_scorers(register):
    """Data scorers over a metadata table: ``register("flow", factory)``."""


@hookspec
def register_captioners(register):
    """Captioners: ``register("template", factory)``."""


@hookspec
def register_commands(cli):
    """Add click commands or groups to the ``kinema`` CLI root.

    ``cli.add_lazy_command("name", "my_package.cli:command", "One-line help.")`` imports the command's module only
    when it runs (preferred); ``cli.add_command(command)`` adds an already imported click command.
    """
