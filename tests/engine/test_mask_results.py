"""Mask results at the original image size: evaluation at COCO-val scale keeps memory bounded
(each image's 28 x 28 mask probabilities are pasted and RLE-encoded as they arrive, and only the
compact results are kept; full-image masks for these detections would take 146 MB), and the
predict path pastes full-image masks too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_util

from rcnn.config import load_config
from rcnn.data.datasets.coco import COCODataset
from rcnn.data.synthetic import SyntheticSpec, generate, img_dir
from rcnn.device import resolve
from rcnn.engine.coco_eval import evaluate_results, image_result, to_coco
from rcnn.engine.predict import predict_images
from rcnn.engine.run import build_model, start_session
from rcnn.structures.bounding_box import BoxList

ROOT = Path(__file__).resolve().parents[2]
QUICK_MASK = ROOT / "models/configs/quick/mask_rcnn_R_18_FPN_quick.yaml"
IMAGES, PER_IMAGE, WIDTH, HEIGHT = 20, 100, 320, 240
SCALE = 2.5  # the network saw each image at 800 x 600


@pytest.fixture(scope="module")
def val_set(tmp_path_factory) -> COCODataset:
    root = tmp_path_factory.mktemp("eval_memory")
    files = generate(SyntheticSpec(0, IMAGES, WIDTH, HEIGHT, seed=3), root)
    return COCODataset(str(files["val"]), str(img_dir(root, "val")), False)


def _prediction(generator: torch.Generator) -> BoxList:
    """PER_IMAGE detections at network input size; the first is a full-probability box."""
    size = (int(WIDTH * SCALE), int(HEIGHT * SCALE))
    xy = torch.rand(PER_IMAGE, 2, generator=generator) * torch.tensor([600.0, 400.0])
    wh = 20 + torch.rand(PER_IMAGE, 2, generator=generator) * 180
    boxes = torch.cat([xy, xy + wh], dim=1)
    boxes[0] = torch.tensor([100.0, 100.0, 299.0, 199.0])
    pred = BoxList(boxes, size)
    pred.add_field("scores", torch.rand(PER_IMAGE, generator=generator))
    pred.add_field("labels", torch.randint(1, 4, (PER_IMAGE,), generator=generator))
    probs = torch.rand(PER_IMAGE, 1, 28, 28, generator=generator)
    probs[0] = 1.0
    pred.add_field("mask", probs)
    return pred


@pytest.fixture
def one_thread():
    """Pasting is many small ops: one thread keeps a shared host from oversubscribing."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_streaming_thousands_of_mask_detections_keeps_memory_bounded(val_set, one_thread):
    cpu, _ = resolve("cpu")
    generator = torch.Generator().manual_seed(0)
    cpu.reset_peak_memory()
    before = cpu.peak_memory_mb()
    results = {i: image_result(i, _prediction(generator), val_set) for i in range(IMAGES)}
    grown = cpu.peak_memory_mb() - before
    full_masks_mb = IMAGES * PER_IMAGE * WIDTH * HEIGHT / 2**20
    assert full_masks_mb > 145
    assert grown < 40, f"peak memory grew {grown:.0f} MB while streaming"

    entries = to_coco(results.values(), "segm")
    assert len(entries) == IMAGES * PER_IMAGE
    assert sum(len(e["segmentation"]["counts"]) for e in entries) < 4 * 2**20
    # The full-probability box [100, 100, 299, 199] at 2.5x is 80 x 40 pixels of the image.
    first = entries[0]["segmentation"]
    assert first["size"] == [HEIGHT, WIDTH]
    assert float(mask_util.area(first)) == pytest.approx(80 * 40, rel=0.05)
    box = results[0].boxes[0].tolist()
    assert box == pytest.approx([40.0, 40.0, 80.6, 40.6], abs=0.01)  # legacy +1 width

    scores = evaluate_results(results, val_set, ("bbox", "segm"))
    assert 0.0 <= scores["segm"]["ap"] <= scores["segm"]["ap50"] <= 1.0


def test_predict_pastes_each_mask_at_the_image_size(tiny_set, overrides, tmp_path):
    cfg = load_config(
        str(QUICK_MASK), overrides(tmp_path, **{"MODEL.ROI_HEADS.DETECTIONS_PER_IMG": 10})
    )
    session = start_session(cfg)
    model = build_model(session)
    with torch.no_grad():  # make the untrained head confident so boxes pass the threshold
        model.roi_heads.box.predictor.cls_score.bias.copy_(torch.tensor([-9.0, 9.0, 0.0, 0.0]))
    image = sorted((tiny_set / "val").iterdir())[0]
    (out,) = predict_images(model, cfg, [image], session.adapter, session.index)
    assert (out["height"], out["width"]) == (96, 128) and len(out["detections"]) > 0
    for det in out["detections"]:
        mask = mask_util.decode(det["mask"])
        assert mask.shape == (96, 128) and det["mask"]["size"] == [96, 128]
        ys, xs = np.nonzero(mask)
        b = det["bbox"]  # the mask lies in its box, give or take the paste's padding pixel
        assert xs.size == 0 or (
            xs.min() >= b["x_min"] - 2 and xs.max() <= b["x_min"] + b["width"] + 1
        )
        assert ys.size == 0 or (
            ys.min() >= b["y_min"] - 2 and ys.max() <= b["y_min"] + b["height"] + 1
        )
    assert sum(int(mask_util.area(d["mask"])) for d in out["detections"]) > 0


def test_labels_the_dataset_does_not_have_are_dropped(val_set):
    """COCO-trained weights (81 classes) evaluated on a 3-class set: label 58 has no json id."""
    pred = BoxList(torch.tensor([[10.0, 10.0, 50.0, 40.0], [5.0, 5.0, 30.0, 30.0]]), (800, 600))
    pred.add_field("scores", torch.tensor([0.9, 0.8]))
    pred.add_field("labels", torch.tensor([1, 58]))
    pred.add_field("mask", torch.ones(2, 1, 28, 28))
    result = image_result(0, pred, val_set)
    assert len(result.scores) == len(result.rles) == 1 and result.scores[0] == pytest.approx(0.9)
    assert result.category_ids.tolist() == [val_set.contiguous_category_id_to_json_id[1]]
