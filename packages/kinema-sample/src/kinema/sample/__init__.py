"""kinema.sample: schedulers, text encoders, conditioning (mask_strategy) and the video pipeline."""
