"""Mask head inference: per-detection mask probabilities, pasted into the full image.

The paste is maskrcnn-benchmark's: the M x M mask is padded by one pixel on each side, the box
is scaled by (M + 2) / M about its centre and truncated to integers, the padded mask is
bilinearly resized (align_corners=False) to the integer box size and thresholded. Here the
detections are pasted in a few chunks, not one by one: the visible crops of a chunk are resized
together with the index and weight formulas of torch's bilinear resize, in float32, so the
pixels are those of pasting each detection with F.interpolate. The one exception is a value
that sits on the threshold to within float rounding (a 0/1 mask can resize to exactly 0.5):
there the side it lands on depends on how a kernel fuses its multiply-adds, which differs
between torch's own CPU and CUDA kernels too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from rcnn.structures.bounding_box import TO_REMOVE, BoxList


def expand_boxes(boxes: torch.Tensor, scale: float) -> torch.Tensor:
    """Boxes [N, 4] (xyxy) scaled by `scale` about their centres (maskrcnn-benchmark's order of
    float operations, so the truncated integer boxes agree with it)."""
    w_half = (boxes[:, 2] - boxes[:, 0]) * 0.5
    h_half = (boxes[:, 3] - boxes[:, 1]) * 0.5
    x_c = (boxes[:, 2] + boxes[:, 0]) * 0.5
    y_c = (boxes[:, 3] + boxes[:, 1]) * 0.5
    w_half = w_half * scale
    h_half = h_half * scale
    return torch.stack((x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half), dim=1)


def _linear_taps(
    dst: torch.Tensor, out_size: torch.Tensor, in_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices and weights of output positions `dst` when resizing `in_size` to
    `out_size` (broadcast with dst): bilinear, align_corners=False, torch's formulas."""
    scale = torch.full_like(out_size, in_size, dtype=torch.float32) / out_size.float()
    src = (scale * (dst.float() + 0.5) - 0.5).clamp(min=0)
    low = src.floor().long().clamp(max=in_size - 1)
    w_high = (src - low.float()).clamp(0, 1)
    high = low + (low < in_size - 1).long()
    return low, high, 1 - w_high, w_high


def _paste_chunk(
    canvas: torch.Tensor,
    padded: torch.Tensor,
    idx: torch.Tensor,
    box: torch.Tensor,
    crop: torch.Tensor,
    height: int,
    width: int,
    threshold: float,
    grid_w: int,
    rows: int,
) -> None:
    """Resize, threshold and write one chunk of detections into the flat uint8 `canvas`.

    `box` holds the integer boxes (x0, y0, box_w, box_h), `crop` their parts inside the image
    (left, top, crop_w, crop_h); `grid_w` is the widest crop and `rows` the crops' heights
    summed. The rows of all crops are stacked (no padding in height); each row is a window of
    the chunk's widest crop, shifted to lie inside the image, whose pixels outside the crop
    come out as 0 (`threshold` >= 0).
    """
    c, size = padded.shape[0], padded.shape[-1]
    x0, y0, box_w, box_h = box.unbind(1)
    left, top, crop_w, crop_h = crop.unbind(1)
    cols = torch.arange(grid_w, device=padded.device)
    win_left = left.clamp(max=width - grid_w)
    # Width pass: every row of each padded mask resized to the window's columns.
    tx0, tx1, wx0, wx1 = _linear_taps(win_left[:, None] - x0[:, None] + cols, box_w[:, None], size)
    # Columns outside the crop get zero weights, hence value 0.
    in_cols = (win_left[:, None] + cols >= left[:, None]) & (
        cols < (left - win_left + crop_w)[:, None]
    )
    wx0, wx1 = wx0 * in_cols, wx1 * in_cols
    # Row lookups are index_select over flattened rows (a copy per row, not per element).
    by_col = padded.transpose(1, 2).reshape(c * size, size)
    base = torch.arange(c, device=padded.device) * size
    horiz = by_col.index_select(0, (base[:, None] + tx0).view(-1)).view(c, grid_w, size)
    horiz.mul_(wx0[:, :, None]).add_(
        by_col.index_select(0, (base[:, None] + tx1).view(-1))
        .view(c, grid_w, size)
        .mul_(wx1[:, :, None])
    )
    horiz = horiz.transpose(1, 2).reshape(c * size, grid_w)
    # Height pass over the stacked crop rows: row r of detection d is image row top[d] + r.
    det = torch.repeat_interleave(torch.arange(c, device=padded.device), crop_h, output_size=rows)
    row = torch.arange(det.numel(), device=padded.device) - (crop_h.cumsum(0) - crop_h)[det]
    ty0, ty1, wy0, wy1 = _linear_taps(top[det] - y0[det] + row, box_h[det], size)
    value = horiz.index_select(0, base[det] + ty0)
    value.mul_(wy0[:, None]).add_(horiz.index_select(0, base[det] + ty1).mul_(wy1[:, None]))
    bits = torch.gt(value, threshold).view(torch.uint8)
    start = ((idx[det] * height + top[det] + row) * width + win_left[det])[:, None]
    canvas.index_copy_(0, (start + cols).view(-1), bits.view(-1))


def _empty_masks(masks: torch.Tensor, height: int, width: int, threshold: float) -> torch.Tensor:
    """The uint8 [N, 1, height, width] canvas a paste fills; a negative threshold is refused
    (it would turn the pixels outside every box on)."""
    if threshold < 0:
        raise ValueError(f"mask threshold must be >= 0, got {threshold}")
    return torch.zeros((masks.shape[0], 1, height, width), dtype=torch.uint8, device=masks.device)


def paste_masks_in_image(
    masks: torch.Tensor,
    boxes: torch.Tensor,
    height: int,
    width: int,
    threshold: float = 0.5,
    padding: int = 1,
    chunk_elements: int = 1 << 22,
    max_chunk: int = 8,
) -> torch.Tensor:
    """Masks [N, 1, M, M] (probabilities) in boxes [N, 4] (xyxy) -> uint8 [N, 1, height, width].

    Detections go in chunks of at most `max_chunk`, and of at most `chunk_elements` window
    pixels, so temporary memory stays bounded (about 70 MB) whatever the boxes.
    """
    result = _empty_masks(masks, height, width, threshold)
    n = masks.shape[0]
    if n == 0:
        return result
    m = masks.shape[-1]
    padded = F.pad(masks.reshape(n, m, m).float(), (padding,) * 4)
    size = m + 2 * padding
    box = expand_boxes(boxes.float(), size / m).to(torch.int32).long()
    x0, y0, x1, y1 = box.unbind(1)
    box_w = (x1 - x0 + TO_REMOVE).clamp(min=1)
    box_h = (y1 - y0 + TO_REMOVE).clamp(min=1)
    # The part of each resized mask that lands inside the image.
    left, top = x0.clamp(min=0), y0.clamp(min=0)
    crop_w = ((x1 + 1).clamp(max=width) - left).clamp(min=0)
    crop_h = ((y1 + 1).clamp(max=height) - top).clamp(min=0)

    # Detections whose box misses the image entirely paste nothing. Two host reads per image
    # plan the chunks: how many are visible with the largest crop, then each chunk's sizes.
    visible = (crop_w > 0) & (crop_h > 0)
    stats = torch.stack((visible.sum(), crop_w.max(), crop_h.max())).tolist()
    num_visible, widest, tallest = stats
    if num_visible == 0:
        return result
    # Chunks of similar crop widths waste little of their common window width: the visible
    # ones, widest first (the first of each chunk is its widest).
    order = torch.argsort(torch.where(visible, crop_w, -1), descending=True)[:num_visible]
    per_chunk = max(1, min(max_chunk, chunk_elements // (widest * tallest)))
    heights = crop_h[order].cumsum(0)
    ends = torch.arange(per_chunk, num_visible + per_chunk, per_chunk, device=order.device)
    rows = heights[ends.clamp(max=num_visible) - 1]
    rows = torch.cat((rows[:1], rows[1:] - rows[:-1]))
    plan = torch.stack((crop_w[order[::per_chunk]], rows), dim=1).tolist()
    box = torch.stack((x0, y0, box_w, box_h), dim=1)
    crop = torch.stack((left, top, crop_w, crop_h), dim=1)
    canvas = result.view(-1)
    for idx, (grid_w, rows) in zip(order.split(per_chunk), plan, strict=True):
        _paste_chunk(
            canvas, padded[idx], idx, box[idx], crop[idx], height, width, threshold, grid_w, rows
        )
    return result


def paste_masks_subpixel(
    masks: torch.Tensor,
    boxes: torch.Tensor,
    height: int,
    width: int,
    threshold: float = 0.5,
    chunk_elements: int = 1 << 22,
) -> torch.Tensor:
    """Masks [N, 1, M, M] (probabilities) in boxes [N, 4] (xyxy, legacy +1 extent) -> uint8
    [N, 1, height, width], sampled at each pixel centre from the box's float edges.

    detectron2's grid-sample paste: no box is rounded to whole pixels (which at a small image
    size moves mask edges by up to a pixel), and outside the M x M map the probability fades to
    0 as in the reference's one-pixel zero padding. Still one threshold.
    """
    result = _empty_masks(masks, height, width, threshold)
    n = masks.shape[0]
    if n == 0:
        return result
    boxes = boxes.float()
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = boxes[:, 2] + TO_REMOVE, boxes[:, 3] + TO_REMOVE
    xs = torch.arange(width, device=masks.device, dtype=torch.float32) + 0.5
    ys = torch.arange(height, device=masks.device, dtype=torch.float32) + 0.5
    # grid_sample's [-1, 1] spans the box's edges; align_corners=False puts the map's pixel
    # centres where the reference's resize puts them
    gx = (xs[None] - x0[:, None]) / (x1 - x0).clamp(min=1e-6)[:, None] * 2 - 1
    gy = (ys[None] - y0[:, None]) / (y1 - y0).clamp(min=1e-6)[:, None] * 2 - 1
    per_chunk = max(1, chunk_elements // (height * width))
    for first in range(0, n, per_chunk):
        part = slice(first, first + per_chunk)
        c = gx[part].shape[0]
        grid = torch.stack(
            (
                gx[part][:, None, :].expand(c, height, width),
                gy[part][:, :, None].expand(c, height, width),
            ),
            dim=-1,
        )
        sampled = F.grid_sample(masks[part].float(), grid, align_corners=False)
        result[part] = torch.gt(sampled, threshold).to(torch.uint8)
    return result


class Masker:
    """Pastes each image's [N, 1, M, M] mask probabilities into its full image size."""

    def __init__(self, threshold: float = 0.5, padding: int = 1) -> None:
        self.threshold = threshold
        self.padding = padding

    def __call__(
        self, masks: Sequence[torch.Tensor], boxes: Sequence[BoxList]
    ) -> list[torch.Tensor]:
        results = []
        for mask, box in zip(masks, boxes, strict=True):
            width, height = box.size
            results.append(
                paste_masks_in_image(
                    mask,
                    box.convert("xyxy").bbox,
                    int(height),
                    int(width),
                    self.threshold,
                    self.padding,
                )
            )
        return results


class MaskPostProcessor:
    """Sigmoid of the logits, the channel of each detection's predicted label, then (with a
    masker) pasted into the image: adds the field "mask" to copies of the detections."""

    def __init__(self, masker: Masker | None = None) -> None:
        self.masker = masker

    @torch.no_grad()
    def __call__(self, mask_logits: torch.Tensor, boxes: Sequence[BoxList]) -> list[BoxList]:
        labels = torch.cat([b.get_field("labels") for b in boxes])
        index = torch.arange(labels.numel(), device=labels.device)
        mask_prob = mask_logits[index, labels][:, None].sigmoid()
        per_image = list(mask_prob.split([len(b) for b in boxes]))
        if self.masker is not None:
            per_image = self.masker(per_image, boxes)
        results = []
        for prob, box in zip(per_image, boxes, strict=True):
            result = BoxList(box.bbox, box.size, mode="xyxy")
            for field in box.fields():
                result.add_field(field, box.get_field(field))
            result.add_field("mask", prob)
            results.append(result)
        return results
