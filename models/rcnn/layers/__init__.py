"""Detection layers: ops that use the device's kernel or a native fallback, frozen BN, losses."""

from .balanced_l1_loss import balanced_l1_loss
from .batch_norm import FrozenBatchNorm2d
from .dispatch import KernelUnavailableError, kernels_used, preflight, preflight_reasons
from .nms import batched_nms, batched_nms_top_k, nms
from .roi_align import ROIAlign, roi_align
from .roi_pool import ROIPool, roi_pool
from .smooth_l1_loss import smooth_l1_loss

__all__ = [
    "FrozenBatchNorm2d",
    "KernelUnavailableError",
    "ROIAlign",
    "ROIPool",
    "balanced_l1_loss",
    "batched_nms",
    "batched_nms_top_k",
    "kernels_used",
    "nms",
    "preflight",
    "preflight_reasons",
    "roi_align",
    "roi_pool",
    "smooth_l1_loss",
]
