"""The module diffusers' generic loader imports for ``custom_pipeline``: it copies this one file and reads
``KinemaVideoPipeline`` from it, so the file only re-exports the installed class (the pipeline's code stays in
this package; a pipeline folder never carries code). diffusers builds components only from modules already
imported, so the installed kinema components (models, VAEs, text encoders) are imported here."""

from kinema.sample.pipeline import KinemaVideoPipeline
from kinema.sample.pipeline_folder import import_registered_components

import_registered_components()

__all__ = ["KinemaVideoPipeline"]
