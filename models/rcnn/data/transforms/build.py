"""build_transforms(cfg, is_train): the INPUT section of the config as a Compose."""

from __future__ import annotations

from yacs.config import CfgNode

from rcnn.data.transforms.transforms import (
    ColorJitter,
    Compose,
    Normalize,
    RandomHorizontalFlip,
    RandomVerticalFlip,
    Resize,
    ToTensor,
)


def build_transforms(cfg: CfgNode, is_train: bool = True) -> Compose:
    inp = cfg.INPUT
    if is_train:
        min_size, max_size = inp.MIN_SIZE_TRAIN, inp.MAX_SIZE_TRAIN
        hflip, vflip = inp.HORIZONTAL_FLIP_PROB_TRAIN, inp.VERTICAL_FLIP_PROB_TRAIN
        jitter = (inp.BRIGHTNESS, inp.CONTRAST, inp.SATURATION, inp.HUE)
    else:
        min_size, max_size = inp.MIN_SIZE_TEST, inp.MAX_SIZE_TEST
        hflip, vflip, jitter = 0.0, 0.0, (0.0, 0.0, 0.0, 0.0)
    steps = []
    if any(jitter):
        steps.append(ColorJitter(*jitter))
    steps.append(Resize(min_size, max_size))
    if hflip > 0:
        steps.append(RandomHorizontalFlip(hflip))
    if vflip > 0:
        steps.append(RandomVerticalFlip(vflip))
    steps += [ToTensor(), Normalize(inp.PIXEL_MEAN, inp.PIXEL_STD, inp.TO_BGR255)]
    return Compose(steps)
