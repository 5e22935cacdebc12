"""kinema.sample: the video pipeline (a diffusers DiffusionPipeline), training objectives and diffusers'
samplers by name, text encoders and conditioning (mask_strategy). Imports nothing heavy until used.

``DIFFUSERS_CUSTOM_PIPELINE`` is the file diffusers' generic loader takes as ``custom_pipeline``::

    DiffusionPipeline.from_pretrained(folder, custom_pipeline=kinema.sample.DIFFUSERS_CUSTOM_PIPELINE,
                                      trust_remote_code=True)
"""

from pathlib import Path

from kinema.core import lazy_exports

DIFFUSERS_CUSTOM_PIPELINE = str(Path(__file__).with_name("diffusers_pipeline.py"))

__getattr__, __dir__ = lazy_exports(__name__, {
    "KinemaVideoPipeline": ".pipeline",
    "VideoPipelineOutput": ".pipeline",
})
