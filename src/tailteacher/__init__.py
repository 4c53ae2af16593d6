"""tailteacher: semi-supervised long-tailed instance segmentation with better pseudo-labels."""

__version__ = "0.1.0"
