"""rcnn: R-CNN detectors (Faster, Mask, Libra) in maskrcnn-benchmark style, on any PyTorch device."""

__version__ = "0.1.0"
