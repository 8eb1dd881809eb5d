"""Data: datasets (COCO, text list, synthetic), transforms, samplers, collate, loaders."""

from rcnn.data.build import make_data_loader, make_dataset
from rcnn.data.collate import BatchCollator
from rcnn.data.datasets import COCODataset, DataError, TxtListDataset

__all__ = [
    "BatchCollator",
    "COCODataset",
    "DataError",
    "TxtListDataset",
    "make_data_loader",
    "make_dataset",
]
