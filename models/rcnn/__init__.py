"""rcnn: Faster, Mask and Libra R-CNN in maskrcnn-benchmark style, on any PyTorch device."""

__version__ = "0.1.0"
