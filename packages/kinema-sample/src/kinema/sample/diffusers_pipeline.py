"""The module diffusers' generic loader imports for ``custom_pipeline``: it copies this one file and reads
``KinemaVideoPipeline`` from it, so the file only re-exports the installed class (the pipeline's code stays in
this package). diffusers builds components only from modules already imported, so the installed kinema
components (models, VAEs, text encoders) are imported here. diffusers' loader reads the folder before any
kinema code sees it, and with ``trust_remote_code=True`` runs a component's ``.py`` file: load folders you did
not make with ``KinemaVideoPipeline.from_pretrained``, which refuses code and paths leading outside the folder."""

from kinema.sample.pipeline import KinemaVideoPipeline
from kinema.sample.pipeline_folder import import_registered_components

import_registered_components()

__all__ = ["KinemaVideoPipeline"]
