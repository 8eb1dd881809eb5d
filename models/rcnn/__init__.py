"""rcnn: Faster, Mask and Libra R-CNN in maskrcnn-benchmark style, on any PyTorch device."""

from rcnn.compat import require_supported_torch

__version__ = "0.1.0"

# below the supported torch nothing works: stop every entry point with one line, not a traceback
require_supported_torch()
