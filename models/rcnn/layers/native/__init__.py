"""Detection ops in plain torch tensor ops: they run on any device torch runs on."""

from .nms import batched_nms, nms
from .roi_align import roi_align
from .roi_pool import roi_pool

__all__ = ["batched_nms", "nms", "roi_align", "roi_pool"]
