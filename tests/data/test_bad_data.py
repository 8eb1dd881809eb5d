"""Bad data: each case names image id and path; reject raises one DataError, skip counts."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from rcnn.data import COCODataset, DataError, TxtListDataset
from rcnn.data.collate import BatchCollator
from rcnn.data.synthetic import ann_file, img_dir
from rcnn.data.transforms import Compose, ToTensor


def edit_json(root: Path, split: str, edit: Callable[[dict], None]) -> None:
    """Apply `edit` to the instances json of `split` in place."""
    path = ann_file(root, split)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def image_path(root: Path, split: str, image_id: int) -> Path:
    return img_dir(root, split) / f"{split}_{image_id:06d}.jpg"


def _dataset(root: Path, policy: str, train: bool = True) -> COCODataset:
    return COCODataset(
        str(ann_file(root, "train")),
        str(img_dir(root, "train")),
        remove_images_without_annotations=train,
        on_bad_data=policy,
        with_masks=True,
    )


def _set_ann(root: Path, image_id: int, **changes) -> int:
    """Change the first annotation of an image; returns its id."""
    found = {}

    def edit(data: dict) -> None:
        ann = next(a for a in data["annotations"] if a["image_id"] == image_id)
        ann.update(changes)
        found["id"] = ann["id"]

    edit_json(root, "train", edit)
    return found["id"]


def _missing(root: Path) -> tuple[int, str]:
    image_path(root, "train", 3).unlink()
    return 3, "missing image file"


def _garbage(root: Path) -> tuple[int, str]:
    image_path(root, "train", 2).write_bytes(b"this is not a jpeg" * 50)
    return 2, "unreadable image file"


def _zero_width(root: Path) -> tuple[int, str]:
    ann_id = _set_ann(root, 4, bbox=[10.0, 10.0, 0.0, 5.0])
    return 4, f"annotation {ann_id}: box with non-positive size"


def _unknown_category(root: Path) -> tuple[int, str]:
    ann_id = _set_ann(root, 5, category_id=99)
    return 5, f"annotation {ann_id}: unknown category 99"


def _degenerate_polygon(root: Path) -> tuple[int, str]:
    ann_id = _set_ann(root, 1, segmentation=[[1.0, 1.0, 5.0, 5.0, 9.0, 9.0]])
    return 1, f"annotation {ann_id}: bad segmentation: degenerate polygon with zero area"


def _rle_size_mismatch(root: Path) -> tuple[int, str]:
    ann_id = _set_ann(root, 6, segmentation={"size": [10, 10], "counts": [100]})
    return 6, f"annotation {ann_id}: bad segmentation: RLE size (h, w) [10, 10] does not match"


def _size_mismatch(root: Path) -> tuple[int, str]:
    edit_json(root, "train", lambda d: d["images"][0].update(width=200))
    return 1, "file is 96x80, the annotations say 200x80"


CASES = [
    _missing,
    _garbage,
    _zero_width,
    _unknown_category,
    _degenerate_polygon,
    _rle_size_mismatch,
    _size_mismatch,
]


@pytest.mark.parametrize("break_it", CASES, ids=lambda f: f.__name__.strip("_"))
def test_reject_names_id_and_path(make_set, break_it) -> None:
    root = make_set(train=6, val=0)
    image_id, reason = break_it(root)
    with pytest.raises(DataError) as err:
        _dataset(root, "reject")
    message = str(err.value)
    path = image_path(root, "train", image_id)
    assert message.startswith("1 bad item(s) in ")
    assert f"image {image_id} ({path}): {reason}" in message
    assert "DATASETS.ON_BAD_DATA skip" in message


@pytest.mark.parametrize("break_it", CASES, ids=lambda f: f.__name__.strip("_"))
def test_skip_counts_and_drops(make_set, break_it, caplog) -> None:
    root = make_set(train=6, val=0)
    image_id, reason = break_it(root)
    with caplog.at_level(logging.WARNING, logger="rcnn.data.datasets.bad_data"):
        ds = _dataset(root, "skip", train=False)
    assert ds.num_bad == 1 and ds.bad_items[0].image_id == image_id
    assert reason in str(ds.bad_items[0])
    assert "skipped 1 bad item(s)" in caplog.text and f"image {image_id} (" in caplog.text
    image_level = reason.startswith(("missing", "unreadable", "file is"))
    assert len(ds) == (5 if image_level else 6)
    for i in range(len(ds)):  # every kept item loads and its targets are valid
        _, target, _ = ds[i]
        assert (target.bbox[:, 2:] >= target.bbox[:, :2]).all()
        assert (target.get_field("labels") >= 1).all()


def test_reject_lists_first_ten_and_the_total(make_set) -> None:
    root = make_set(train=12, val=0)
    for i in range(1, 13):
        image_path(root, "train", i).unlink()
    with pytest.raises(DataError) as err:
        _dataset(root, "reject")
    message = str(err.value)
    assert message.startswith("12 bad item(s)")
    assert message.count("missing image file") == 10 and "... and 2 more" in message


def test_image_without_annotations(make_set) -> None:
    """Empty images are not bad data (COCO train2017 has ~1k): training drops and counts them
    under either policy, as maskrcnn-benchmark; testing keeps them."""
    root = make_set(train=4, val=0)
    edit_json(
        root,
        "train",
        lambda d: d.update(annotations=[a for a in d["annotations"] if a["image_id"] != 2]),
    )
    for policy in ("reject", "skip"):
        ds = _dataset(root, policy)
        assert ds.ids == [1, 3, 4]
        assert [str(r) for r in ds.removed_empty] == [
            f"image 2 ({image_path(root, 'train', 2)}): no usable annotation"
        ]
    test_ds = _dataset(root, "reject", train=False)
    assert len(test_ds) == 4 and len(test_ds[1][1]) == 0


def _truncate(root: Path, image_id: int) -> Path:
    path = image_path(root, "train", image_id)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header survives, the pixels do not
    return path


def test_truncated_jpeg_fails_at_load_with_id_and_path(make_set) -> None:
    root = make_set(train=3, val=0)
    path = _truncate(root, 2)
    ds = _dataset(root, "reject")  # passes the header check
    assert len(ds) == 3
    with pytest.raises(DataError, match=rf"^image 2 \({path}\): cannot decode"):
        ds[1]


def test_truncated_jpeg_through_a_worker_process(make_set) -> None:
    root = make_set(train=3, val=0)
    path = _truncate(root, 2)
    ds = _dataset(root, "reject")
    ds.transforms = Compose([ToTensor()])
    loader = torch.utils.data.DataLoader(
        ds, batch_size=1, num_workers=1, collate_fn=BatchCollator()
    )
    with pytest.raises(DataError) as err:
        list(loader)
    assert str(err.value).startswith(f"image 2 ({path}): cannot decode")
    assert "\n" not in str(err.value)
    assert "DataLoader worker process 0" in err.value.worker_traceback


def test_txt_list_bad_lines(make_set) -> None:
    root = make_set(train=3, val=0)
    (root / "classes.txt").write_text("circle\nsquare\n")
    (root / "list.txt").write_text(
        "train/train_000001.jpg 10,10,5,40,0\n"  # x2 < x1
        "train/missing.jpg 1,1,9,9,0\n"
        "train/train_000002.jpg 1,1,9,9,5\n"  # class index out of range
        "train/train_000003.jpg 1,1,9\n"  # malformed
    )
    args = (str(root / "list.txt"), str(root), str(root / "classes.txt"), True)
    with pytest.raises(DataError) as err:
        TxtListDataset(*args)
    message = str(err.value)
    train = img_dir(root, "train")
    assert message.startswith("4 bad item(s)")
    assert f"image 1 ({train / 'train_000001.jpg'}): box with non-positive size" in message
    assert f"image 2 ({train / 'missing.jpg'}): missing image file" in message
    assert f"image 3 ({train / 'train_000002.jpg'}): unknown category: class index 5" in message
    assert f"image 4 ({train / 'train_000003.jpg'}): box '1,1,9' is not x1,y1,x2,y2,class" in (
        message
    )
    # every line lost its only box or its image: a set of no image is refused, not trained on
    with pytest.raises(DataError, match=r"no image left to use \(3 listed: 3 without usable"):
        TxtListDataset(*args, on_bad_data="skip")
