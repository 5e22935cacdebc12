"""Hook specifications of the `osp` pluggy project.

Every hook hands the plugin a ``register`` callback, so one plugin can contribute
any number of components. ``register(name, obj, **info)`` adds ``obj`` under
``name`` to the registry of that kind; ``info`` is free-form metadata shown by
``osp plugins``.

A plugin is a module (or object) listed under the ``osp`` entry-point group:

    [project.entry-points.osp]
    my_kernels = "my_package.osp_plugin"

and implements any of these hooks with ``@osp.core.hookimpl``.
"""

from __future__ import annotations

import pluggy

PROJECT = "osp"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_models(register):
    """Diffusion transformers: ``register("STDiT-XL/2", factory)``; factory(**config) -> nn.Module."""


@hookspec
def register_vaes(register):
    """Video autoencoders: ``register("causal-video-vae", factory)``."""


@hookspec
def register_attention_backends(register):
    """Attention kernels: ``register("sdpa", AttentionBackend(...))`` (see ``osp.core.attention``)."""


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
    """Add click commands or groups to the ``osp`` CLI root: ``cli.add_command(...)``."""
