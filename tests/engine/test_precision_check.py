"""The conv dtype probe: what a run's convolutions really ran in, on a real quick detector."""

import pytest
import torch

from rcnn.config import load_config
from rcnn.engine.precision_check import ConvDtypeProbe, PrecisionMismatch, first_body_conv
from rcnn.modeling.detector import build_detection_model
from rcnn.structures.image_list import to_image_list

QUICK = "models/configs/quick/faster_rcnn_R_18_FPN_quick.yaml"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_detection_model(load_config(QUICK)).eval()


def images():
    return to_image_list([torch.rand(3, 64, 96) * 255 - 120], size_divisible=32)


def test_fp32_inference_is_seen_as_float32_and_refused_as_bf16(model):
    with ConvDtypeProbe(model) as probe, torch.no_grad():
        model(images())
    assert probe.dtype_name == "float32"
    probe.check("fp32")
    probe.check("tf32")  # fp32 storage: the probe cannot tell TF32 math apart, and says nothing
    with pytest.raises(
        PrecisionMismatch,
        match="bf16 asked for bfloat16 convolutions, but they "
        "ran in float32 on cpu: autocast did not cover them",
    ):
        probe.check("bf16", "cpu")


def test_bf16_autocast_is_seen_as_bfloat16(model):
    with ConvDtypeProbe(model) as probe, torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        model(images())
    assert probe.dtype == torch.bfloat16
    probe.check("bf16")
    with pytest.raises(PrecisionMismatch, match="ran in bfloat16"):
        probe.check("fp16")


def test_the_probe_leaves_no_hook_behind_and_says_nothing_before_a_conv_ran(model):
    conv = first_body_conv(model)
    assert conv is model.backbone.body.stem.conv1
    with ConvDtypeProbe(model) as probe:
        assert len(conv._forward_hooks) == 1
    assert len(conv._forward_hooks) == 0 and probe.dtype_name is None
    probe.check("bf16")  # nothing ran: nothing to contradict
