"""Datasets: COCO json, plain-text lists; bad data reported as DataError."""

from rcnn.data.datasets.bad_data import BadItem, DataError
from rcnn.data.datasets.coco import COCODataset
from rcnn.data.datasets.txt_list import TxtListDataset

__all__ = ["BadItem", "COCODataset", "DataError", "TxtListDataset"]
