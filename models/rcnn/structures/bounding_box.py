"""BoxList: the boxes of one image together with their per-box fields (scores, labels, masks).

Boxes follow the legacy maskrcnn-benchmark "+1" pixel convention: a box [x1, y1, x2, y2] covers
pixels x1..x2 inclusive, so its width is x2 - x1 + 1.
"""

from __future__ import annotations

from typing import Any

import torch

FLIP_LEFT_RIGHT = 0
FLIP_TOP_BOTTOM = 1

# Legacy pixel convention: a box's extent includes its last pixel.
TO_REMOVE = 1


class BoxList:
    """A set of boxes for one image of size (width, height), in "xyxy" or "xywh" mode.

    Extra per-box data live in fields (`add_field`); a field that has `resize`, `transpose` or
    `crop` methods (e.g. segmentation masks) is transformed along with the boxes.
    """

    def __init__(self, bbox: Any, image_size: tuple[int, int], mode: str = "xyxy") -> None:
        device = bbox.device if isinstance(bbox, torch.Tensor) else torch.device("cpu")
        bbox = torch.as_tensor(bbox, dtype=torch.float32, device=device)
        if bbox.ndim == 1 and bbox.numel() == 0:
            bbox = bbox.reshape(0, 4)
        if bbox.ndim != 2 or bbox.size(-1) != 4:
            raise ValueError(f"bbox must have shape [N, 4], got {tuple(bbox.shape)}")
        if mode not in ("xyxy", "xywh"):
            raise ValueError(f"mode must be 'xyxy' or 'xywh', got {mode!r}")
        self.bbox = bbox
        self.size = (int(image_size[0]), int(image_size[1]))
        self.mode = mode
        self.extra_fields: dict[str, Any] = {}

    # ---- fields -------------------------------------------------------------------------------
    def add_field(self, field: str, field_data: Any) -> None:
        self.extra_fields[field] = field_data

    def get_field(self, field: str) -> Any:
        return self.extra_fields[field]

    def has_field(self, field: str) -> bool:
        return field in self.extra_fields

    def fields(self) -> list[str]:
        return list(self.extra_fields.keys())

    def _copy_extra_fields(self, other: BoxList) -> None:
        self.extra_fields.update(other.extra_fields)

    # ---- geometry -----------------------------------------------------------------------------
    def _split_into_xyxy(self) -> tuple[torch.Tensor, ...]:
        if self.mode == "xyxy":
            return self.bbox.split(1, dim=-1)
        x, y, w, h = self.bbox.split(1, dim=-1)
        # Clamp keeps degenerate xywh boxes (w or h 0) from getting x2 < x1.
        return (
            x,
            y,
            x + (w - TO_REMOVE).clamp(min=0),
            y + (h - TO_REMOVE).clamp(min=0),
        )

    def convert(self, mode: str) -> BoxList:
        if mode not in ("xyxy", "xywh"):
            raise ValueError(f"mode must be 'xyxy' or 'xywh', got {mode!r}")
        if mode == self.mode:
            return self
        xmin, ymin, xmax, ymax = self._split_into_xyxy()
        if mode == "xyxy":
            bbox = torch.cat((xmin, ymin, xmax, ymax), dim=-1)
        else:
            bbox = torch.cat((xmin, ymin, xmax - xmin + TO_REMOVE, ymax - ymin + TO_REMOVE), dim=-1)
        out = BoxList(bbox, self.size, mode=mode)
        out._copy_extra_fields(self)
        return out

    def resize(self, size: tuple[int, int], *args: Any, **kwargs: Any) -> BoxList:
        """Scale the boxes to an image of `size` (width, height); fields follow when they can."""
        ratios = tuple(float(s) / float(s_orig) for s, s_orig in zip(size, self.size, strict=True))
        if ratios[0] == ratios[1]:
            out = BoxList(self.bbox * ratios[0], size, mode=self.mode)
        else:
            ratio_w, ratio_h = ratios
            xmin, ymin, xmax, ymax = self._split_into_xyxy()
            scaled = torch.cat((xmin * ratio_w, ymin * ratio_h, xmax * ratio_w, ymax * ratio_h), -1)
            out = BoxList(scaled, size, mode="xyxy").convert(self.mode)
        for k, v in self.extra_fields.items():
            if not isinstance(v, torch.Tensor) and hasattr(v, "resize"):
                v = v.resize(size, *args, **kwargs)
            out.add_field(k, v)
        return out

    def transpose(self, method: int) -> BoxList:
        """Flip the boxes: FLIP_LEFT_RIGHT or FLIP_TOP_BOTTOM, with the +1 convention."""
        if method not in (FLIP_LEFT_RIGHT, FLIP_TOP_BOTTOM):
            raise ValueError("only FLIP_LEFT_RIGHT and FLIP_TOP_BOTTOM are implemented")
        image_width, image_height = self.size
        xmin, ymin, xmax, ymax = self._split_into_xyxy()
        if method == FLIP_LEFT_RIGHT:
            flipped = (
                image_width - xmax - TO_REMOVE,
                ymin,
                image_width - xmin - TO_REMOVE,
                ymax,
            )
        else:
            flipped = (xmin, image_height - ymax, xmax, image_height - ymin)
        out = BoxList(torch.cat(flipped, dim=-1), self.size, mode="xyxy").convert(self.mode)
        for k, v in self.extra_fields.items():
            if not isinstance(v, torch.Tensor) and hasattr(v, "transpose"):
                v = v.transpose(method)
            out.add_field(k, v)
        return out

    def crop(self, box: tuple[int, int, int, int]) -> BoxList:
        """Crop to the region `box` (x1, y1, x2, y2 exclusive); boxes are clamped to it."""
        xmin, ymin, xmax, ymax = self._split_into_xyxy()
        w, h = box[2] - box[0], box[3] - box[1]
        cropped = torch.cat(
            (
                (xmin - box[0]).clamp(min=0, max=w),
                (ymin - box[1]).clamp(min=0, max=h),
                (xmax - box[0]).clamp(min=0, max=w),
                (ymax - box[1]).clamp(min=0, max=h),
            ),
            dim=-1,
        )
        out = BoxList(cropped, (w, h), mode="xyxy").convert(self.mode)
        for k, v in self.extra_fields.items():
            if not isinstance(v, torch.Tensor) and hasattr(v, "crop"):
                v = v.crop(box)
            out.add_field(k, v)
        return out

    def clip_to_image(self, remove_empty: bool = True) -> BoxList:
        """Clamp boxes into the image, in place; optionally drop those that became empty."""
        self.bbox[:, 0].clamp_(min=0, max=self.size[0] - TO_REMOVE)
        self.bbox[:, 1].clamp_(min=0, max=self.size[1] - TO_REMOVE)
        self.bbox[:, 2].clamp_(min=0, max=self.size[0] - TO_REMOVE)
        self.bbox[:, 3].clamp_(min=0, max=self.size[1] - TO_REMOVE)
        if remove_empty:
            box = self.bbox
            keep = (box[:, 3] > box[:, 1]) & (box[:, 2] > box[:, 0])
            return self[keep]
        return self

    def area(self) -> torch.Tensor:
        box = self.bbox
        if self.mode == "xyxy":
            return (box[:, 2] - box[:, 0] + TO_REMOVE) * (box[:, 3] - box[:, 1] + TO_REMOVE)
        return box[:, 2] * box[:, 3]

    # ---- container ----------------------------------------------------------------------------
    def to(self, device: torch.device | str, non_blocking: bool = False) -> BoxList:
        out = BoxList(self.bbox.to(device, non_blocking=non_blocking), self.size, self.mode)
        for k, v in self.extra_fields.items():
            if hasattr(v, "to"):
                v = v.to(device, non_blocking=non_blocking)
            out.add_field(k, v)
        return out

    def pin_memory(self) -> BoxList:
        """A copy in page-locked host memory (the DataLoader's pin_memory protocol)."""
        out = BoxList(self.bbox.pin_memory(), self.size, self.mode)
        for k, v in self.extra_fields.items():
            out.add_field(k, v.pin_memory() if hasattr(v, "pin_memory") else v)
        return out

    def __getitem__(self, item: Any) -> BoxList:
        out = BoxList(self.bbox[item], self.size, self.mode)
        for k, v in self.extra_fields.items():
            out.add_field(k, v[item])
        return out

    def __len__(self) -> int:
        return self.bbox.shape[0]

    def copy_with_fields(self, fields: str | list[str], skip_missing: bool = False) -> BoxList:
        out = BoxList(self.bbox, self.size, self.mode)
        for field in [fields] if isinstance(fields, str) else fields:
            if self.has_field(field):
                out.add_field(field, self.get_field(field))
            elif not skip_missing:
                raise KeyError(f"field {field!r} not found in {self}")
        return out

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(num_boxes={len(self)}, image_width={self.size[0]}, "
            f"image_height={self.size[1]}, mode={self.mode})"
        )
