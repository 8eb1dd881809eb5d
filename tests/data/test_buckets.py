"""Shape buckets (rcnn.data.buckets): few canvases, each batch on the smallest that holds it,
padding bottom/right with the real image sizes kept, so detections stay those of the batch
maskrcnn-benchmark pads with a larger partner image."""

import pytest
import torch

from rcnn.compat import recompile_limit
from rcnn.config import ConfigError, load_config
from rcnn.data.buckets import AUTO_BUCKETS, bucket_canvases, canvas_for
from rcnn.data.build import shape_buckets
from rcnn.data.collate import BatchCollator
from rcnn.data.transforms.transforms import get_size
from rcnn.modeling.detector import build_detection_model
from rcnn.structures.bounding_box import BoxList
from rcnn.structures.image_list import to_image_list

QUICK = "models/configs/quick/faster_rcnn_R_18_FPN_quick.yaml"


def test_coco_sizes_fall_into_seven_canvases_that_hold_every_aspect_ratio():
    canvases = bucket_canvases((800,), 1333, 32, AUTO_BUCKETS)
    assert canvases == [
        (800, 992),
        (992, 800),
        (800, 1184),
        (1184, 800),
        (800, 1344),
        (1344, 800),
        (1344, 1344),
    ]
    for ratio in [0.2, 0.5, 0.75, 1.0, 4 / 3, 1.5, 2.0, 5.0]:  # width / height of the original
        height, width = get_size((round(600 * ratio), 600), 800, 1333)
        padded = (-(-height // 32) * 32, -(-width // 32) * 32)
        canvas = canvas_for(*padded, canvases)
        assert canvas is not None and canvas[0] >= height and canvas[1] >= width
    assert canvas_for(800, 1067, canvases) == (800, 1184)  # a 4:3 COCO image
    assert canvas_for(1067, 1067, canvases) == (1344, 1344)  # a batch of both orientations


def _cfg(*overrides: str):
    return load_config(
        QUICK, ["INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "224", *overrides]
    )


def test_buckets_are_off_in_eager_runs_on_for_static_compiles_and_the_key_decides():
    assert shape_buckets(_cfg(), is_train=False) == []
    assert len(shape_buckets(_cfg(), is_train=False, static_compile=True)) == 2 * AUTO_BUCKETS + 1
    assert shape_buckets(_cfg("DATALOADER.SHAPE_BUCKETS", "0"), False, static_compile=True) == []
    assert shape_buckets(_cfg("DATALOADER.SHAPE_BUCKETS", "1"), is_train=False) == [
        (96, 224),
        (224, 96),
        (224, 224),
    ]


def test_buckets_fit_the_recompile_limit_or_are_refused_before_work():
    name, _ = recompile_limit()
    three = ("DATALOADER.SHAPE_BUCKETS", "3")
    with torch._dynamo.config.patch(**{name: 6}):
        with pytest.raises(
            ConfigError,
            match=rf"^DATALOADER.SHAPE_BUCKETS 3: 7 shape buckets exceed .*config.{name} \(6\)",
        ):
            shape_buckets(_cfg(*three), is_train=False, static_compile=True)
        assert len(shape_buckets(_cfg(), False, static_compile=True)) == 5  # auto: 2 long sides
    # eager: no cap; nine steps from 96 to 224 round to four long sides (multiples of 32)
    assert len(shape_buckets(_cfg("DATALOADER.SHAPE_BUCKETS", "9"), False)) == 2 * 4 + 1


def test_training_that_evaluates_counts_the_test_sets_buckets_too():
    """Evaluation's graphs (no grad, eval mode) share the compiled backbone's cache."""
    name, limit = recompile_limit()
    evaluates = ("SOLVER.TEST_PERIOD", "100")
    with torch._dynamo.config.patch(**{name: 8}):
        assert len(shape_buckets(_cfg(), True, static_compile=True)) == 7
        assert len(shape_buckets(_cfg(*evaluates), True, static_compile=True)) == 3  # 3 + 3
        assert len(shape_buckets(_cfg(*evaluates), False, static_compile=True)) == 3  # the same
        with pytest.raises(ConfigError, match=r"10 shape buckets \(training and evaluation\)"):
            shape_buckets(_cfg(*evaluates, "DATALOADER.SHAPE_BUCKETS", "2"), True, True)


def _image(height: int, width: int, seed: int) -> torch.Tensor:
    image = torch.randn(3, height, width, generator=torch.Generator().manual_seed(seed)) * 20
    image[:, 20:70, 30:110] += 80  # something to detect
    return image


def test_the_collator_pads_bottom_right_onto_the_smallest_bucket_keeping_real_sizes():
    canvases = shape_buckets(_cfg(), is_train=False, static_compile=True)
    image = _image(96, 120, 0)
    target = BoxList(torch.tensor([[10.0, 5.0, 60.0, 40.0]]), (120, 96))
    batch, targets, ids = BatchCollator(32, canvases)([(image, target, 7)])
    assert batch.tensors.shape == (1, 3, 96, 160)  # 96x128 by divisibility, then the bucket
    assert batch.image_sizes == [(96, 120)]
    assert torch.equal(batch.tensors[0, :, :, :120], image)
    assert batch.tensors[0, :, :, 120:].abs().max() == 0
    assert targets == (target,) and ids == (7,)
    wide, _, _ = BatchCollator(32, canvases)([(_image(96, 224, 1), None, 0), (image, None, 1)])
    assert wide.tensors.shape == (2, 3, 96, 224)  # already a bucket: no extra padding


def test_padding_to_a_bucket_leaves_detections_unchanged():
    """The bucket's padding is the padding the reference gives an image batched with a larger
    partner: same canvas, same place, same real size, so the same detections, clipped to the
    real image. (A convolution near the padded border sees zeros instead of its own padding,
    so detections on the bucket's canvas differ from those on the image's tight canvas, as
    they do under SIZE_DIVISIBILITY: README, "Shape buckets".)"""
    canvases = shape_buckets(_cfg(), is_train=False, static_compile=True)
    torch.manual_seed(0)
    model = build_detection_model(_cfg()).eval()
    image = _image(96, 120, 0)
    bucketed, _, _ = BatchCollator(32, canvases)([(image, None, 0)])
    partner = torch.zeros(3, 96, 160)  # the reference pads to the batch's largest image
    reference = to_image_list([image, partner], 32)
    assert bucketed.tensors.shape[-2:] == reference.tensors.shape[-2:] == (96, 160)
    with torch.no_grad():
        got, want = model(bucketed)[0], model(reference)[0]
    assert len(want) > 0
    assert got.get_field("labels").tolist() == want.get_field("labels").tolist()
    torch.testing.assert_close(got.bbox, want.bbox, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(got.get_field("scores"), want.get_field("scores"), rtol=0, atol=1e-5)
    assert got.size == (120, 96)
    assert float(got.bbox[:, 2].max()) <= 119 and float(got.bbox[:, 3].max()) <= 95
