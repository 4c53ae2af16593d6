"""Data: LVIS/COCO json with validation, the embedded benchmark, sampling and augmentations."""
