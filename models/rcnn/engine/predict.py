"""Predictions for loose images (a file or a folder), as a per-image JSON users can read.

Each image: {path, height, width, detections: [{bbox: {x_min, y_min, width, height},
class: {label, name}, score, mask}]}, boxes in original-image pixels with the legacy +1 width;
`mask` (mask models only) is the detection's full-image mask as a COCO RLE {size, counts}.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from rcnn.data.datasets.bad_data import DataError
from rcnn.data.transforms import build_transforms
from rcnn.device import DeviceAdapter
from rcnn.engine.coco_eval import mask_rles
from rcnn.structures.image_list import to_image_list

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def list_images(path: str | Path) -> list[Path]:
    """The image files a path names: itself, or a folder's images (sorted, not recursive)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder")
        return files
    if not path.is_file():
        raise DataError(f"{path}: no such image or folder")
    return [path]


def read_class_names(path: str | Path) -> list[str]:
    """Names by contiguous label (index 0 is the background): a COCO json or one name a line."""
    import json

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise DataError(f"{path}: cannot read class names ({err})") from None
    if path.suffix == ".json":
        cats = sorted(json.loads(text).get("categories", []), key=lambda c: c["id"])
        names = [c["name"] for c in cats]
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    return ["__background__", *names]


def _open(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read image ({err})") from None


def predict_images(
    model: torch.nn.Module,
    cfg,
    paths: list[Path],
    adapter: DeviceAdapter,
    index: int,
    precision: str = "fp32",
    class_names: list[str] | None = None,
    score_threshold: float = 0.0,
) -> list[dict]:
    transforms = build_transforms(cfg, is_train=False)
    device = adapter.torch_device(index)
    model.eval()
    out = []
    for path in paths:
        image = _open(path)
        tensor, _ = transforms(image, None)
        batch = to_image_list([tensor], cfg.DATALOADER.SIZE_DIVISIBILITY).to(device)
        with torch.no_grad(), adapter.autocast(precision):
            (pred,) = model(batch)
        pred = pred.to("cpu")
        pred = pred[pred.get_field("scores") >= score_threshold]
        # Mask models: each detection's mask at the image's own size, as a COCO RLE.
        rles = mask_rles(pred, image.height, image.width) if pred.has_field("mask") else None
        pred = pred.resize(image.size).convert("xywh")
        detections = []
        for i, (box, score, label) in enumerate(
            zip(
                pred.bbox.float().tolist(),
                pred.get_field("scores").float().tolist(),
                pred.get_field("labels").tolist(),
                strict=True,
            )
        ):
            name = class_names[label] if class_names and label < len(class_names) else str(label)
            detections.append(
                {
                    "bbox": dict(
                        zip(
                            ("x_min", "y_min", "width", "height"),
                            (round(v, 2) for v in box),
                            strict=True,
                        )
                    ),
                    "class": {"label": int(label), "name": name},
                    "score": round(float(score), 4),
                }
            )
            if rles is not None:
                detections[-1]["mask"] = rles[i]
        out.append(
            {
                "path": str(path),
                "height": image.height,
                "width": image.width,
                "detections": detections,
            }
        )
    return out


def draw_predictions(
    image_path: str | Path, prediction: dict, out_path: str | Path, score_threshold: float = 0.5
) -> Path:
    """Draw one image's boxes, names and scores; write a PNG or JPEG by the suffix."""
    from PIL import ImageDraw

    image = _open(Path(image_path))
    draw = ImageDraw.Draw(image)
    palette = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180)]
    for det in prediction["detections"]:
        if det["score"] < score_threshold:
            continue
        b = det["bbox"]
        colour = palette[det["class"]["label"] % len(palette)]
        x1, y1 = b["x_min"], b["y_min"]
        draw.rectangle([x1, y1, x1 + b["width"] - 1, y1 + b["height"] - 1], outline=colour, width=2)
        draw.text((x1 + 2, y1 + 1), f"{det['class']['name']} {det['score']:.2f}", fill=colour)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    image.save(out_path)
    return out_path
