"""Issue 14's corpus, data side: every malformed data set ends in one clear line or in a
documented acceptance, and nothing outside the data root is ever opened.

Each case breaks a fresh copy of a real synthetic COCO set (JPEGs + instances json) or a text
list, then builds it through `make_dataset`, the entry every run uses. An audit hook records
every file the process opens; a sentinel folder beside the data root must never appear in it.
"""

from __future__ import annotations

import json
import logging
import shutil
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rcnn.config import ConfigError, get_default_config
from rcnn.data.build import build_datasets, make_dataset
from rcnn.data.synthetic import SyntheticSpec, ann_file, generate, img_dir
from rcnn.errors import USER_ERRORS

OPENED: list[str] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and isinstance(args[0], str | bytes):
        OPENED.append(str(args[0]))


sys.addaudithook(_audit)


@dataclass
class Expect:
    """`error`: a user error whose one-line message holds every needle. `accepted`: loads, and
    `check(dataset, log_text)` asserts the documented result."""

    kind: str
    needles: tuple[str, ...] = ()
    check: Callable | None = None
    build: dict = field(default_factory=dict)


def error(*needles: str, **build) -> Expect:
    return Expect("error", needles, build=build)


def accepted(check: Callable, **build) -> Expect:
    return Expect("accepted", check=check, build=build)


@pytest.fixture(scope="module")
def base_set(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus_base")
    generate(SyntheticSpec(train_images=4, val_images=0, width=96, height=80, seed=3), root)
    return root


# ---- helpers that break a copy of the set -----------------------------------------------------
def _json(root: Path) -> dict:
    return json.loads(ann_file(root, "train").read_text())


def _write(root: Path, data: object) -> None:
    ann_file(root, "train").write_text(json.dumps(data))


def _edit(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        data = _json(root)
        change(data)
        _write(root, data)

    return apply


def _image(i: int, **changes) -> Callable[[Path], None]:
    return _edit(lambda d: d["images"][i].update(changes))


def _ann(i: int, **changes) -> Callable[[Path], None]:
    return _edit(lambda d: d["annotations"][i].update(changes))


def _drop(section: str, i: int, key: str) -> Callable[[Path], None]:
    return _edit(lambda d: d[section][i].pop(key))


def _drop_top(key: str) -> Callable[[Path], None]:
    return _edit(lambda d: d.pop(key))


def _raw(text: bytes) -> Callable[[Path], None]:
    return lambda root: ann_file(root, "train").write_bytes(text)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height (nothing is decoded before the refusal)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat))


def _swap_image(i: int, make: Callable[[Path], None], name: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        make(img_dir(root, "train") / name)
        _image(i, file_name=name)(root)

    return apply


def _png16(path: Path) -> None:
    values = (np.arange(96 * 80, dtype=np.uint32).reshape(80, 96) * 8).astype(np.uint16)
    Image.fromarray(values).save(path)


def _outside_file(root: Path) -> Path:
    return root.parent / f"{root.name}_secret" / "outside.jpg"


def _point_outside(how: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        secret = _outside_file(root)
        secret.parent.mkdir(exist_ok=True)
        shutil.copy(img_dir(root, "train") / "train_000001.jpg", secret)
        if how == "absolute":
            name = str(secret)
        elif how == "dotdot":
            name = f"../../{secret.parent.name}/outside.jpg"
        else:  # a symlink inside the image folder that leads out of it
            (img_dir(root, "train") / "link.jpg").symlink_to(secret)
            name = "link.jpg"
        _image(0, file_name=name)(root)

    return apply


def _all(change: Callable[[dict], None]) -> Callable[[Path], None]:
    return _edit(lambda d: [change(a) for a in d["annotations"]])


def _nested(depth: int) -> Callable[[Path], None]:
    return _raw(b"[" * depth + b"]" * depth)


def _rle(counts: object, size: object = (80, 96), crowd: int = 0) -> Callable[[Path], None]:
    return _ann(
        0,
        segmentation={"size": list(size) if isinstance(size, tuple) else size, "counts": counts},
        iscrowd=crowd,
    )


# ---- documented acceptances ------------------------------------------------------------------
def _clipped_once(ds, log: str) -> None:
    assert ds.clipped_boxes == 1 and "clipped 1 box(es) extending past their image" in log
    boxes = ds[0][1].bbox
    assert float(boxes[:, 2].max()) <= 95 and float(boxes[:, 0].min()) >= 0


def _sixteen_bit_scaled(ds, log: str) -> None:
    pixels = np.asarray(ds[0][0])
    expected = ((np.arange(96 * 80).reshape(80, 96) * 8) & 0xFFFF) >> 8
    assert pixels.shape == (80, 96, 3) and (pixels[..., 0] == expected).all()
    assert pixels.max() > 200 and pixels.min() == 0  # not the all-white of a plain convert


def _reads_outside(ds, log: str) -> None:
    assert len(ds) == 4 and ds[0][0].size == (96, 80)


def _inside_dotdot(ds, log: str) -> None:
    assert len(ds) == 4


def _skipped_one(ds, log: str) -> None:
    # the annotation is dropped, its image keeps its other objects
    assert ds.num_bad == 1 and len(ds) == 4 and "skipped 1 bad item(s)" in log


CASES: dict[str, tuple[Callable[[Path], None], Expect]] = {
    # the json as a whole
    "json_garbage": (_raw(b"{not json"), error("instances_train.json", "is not COCO json")),
    "json_empty_file": (_raw(b""), error("is not COCO json")),
    "json_latin1": (_raw('{"images": "caf\xe9"}'.encode("latin-1")), error("is not COCO json")),
    "json_nested_deep": (_nested(200_000), error("is not COCO json")),
    "json_top_level_list": (_raw(b"[]"), error("expected a json object, got list")),
    "no_categories": (_drop_top("categories"), error("'categories' is missing")),
    "no_images": (_drop_top("images"), error("'images' is missing or not a list")),
    "categories_not_list": (_edit(lambda d: d.update(categories={})), error("'categories'")),
    "annotations_not_list": (_edit(lambda d: d.update(annotations=3)), error("'annotations'")),
    "category_without_id": (
        _edit(lambda d: d["categories"][0].pop("id")),
        error("category #0 has no integer 'id'"),
    ),
    "category_without_name": (
        _edit(lambda d: d["categories"][1].pop("name")),
        error("category 2 has no 'name'"),
    ),
    "category_id_twice": (
        _edit(lambda d: d["categories"][1].update(id=1)),
        error("category id 1 appears twice"),
    ),
    # images
    "image_without_id": (_drop("images", 2, "id"), error("image #2 has no integer 'id'")),
    "image_id_string": (_image(1, id="2"), error("image #1 has no integer 'id'")),
    "image_id_twice": (_image(1, id=1), error("image id 1 appears twice")),
    "image_without_width": (_drop("images", 0, "width"), error("image 1: 'width' must be")),
    "image_width_text": (_image(2, width="wide"), error("image 3: 'width'", "'wide'")),
    "image_width_negative": (_image(0, width=-96), error("image 1: 'width'", "-96")),
    "image_height_zero": (_image(0, height=0), error("image 1: 'height'")),
    "image_width_fraction": (_image(0, width=96.5), error("image 1: 'width'", "96.5")),
    "image_width_bool": (_image(0, width=True), error("image 1: 'width'")),
    "image_without_file_name": (_drop("images", 3, "file_name"), error("image 4: 'file_name'")),
    "image_file_name_null": (_image(3, file_name=None), error("image 4: 'file_name'")),
    "image_size_mismatch": (_image(0, width=120), error("image 1 (", "file is 96x80")),
    # annotations as records
    "annotation_without_id": (_drop("annotations", 0, "id"), error("annotation #0 has no")),
    "annotation_id_twice": (
        _edit(lambda d: d["annotations"][1].update(id=d["annotations"][0]["id"])),
        error("annotation id 1 appears twice"),
    ),
    "annotation_unknown_image": (_ann(0, image_id=77), error("annotation 1: image_id 77")),
    "annotation_without_category": (
        _drop("annotations", 0, "category_id"),
        error("annotation 1: 'category_id'"),
    ),
    "annotation_unknown_category": (_ann(0, category_id=99), error("unknown category 99")),
    # boxes
    "bbox_null": (_ann(0, bbox=None), error("image 1 (", "annotation 1: malformed bbox None")),
    "bbox_three_values": (_ann(0, bbox=[1, 2, 3]), error("annotation 1: malformed bbox")),
    "bbox_text": (_ann(0, bbox=["1", "2", "3", "4"]), error("annotation 1: non-finite bbox")),
    "bbox_nan": (_ann(0, bbox=[1.0, float("nan"), 3.0, 4.0]), error("non-finite bbox")),
    "bbox_inf": (_ann(0, bbox=[1.0, 2.0, float("inf"), 4.0]), error("non-finite bbox")),
    "bbox_negative_width": (_ann(0, bbox=[10, 10, -5, 4]), error("non-positive size")),
    "bbox_all_outside": (
        _ann(0, bbox=[500.0, 10.0, 20.0, 20.0]),
        error("annotation 1: box (x, y, w, h)", "lies outside the 96x80 image"),
    ),
    "bbox_left_of_image": (_ann(0, bbox=[-40.0, 5.0, 20.0, 20.0]), error("lies outside")),
    "bbox_past_edge_reject": (
        _ann(0, bbox=[80.0, 10.0, 40.0, 20.0]),
        error("extends past the 96x80 image", "BOXES_OUTSIDE_IMAGE", box_policy="reject"),
    ),
    "bbox_past_edge_clip": (
        _ann(0, bbox=[80.0, 10.0, 40.0, 20.0]),
        accepted(_clipped_once, box_policy="clip"),
    ),
    "crowd_bbox_null": (_ann(0, iscrowd=1, bbox=None), error("annotation 1: malformed bbox")),
    # masks
    "polygon_text_coordinate": (
        _ann(0, segmentation=[["a", 1, 2, 3, 4, 5]]),
        error("annotation 1: bad segmentation: polygon has a non-numeric coordinate"),
    ),
    "polygon_nested_wrong": (
        _ann(0, segmentation=[[[1, 2], [3]]]),
        error("annotation 1: bad segmentation"),
    ),
    "polygon_odd_count": (_ann(0, segmentation=[[1, 2, 3, 4, 5, 6, 7]]), error("polygon needs")),
    "polygon_empty": (_ann(0, segmentation=[]), error("empty polygon list")),
    "polygon_zero_area": (_ann(0, segmentation=[[1, 1, 5, 5, 9, 9]]), error("zero area")),
    "polygon_infinite": (
        _ann(0, segmentation=[[1, 1, float("inf"), 5, 9, 2]]),
        error("non-finite coordinates"),
    ),
    "segmentation_missing": (
        _edit(lambda d: d["annotations"][0].pop("segmentation")),
        error("annotation 1: no segmentation (masks are on)"),
    ),
    "rle_counts_garbage": (_rle("zz~~"), error("invalid character")),
    "rle_counts_short": (_rle([10, 20]), error("RLE counts cover 30 pixels", "7680")),
    "rle_counts_negative": (_rle([-5, 7685]), error("non-negative integers")),
    "rle_counts_number": (_rle(7680), error("RLE counts must be a list or a compressed string")),
    "rle_counts_truncated_string": (_rle("P"), error("ends inside a number")),
    "rle_size_text": (_rle([7680], size="ab"), error("RLE size (h, w) 'ab'")),
    "rle_size_wrong": (_rle([100], size=(10, 10)), error("does not match the image [80, 96]")),
    "rle_not_dict_keys": (_ann(0, segmentation={"counts": [7680]}), error("'size' and 'counts'")),
    "crowd_rle_garbage": (_rle("zz", crowd=1), error("bad crowd segmentation", "invalid")),
    # image files
    "image_missing": (
        lambda root: (img_dir(root, "train") / "train_000002.jpg").unlink(),
        error("image 2 (", "train_000002.jpg): missing image file"),
    ),
    "image_garbage": (
        lambda root: (img_dir(root, "train") / "train_000003.jpg").write_bytes(b"no jpeg" * 9),
        error("image 3 (", "unreadable image file"),
    ),
    "image_is_directory": (
        lambda root: (
            (img_dir(root, "train") / "train_000004.jpg").unlink(),
            (img_dir(root, "train") / "train_000004.jpg").mkdir(),
        ),
        error("image 4 (", "missing image file"),
    ),
    "image_decompression_bomb": (
        _swap_image(0, lambda p: _png_header_only(p, 30000, 30000), "bomb.png"),
        error("image 1 (", "bomb.png): refused", "decompression"),
    ),
    "image_just_above_pixel_limit": (
        _swap_image(0, lambda p: _png_header_only(p, 10000, 9000), "big.png"),
        error("big.png): refused", "decompression-bomb limit"),
    ),
    "image_float_tiff": (
        _swap_image(
            0,
            lambda p: Image.fromarray(np.zeros((80, 96), np.float32), "F").save(p),
            "float.tiff",
        ),
        error("image 1 (", "pixel mode 'F'"),
    ),
    "image_16bit_png": (_swap_image(0, _png16, "deep.png"), accepted(_sixteen_bit_scaled)),
    # paths
    "path_absolute": (_point_outside("absolute"), error("image 1 (", "absolute file name")),
    "path_dotdot": (_point_outside("dotdot"), error("image 1 (", "outside the data root")),
    "path_symlink_out": (_point_outside("symlink"), error("link.jpg): resolves to")),
    "path_etc_passwd": (_image(0, file_name="../../../../../../etc/passwd"), error("data root")),
    "path_absolute_allowed": (
        _point_outside("absolute"),
        accepted(_reads_outside, allow_absolute_paths=True),
    ),
    "path_dotdot_inside": (
        _image(0, file_name="../train/train_000001.jpg"),
        accepted(_inside_dotdot),
    ),
    # what is left to train on
    "skip_drops_counted": (_ann(0, bbox=None), accepted(_skipped_one, on_bad_data="skip")),
    "everything_bad_skipped": (
        _all(lambda a: a.update(bbox=None)),
        error(
            "no image left to use (4 listed: 4 without usable annotation, 21 bad)",
            on_bad_data="skip",
        ),
    ),
    "all_crowd": (
        _all(lambda a: a.update(iscrowd=1)),
        error("no annotation to train on (every usable one is iscrowd=1)"),
    ),
    "no_images_listed": (
        _edit(lambda d: d.update(images=[], annotations=[])),
        error("no image left to use (0 listed"),
    ),
    "no_annotations_training": (
        _edit(lambda d: d.update(annotations=[])),
        error("no image left to use (4 listed: 4 without usable annotation"),
    ),
}


def _one_line(message: str, needles: tuple[str, ...]) -> None:
    assert "\n" not in message and "Traceback" not in message, message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


def _run(root: Path, spec: dict, expect: Expect, caplog) -> None:
    build = {"on_bad_data": "reject", "with_masks": True, **expect.build}
    secret = _outside_file(root).parent
    OPENED.clear()
    with caplog.at_level(logging.INFO):
        try:
            dataset = make_dataset(spec, None, is_train=True, **build)
            outcome, message = "accepted", ""
            if expect.kind == "accepted":
                expect.check(dataset, caplog.text)
        except USER_ERRORS as err:
            outcome, message = "error", str(err)
    allowed_outside = expect.build.get("allow_absolute_paths", False)
    assert allowed_outside or not [p for p in OPENED if str(secret) in p], "read outside the root"
    assert outcome == expect.kind, message
    if outcome == "error":
        _one_line(message, expect.needles)


def _broken_copy(base: Path, tmp_path: Path, case: tuple) -> tuple[Path, Expect]:
    root = tmp_path / "data"
    shutil.copytree(base, root)
    breaker, expect = case
    breaker(root)
    return root, expect


@pytest.mark.parametrize("case", CASES, ids=str)
def test_coco_corpus(base_set: Path, tmp_path: Path, case: str, caplog) -> None:
    root, expect = _broken_copy(base_set, tmp_path, CASES[case])
    spec = {
        "factory": "COCODataset",
        "args": {"ann_file": str(ann_file(root, "train")), "root": str(img_dir(root, "train"))},
    }
    _run(root, spec, expect, caplog)


# ---- text lists: "path x1,y1,x2,y2,class ..." and a classes file ------------------------------
def _txt(lines: str | bytes, classes: str | bytes = "circle\nsquare\ntriangle\n"):
    def apply(root: Path) -> None:
        for name, text in (("list.txt", lines), ("classes.txt", classes)):
            data = text if isinstance(text, bytes) else text.encode()
            (root / name).write_bytes(data)

    return apply


GOOD = "train/train_000001.jpg 10,10,40,40,0\n"


def _two_lines_read(ds, log: str) -> None:
    assert len(ds) == 2 and ds[0][1].bbox.tolist() == [[10.0, 10.0, 40.0, 40.0]]


TXT_CASES: dict[str, tuple[Callable[[Path], None], Expect]] = {
    "list_latin1": (
        _txt(GOOD.encode() + "train/caf\xe9.jpg 1,1,9,9,0\n".encode("latin-1")),
        error("list.txt:2: list file is not UTF-8 text (byte 0xe9 at column 10)"),
    ),
    "classes_latin1": (
        _txt(GOOD, "circle\nsqu\xe2re\n".encode("latin-1")),
        error("classes.txt:2: classes file is not UTF-8 text"),
    ),
    "classes_empty": (_txt(GOOD, ""), error("classes.txt has no class names")),
    "list_box_text": (_txt("train/train_000001.jpg a,b,c,d,0\n"), error("non-numeric value")),
    "list_box_nan": (_txt("train/train_000001.jpg nan,1,9,9,0\n"), error("non-finite")),
    "list_class_range": (_txt("train/train_000001.jpg 1,1,9,9,7\n"), error("class index 7")),
    "list_box_four_fields": (_txt("train/train_000001.jpg 1,1,9,9\n"), error("is not x1,y1")),
    "list_missing_image": (_txt("train/nope.jpg 1,1,9,9,0\n"), error("image 1 (", "missing")),
    "list_absolute_path": (_txt("/etc/passwd 1,1,9,9,0\n"), error("absolute file name")),
    "list_dotdot_path": (
        _txt("../../../../../../etc/passwd 1,1,9,9,0\n"),
        error("image 1 (", "outside the data root"),
    ),
    "list_only_comments": (_txt("# nothing here\n\n"), error("no image left to use")),
    "list_crlf_accepted": (
        _txt(GOOD.replace("\n", "\r\n") * 2),
        accepted(_two_lines_read),
    ),
}


@pytest.mark.parametrize("case", TXT_CASES, ids=str)
def test_txt_list_corpus(base_set: Path, tmp_path: Path, case: str, caplog) -> None:
    root, expect = _broken_copy(base_set, tmp_path, TXT_CASES[case])
    args = {"list_file": str(root / "list.txt"), "img_dir": str(root)}
    spec = {
        "factory": "TxtListDataset",
        "args": {**args, "classes_file": str(root / "classes.txt")},
    }
    _run(root, spec, expect, caplog)


def test_fewer_classes_than_the_data(base_set: Path, tmp_path: Path) -> None:
    """NUM_CLASSES below the data's categories + 1 would index past the logits in the loss."""
    from rcnn.config import DatasetCatalog

    DatasetCatalog.register(
        "corpus_train",
        str(img_dir(base_set, "train")),
        str(ann_file(base_set, "train")),
        replace=True,
    )
    cfg = get_default_config()
    cfg.DATASETS.TRAIN = ("corpus_train",)
    cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES = 3
    with pytest.raises(ConfigError) as err:
        build_datasets(cfg, is_train=True)
    _one_line(
        str(err.value),
        (
            "MODEL.ROI_BOX_HEAD.NUM_CLASSES 3 is too small",
            "corpus_train",
            "3 categories",
            "at least 4",
        ),
    )
