"""Engine pieces in one process: COCO scoring, precisions through the adapter, predictions."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rcnn.checkpoint import save_checkpoint
from rcnn.data import make_data_loader
from rcnn.device import DeviceError
from rcnn.engine.coco_eval import evaluate_predictions
from rcnn.engine.run import build_model, build_training, evaluate, start_session
from rcnn.errors import write_traceback
from rcnn.structures.bounding_box import BoxList

ROOT = Path(__file__).resolve().parents[2]
QUICK = str(ROOT / "models/configs/quick/faster_rcnn_R_18_FPN_quick.yaml")


def _ground_truth_as_predictions(dataset) -> dict[int, BoxList]:
    preds = {}
    for idx in range(len(dataset)):
        _, target, _ = dataset[idx]
        info = dataset.get_img_info(idx)
        boxes = target.resize((info["width"], info["height"]))
        boxes.add_field("scores", torch.ones(len(boxes)))
        preds[idx] = boxes
    return preds


def test_perfect_predictions_score_ap_one_and_nothing_scores_zero(tiny_set, tiny_cfg, tmp_path):
    cfg = tiny_cfg(tmp_path)
    dataset = make_data_loader(cfg, is_train=False)[0].dataset
    scores = evaluate_predictions(
        _ground_truth_as_predictions(dataset), dataset, ("bbox",), tmp_path
    )
    assert scores["bbox"]["ap"] == pytest.approx(1.0)
    saved = json.loads((tmp_path / "bbox.json").read_text())
    assert {"image_id", "category_id", "bbox", "score"} <= set(saved[0])
    empty = {i: BoxList(torch.zeros(0, 4), (128, 96)) for i in range(len(dataset))}
    for box in empty.values():
        box.add_field("scores", torch.zeros(0))
        box.add_field("labels", torch.zeros(0, dtype=torch.int64))
    assert evaluate_predictions(empty, dataset)["bbox"]["ap"] == 0.0


class DtypesSeen:
    """Output dtypes of every convolution and linear layer of a model, while it is open."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.dtypes: set[torch.dtype] = set()
        layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        assert len(layers) > 20  # backbone, FPN, RPN head, box head
        self._handles = [m.register_forward_hook(self._seen) for m in layers]

    def _seen(self, module, inputs, output) -> None:
        self.dtypes.add(output.dtype)

    def __enter__(self) -> DtypesSeen:
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()


def _first_step(tiny_cfg, output_dir: Path, precision: str):
    """The session, the model and the losses of one step on the first batch, same seed."""
    cfg = tiny_cfg(output_dir, **{"MODEL.PRECISION": precision, "SOLVER.MAX_ITER": 2})
    session = start_session(cfg)
    run = build_training(session, resume=False, checkpoints=False)
    images, targets, _ = next(iter(run.data_loader))
    with DtypesSeen(run.trainer.model) as seen:
        losses = run.trainer.step(images, targets)
    return session, run.trainer.model, losses, seen.dtypes


def test_bf16_trains_and_infers_on_cpu(tiny_set, tiny_cfg, tmp_path):
    _, _, fp32, fp32_dtypes = _first_step(tiny_cfg, tmp_path / "fp32", "fp32")
    session, model, bf16, bf16_dtypes = _first_step(tiny_cfg, tmp_path / "bf16", "bf16")
    assert fp32_dtypes == {torch.float32}
    assert bf16_dtypes == {torch.bfloat16}  # every conv and linear of the step, none in fp32
    assert set(bf16) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}
    assert all(math.isfinite(v) for v in bf16.values())
    # The same weights and batch: bf16 changes the losses by its rounding, not more. The box
    # regression loss is left out: it averages over the sampled ROIs, which bf16 proposals
    # change, so it moves by tens of percent between the two precisions.
    for name in ("loss_objectness", "loss_rpn_box_reg", "loss_classifier"):
        assert bf16[name] == pytest.approx(fp32[name], rel=0.01), (name, bf16, fp32)
    with DtypesSeen(model) as seen:
        scores = evaluate(session, model)
    assert seen.dtypes == {torch.bfloat16}
    # An untrained model finds nothing: an AP above this bar would mean a broken evaluation
    # (the learning tier bounds bf16's AP against fp32's on a trained model).
    assert 0.0 <= scores["bbox"]["ap"] < 0.02, scores


def test_fp16_on_cpu_is_refused_before_work(tiny_set, tiny_cfg, tmp_path):
    with pytest.raises(DeviceError, match="precision 'fp16' is not supported on cpu"):
        start_session(tiny_cfg(tmp_path, **{"MODEL.PRECISION": "fp16"}))


def _predict(args, cwd):
    cmd = [sys.executable, str(ROOT / "models/tools/predict_net.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=300)


def test_predict_tool_writes_json_and_drawings(tiny_set, tiny_cfg, overrides, tmp_path):
    cfg = tiny_cfg(tmp_path)
    model = build_model(start_session(cfg))
    with torch.no_grad():  # make the untrained head confident so boxes pass the threshold
        model.roi_heads.box.predictor.cls_score.bias.copy_(torch.tensor([-9.0, 9.0, 0.0, 0.0]))
    ckpt = save_checkpoint(tmp_path / "m.pth", model)
    image = tiny_set / "val" / sorted(p.name for p in (tiny_set / "val").iterdir())[0]
    out = _predict(
        [
            "--config-file",
            QUICK,
            "--ckpt",
            ckpt,
            "--input",
            str(image),
            "--output",
            str(tmp_path / "p.json"),
            "--draw",
            str(tmp_path / "drawn"),
            "--draw-threshold",
            "0.5",
            "--classes",
            str(tiny_set / "annotations" / "instances_val.json"),
            *overrides(tmp_path),
        ],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (pred,) = json.loads((tmp_path / "p.json").read_text())
    assert (pred["width"], pred["height"]) == Image.open(image).size == (128, 96)
    det = pred["detections"][0]
    assert set(det["bbox"]) == {"x_min", "y_min", "width", "height"}
    assert det["class"] == {"label": 1, "name": "circle"} and det["score"] > 0.99
    drawn = np.asarray(Image.open(tmp_path / "drawn" / f"{image.stem}.png"))
    assert (drawn != np.asarray(Image.open(image).convert("RGB"))).any()  # boxes were drawn


def test_predict_tool_names_a_missing_input(tiny_set, overrides, tmp_path):
    out = _predict(
        [
            "--config-file",
            QUICK,
            "--input",
            str(tmp_path / "nope"),
            *overrides(tmp_path),
        ],
        tmp_path,
    )
    assert out.returncode == 2
    assert f"{tmp_path / 'nope'}: no such image or folder" in out.stderr
    assert "Traceback" not in out.stderr


def test_segm_masks_at_network_size_are_scored_at_the_original_size(tiny_set, tiny_cfg, tmp_path):
    cfg = tiny_cfg(tmp_path, **{"MODEL.MASK_ON": True})
    dataset = make_data_loader(cfg, is_train=False)[0].dataset
    preds = _ground_truth_as_predictions(dataset)
    for idx, pred in preds.items():
        _, target, _ = dataset[idx]
        full = target.get_field("masks").get_mask_tensor().reshape(len(target), 1, 96, 128)
        # as if the network had seen the image at twice its size
        big = full.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        pred.add_field("mask", big.to(torch.uint8))
    scores = evaluate_predictions(preds, dataset, ("bbox", "segm"))
    assert scores["bbox"]["ap"] == pytest.approx(1.0)
    assert scores["segm"]["ap"] == pytest.approx(1.0)


def test_a_traceback_from_a_test_lands_in_its_temp_folder(system_temp_folder):
    """tests/conftest.py points the system temp folder of a test and its children at pytest's."""
    path = Path(write_traceback(ValueError("from a test"), "t"))
    assert path.parent == system_temp_folder and "from a test" in path.read_text()
    child = subprocess.run(
        [sys.executable, "-c", "import tempfile; print(tempfile.gettempdir())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == str(system_temp_folder)
