"""Instance segmentation masks of one image: polygons ("poly") or binary masks ("mask").

Polygons are kept as one flat array of points plus offsets, so flips, resizes, crops and the
per-proposal rasterisation for mask targets are whole-array operations. Polygon flips follow the
legacy maskrcnn-benchmark convention (x -> width - x - 1, y -> height - y - 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils

from rcnn.layers import roi_align
from rcnn.structures.bounding_box import FLIP_LEFT_RIGHT, FLIP_TOP_BOTTOM, TO_REMOVE

Polygons = Sequence[Sequence[float]]  # the polygons of one instance, COCO style


class MaskError(ValueError):
    """A segmentation that cannot be a mask of this image (the dataset reports it as bad data)."""


def _polygon_area(flat: np.ndarray) -> float:
    x, y = flat[0::2], flat[1::2]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def check_polygons(polygons: Polygons, size: tuple[int, int]) -> None:
    """Raise MaskError unless `polygons` (one instance) can be rasterised to a non-empty mask."""
    if not isinstance(polygons, (list, tuple)) or len(polygons) == 0:
        raise MaskError("empty polygon list")
    total = 0.0
    for poly in polygons:
        try:
            flat = np.asarray(poly, dtype=np.float64).reshape(-1)
        except (ValueError, TypeError):
            raise MaskError(f"polygon has a non-numeric coordinate: {str(poly)[:60]}") from None
        if flat.size < 6 or flat.size % 2:
            raise MaskError(f"polygon needs >= 3 (x, y) points, got {flat.size} coordinates")
        if not np.isfinite(flat).all():
            raise MaskError("polygon has non-finite coordinates")
        total += _polygon_area(flat)
    if total == 0.0:
        # Shoelace is 0 for lines and also for symmetric self-intersections: ask the rasteriser.
        w, h = size
        flats = [np.asarray(p, dtype=np.float64).reshape(-1).tolist() for p in polygons]
        rle = mask_utils.merge(mask_utils.frPyObjects(flats, h, w))
        if int(mask_utils.area(rle)) == 0:
            raise MaskError("degenerate polygon with zero area")


def check_rle(rle: dict, size: tuple[int, int]) -> None:
    """Raise MaskError unless `rle` is an RLE of an image of `size` (width, height)."""
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise MaskError("RLE must be a dict with 'size' and 'counts'")
    w, h = size
    shape, counts = rle["size"], rle["counts"]
    if not isinstance(shape, list | tuple) or list(shape) != [h, w]:
        raise MaskError(f"RLE size (h, w) {shape!r} does not match the image {[h, w]}")
    if isinstance(counts, list):
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
            raise MaskError("RLE counts must be non-negative integers")
        total = sum(counts)
    elif isinstance(counts, str | bytes):
        text = counts.decode("ascii", "replace") if isinstance(counts, bytes) else counts
        total = _compressed_total(text)
    else:
        raise MaskError(f"RLE counts must be a list or a compressed string, got {type(counts)}")
    if total != h * w:
        raise MaskError(f"RLE counts cover {total} pixels, the {w}x{h} image has {h * w}")


def _compressed_total(text: str) -> int:
    """Pixels covered by COCO's compressed RLE string (6-bit groups, delta-coded from the 3rd)."""
    counts: list[int] = []
    pos = 0
    while pos < len(text):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(text):
                raise MaskError("RLE counts string ends inside a number")
            char = ord(text[pos]) - 48
            if not 0 <= char < 64:
                raise MaskError(f"RLE counts string has an invalid character {text[pos]!r}")
            value |= (char & 0x1F) << (5 * shift)
            more = bool(char & 0x20)
            pos, shift = pos + 1, shift + 1
            if not more and char & 0x10:
                value |= -1 << (5 * shift)
        if len(counts) > 2:
            value += counts[-2]
        if value < 0:
            raise MaskError("RLE counts string decodes to a negative run")
        counts.append(value)
    return sum(counts)


def check_segmentation(segm: Any, size: tuple[int, int]) -> None:
    """Validate one COCO segmentation (polygon list or RLE dict) against image `size` (w, h)."""
    if isinstance(segm, dict):
        check_rle(segm, size)
    else:
        check_polygons(segm, size)


def _ranges(starts: np.ndarray, lengths: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Concatenated aranges [starts[c], starts[c] + lengths[c]) for c in chosen, without a loop."""
    lens = lengths[chosen]
    offsets = np.repeat(starts[chosen] - (np.cumsum(lens) - lens), lens)
    return offsets + np.arange(int(lens.sum()), dtype=np.int64)


def _rle_to_mask(rle: dict) -> np.ndarray:
    if isinstance(rle["counts"], list):  # uncompressed RLE: compress first
        h, w = rle["size"]
        rle = mask_utils.frPyObjects(rle, h, w)
    return mask_utils.decode(rle)


class SegmentationMask:
    """The masks of N instances of an image of `size` (width, height).

    mode "poly": `instances` is a list of N polygon lists (COCO segmentation format).
    mode "mask": `instances` is a uint8/bool tensor (N, H, W) or a list of N COCO RLE dicts.
    """

    def __init__(self, instances: Any, size: tuple[int, int], mode: str = "poly") -> None:
        self.size = (int(size[0]), int(size[1]))
        self.mode = mode
        if mode == "poly":
            self._init_polygons(instances)
        elif mode == "mask":
            self.masks = self._as_mask_tensor(instances)
        else:
            raise ValueError(f"mode must be 'poly' or 'mask', got {mode!r}")

    # ---- construction -------------------------------------------------------------------------
    def _init_polygons(self, instances: Sequence[Polygons]) -> None:
        for polygons in instances:
            check_polygons(polygons, self.size)
        flats = [np.asarray(p, dtype=np.float64).reshape(-1) for inst in instances for p in inst]
        self.points = np.concatenate(flats).reshape(-1, 2) if flats else np.zeros((0, 2))
        self.poly_lengths = np.array([f.size // 2 for f in flats], dtype=np.int64)
        self.inst_lengths = np.array([len(inst) for inst in instances], dtype=np.int64)

    @classmethod
    def _from_parts(
        cls,
        points: np.ndarray,
        poly_lengths: np.ndarray,
        inst_lengths: np.ndarray,
        size: tuple[float, float],
    ) -> SegmentationMask:
        out = cls.__new__(cls)
        out.size, out.mode = size, "poly"  # a crop may leave a fractional size, as legacy does
        out.points, out.poly_lengths, out.inst_lengths = points, poly_lengths, inst_lengths
        return out

    def _as_mask_tensor(self, instances: Any) -> torch.Tensor:
        w, h = self.size
        if isinstance(instances, torch.Tensor):
            masks = instances.to(torch.uint8)
            if masks.ndim == 2:
                masks = masks[None]
        elif len(instances) == 0:
            masks = torch.zeros((0, h, w), dtype=torch.uint8)
        else:
            for rle in instances:
                check_rle(rle, self.size)
            masks = torch.from_numpy(np.stack([_rle_to_mask(r) for r in instances]))
        if masks.ndim != 3 or tuple(masks.shape[1:]) != (h, w):
            shape = tuple(masks.shape)
            raise MaskError(f"binary masks of shape {shape} do not match (N, {h}, {w})")
        return masks

    @classmethod
    def from_coco(cls, segmentations: Sequence[Any], size: tuple[int, int]) -> SegmentationMask:
        """COCO segmentations of one image: all polygons stay polygons; if any is an RLE,
        every instance becomes a binary mask (one mode per image)."""
        if all(isinstance(s, (list, tuple)) for s in segmentations):
            return cls(list(segmentations), size, "poly")
        w, h = size
        rles = []
        for segm in segmentations:
            if isinstance(segm, dict):
                rles.append(segm)
            else:
                check_polygons(segm, size)
                flats = [np.asarray(p, dtype=np.float64).reshape(-1).tolist() for p in segm]
                rles.append(mask_utils.merge(mask_utils.frPyObjects(flats, h, w)))
        return cls(rles, size, "mask")

    # ---- polygon bookkeeping ------------------------------------------------------------------
    def _point_instance(self) -> np.ndarray:
        """Instance index of every point."""
        poly_inst = np.repeat(np.arange(len(self.inst_lengths)), self.inst_lengths)
        return np.repeat(poly_inst, self.poly_lengths)

    def polygons(self) -> list[list[list[float]]]:
        """The polygons in COCO format: per instance, a list of flat [x0, y0, x1, y1, ...]."""
        return self._group(self.points)

    def _group(self, points: np.ndarray) -> list[list[list[float]]]:
        if len(self.poly_lengths) == 0:
            return [[] for _ in self.inst_lengths]
        flats = np.split(points.reshape(-1), np.cumsum(self.poly_lengths * 2)[:-1])
        per_inst = np.split(np.arange(len(flats)), np.cumsum(self.inst_lengths)[:-1])
        return [[flats[i].tolist() for i in idx] for idx in per_inst]

    # ---- geometry -----------------------------------------------------------------------------
    def transpose(self, method: int) -> SegmentationMask:
        if method not in (FLIP_LEFT_RIGHT, FLIP_TOP_BOTTOM):
            raise ValueError("only FLIP_LEFT_RIGHT and FLIP_TOP_BOTTOM are implemented")
        if self.mode == "mask":
            dim = 2 if method == FLIP_LEFT_RIGHT else 1
            return SegmentationMask(self.masks.flip(dim), self.size, "mask")
        axis = 0 if method == FLIP_LEFT_RIGHT else 1
        points = self.points.copy()
        points[:, axis] = self.size[axis] - points[:, axis] - TO_REMOVE
        return self._from_parts(points, self.poly_lengths, self.inst_lengths, self.size)

    def resize(self, size: tuple[int, int], *args: Any, **kwargs: Any) -> SegmentationMask:
        """Scale to an image of `size` (width, height)."""
        size = (int(size[0]), int(size[1]))
        if self.mode == "mask":
            if len(self) == 0:
                return SegmentationMask(torch.zeros((0, size[1], size[0])), size, "mask")
            scaled = F.interpolate(self.masks[None].float(), size=(size[1], size[0]))
            return SegmentationMask(scaled[0], size, "mask")
        ratios = np.array([size[0] / self.size[0], size[1] / self.size[1]])
        return self._from_parts(self.points * ratios, self.poly_lengths, self.inst_lengths, size)

    def crop(self, box: Sequence[float]) -> SegmentationMask:
        """Crop to `box` (x1, y1, x2, y2); the new size is (x2 - x1, y2 - y1), at least 1."""
        x0, y0, x1, y1 = (float(b) for b in box)
        if self.mode == "mask":
            w, h = self.size
            cx0, cy0 = min(max(round(x0), 0), w - 1), min(max(round(y0), 0), h - 1)
            cx1, cy1 = min(max(round(x1), cx0 + 1), w), min(max(round(y1), cy0 + 1), h)
            return SegmentationMask(self.masks[:, cy0:cy1, cx0:cx1], (cx1 - cx0, cy1 - cy0), "mask")
        size = (max(x1 - x0, 1), max(y1 - y0, 1))
        points = self.points - np.array([x0, y0])
        return self._from_parts(points, self.poly_lengths, self.inst_lengths, size)

    def convert(self, mode: str) -> SegmentationMask:
        if mode == self.mode:
            return self
        if mode != "mask":
            raise ValueError("only poly -> mask conversion is supported")
        return SegmentationMask(self.get_mask_tensor(), self.size, "mask")

    def get_mask_tensor(self) -> torch.Tensor:
        """Binary masks (N, H, W) uint8 at the current size."""
        if self.mode == "mask":
            return self.masks
        w, h = self.size
        return self._rasterise(self._group(self.points), round(h), round(w))

    @staticmethod
    def _rasterise(instances: list[list[list[float]]], h: int, w: int) -> torch.Tensor:
        """One frPyObjects call for all polygons, one merge per instance, one decode for all."""
        if not instances:
            return torch.zeros((0, h, w), dtype=torch.uint8)
        flat = [p for inst in instances for p in inst]
        rles = mask_utils.frPyObjects(flat, h, w)
        ends = np.cumsum([len(inst) for inst in instances])
        merged = [
            mask_utils.merge(rles[e - len(inst) : e])
            for inst, e in zip(instances, ends, strict=True)
        ]
        return torch.from_numpy(np.ascontiguousarray(mask_utils.decode(merged).transpose(2, 0, 1)))

    def crop_and_resize(self, boxes: torch.Tensor, mask_size: int) -> torch.Tensor:
        """Mask targets: instance i cropped to boxes[i] (x1, y1, x2, y2) and rasterised at
        mask_size x mask_size. Returns float32 (N, M, M) of 0/1 on boxes' device."""
        n = len(self)
        if boxes.shape != (n, 4):
            raise ValueError(f"need one box per instance: boxes {tuple(boxes.shape)}, {n} masks")
        m = int(mask_size)
        if n == 0:
            return torch.zeros((0, m, m), dtype=torch.float32, device=boxes.device)
        if self.mode == "mask":
            rois = torch.cat(
                [torch.arange(n, dtype=torch.float32)[:, None], boxes.detach().float().cpu()], dim=1
            )
            # aligned=True: pixel i spans [i, i + 1), the same continuous frame as polygons.
            crops = roi_align(
                self.masks[:, None].float(),
                rois.to(self.masks.device),
                (m, m),
                spatial_scale=1.0,
                sampling_ratio=2,
                aligned=True,
            )
            return (crops[:, 0] >= 0.5).float().to(boxes.device)
        box = boxes.detach().cpu().double().numpy()
        # Legacy crop then resize: scale = M / max(box width, 1) with width = x2 - x1.
        origin = box[:, :2]
        scale = m / np.maximum(box[:, 2:] - box[:, :2], 1.0)
        inst = self._point_instance()
        points = (self.points - origin[inst]) * scale[inst]
        masks = self._rasterise(self._group(points), m, m)
        return masks.float().to(boxes.device)

    # ---- container ----------------------------------------------------------------------------
    def __getitem__(self, item: Any) -> SegmentationMask:
        index = self._index(item)
        if self.mode == "mask":
            return SegmentationMask(self.masks[torch.as_tensor(index)], self.size, "mask")
        poly_ids = _ranges(
            np.cumsum(self.inst_lengths) - self.inst_lengths, self.inst_lengths, index
        )
        point_ids = _ranges(
            np.cumsum(self.poly_lengths) - self.poly_lengths, self.poly_lengths, poly_ids
        )
        return self._from_parts(
            self.points[point_ids], self.poly_lengths[poly_ids], self.inst_lengths[index], self.size
        )

    def _index(self, item: Any) -> np.ndarray:
        """Positions selected by an int, slice, list, bool mask or index tensor."""
        n = len(self)
        if isinstance(item, torch.Tensor):
            item = item.detach().cpu().numpy()
        if isinstance(item, (int, np.integer)):
            if not -n <= item < n:
                raise IndexError(f"index {item} out of range for {n} masks")
            return np.array([item % n])
        if isinstance(item, slice):
            return np.arange(n)[item]
        index = np.asarray(item)
        if index.dtype == bool:
            if index.shape != (n,):
                raise IndexError(f"boolean index of shape {index.shape} for {n} masks")
            return np.nonzero(index)[0]
        return np.arange(n)[index.astype(np.int64).reshape(-1)]

    def __len__(self) -> int:
        return int(self.masks.shape[0]) if self.mode == "mask" else len(self.inst_lengths)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def to(self, device: torch.device | str, non_blocking: bool = False) -> SegmentationMask:
        if self.mode == "mask":
            masks = self.masks.to(device, non_blocking=non_blocking)
            return SegmentationMask(masks, self.size, "mask")
        return self  # polygons stay on the host: they are rasterised there

    def pin_memory(self) -> SegmentationMask:
        if self.mode == "mask":
            return SegmentationMask(self.masks.pin_memory(), self.size, "mask")
        return self

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(num_instances={len(self)}, image_width={self.size[0]}, "
            f"image_height={self.size[1]}, mode={self.mode})"
        )
