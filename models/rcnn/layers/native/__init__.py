"""Detection ops in plain torch tensor ops, for devices without a working kernel.

They use only core ATen ops (sort, index, elementwise, embedding_bag). Where a device lacks one
of those (MPS has no embedding_bag yet), the dispatch preflight keeps the device's kernel.
"""

from .nms import batched_nms, nms
from .roi_align import roi_align
from .roi_pool import roi_pool

__all__ = ["batched_nms", "nms", "roi_align", "roi_pool"]
