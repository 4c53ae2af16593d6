"""Models: Cascade Mask R-CNN on torchvision parts with soft-target classification, and backbones."""
