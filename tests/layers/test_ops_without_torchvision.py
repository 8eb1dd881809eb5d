"""On a machine where torchvision cannot import, every op still runs, natively."""

import json
import subprocess
import sys

import torch
import torchvision

# The child blocks `import torchvision` (a None entry in sys.modules makes it raise
# ImportError), then uses the ops with RCNN_OPS unset.
CHILD = """
import json, sys
sys.modules["torchvision"] = None
import torch
from rcnn.layers import kernels_used, nms, batched_nms, preflight_reasons, roi_align, roi_pool
gen = torch.Generator().manual_seed(0)
features = torch.randn(2, 3, 12, 16, generator=gen, requires_grad=True)
rois = torch.tensor([[0, 1.0, 2.0, 20.0, 15.0], [1, 4.0, 0.0, 30.0, 22.0]])
boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30.0]])
scores = torch.tensor([0.9, 0.8, 0.7])
aligned = roi_align(features, rois, 3, 0.5, 2)
aligned.sum().backward()
print(json.dumps({
    "torchvision_imported": "torchvision.ops" in sys.modules,
    "reasons": preflight_reasons("cpu"),
    "nms": nms(boxes, scores, 0.5).tolist(),
    "batched_nms": batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5).tolist(),
    "roi_align": aligned.tolist(),
    "roi_align_grad": features.grad.tolist(),
    "roi_pool": roi_pool(features, rois, 2, 0.5).tolist(),
    "used": kernels_used(),
}))
"""


def test_ops_run_natively_when_torchvision_cannot_import():
    env_free = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120, check=True
    )
    result = json.loads(env_free.stdout)
    assert result["torchvision_imported"] is False
    for op in ("nms", "roi_align", "roi_pool"):
        assert result["reasons"][op].startswith("native (torchvision.ops failed to import")
    assert result["used"] == {"nms": "native", "roi_align": "native", "roi_pool": "native"}

    # The same numbers torchvision gives here.
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(2, 3, 12, 16, generator=gen, requires_grad=True)
    rois = torch.tensor([[0, 1.0, 2.0, 20.0, 15.0], [1, 4.0, 0.0, 30.0, 22.0]])
    aligned = torchvision.ops.roi_align(features, rois, 3, 0.5, 2)
    aligned.sum().backward()
    assert result["nms"] == [0, 2]
    assert result["batched_nms"] == [0, 1, 2]
    torch.testing.assert_close(torch.tensor(result["roi_align"]), aligned.detach())
    torch.testing.assert_close(torch.tensor(result["roi_align_grad"]), features.grad)
    pooled = torchvision.ops.roi_pool(features.detach(), rois, 2, 0.5)
    torch.testing.assert_close(torch.tensor(result["roi_pool"]), pooled)
