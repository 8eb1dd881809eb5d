"""maskrcnn-benchmark and torchvision .pth files: formats, strict matching, damaged files."""

import pytest
import torch
from ckpt_models import BasicBlock, tiny_detector
from torchvision.models.resnet import BasicBlock as TorchvisionBasicBlock
from torchvision.models.resnet import ResNet

from rcnn.checkpoint import (
    CheckpointError,
    load_state_dict_into,
    load_weights,
    read_weights,
)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return tiny_detector()


def fresh():
    torch.manual_seed(123)
    return tiny_detector()


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("layout", ["model", "bare", "module_prefix", "model_module_prefix"])
def test_maskrcnn_benchmark_layouts(tmp_path, model, layout):
    state = model.state_dict()
    prefixed = {f"module.{k}": v for k, v in state.items()}
    saved = {
        "model": {"model": state, "optimizer": {}, "iteration": 90000},
        "bare": state,
        "module_prefix": prefixed,
        "model_module_prefix": {"model": prefixed},
    }[layout]
    path = tmp_path / "model_final.pth"
    torch.save(saved, path)
    target = fresh()
    report = load_weights(str(path), target)
    assert report.ok and len(report.loaded) == len(state)
    assert_same_weights(target, model)


def test_strict_mismatch_lists_missing_unexpected_and_shapes(tmp_path, model):
    state = model.state_dict()
    del state["rpn.head.conv.weight"]
    state["roi_heads.box.predictor.bbox_pred.weight"] = torch.zeros(16, 8)
    state["roi_heads.box.predictor.cls_score.weight"] = torch.zeros(81, 8)
    path = tmp_path / "other.pth"
    torch.save({"model": state}, path)
    target = fresh()
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_weights(str(path), target)
    message = str(info.value)
    assert message.startswith(f"{path}: checkpoint does not match the model:")
    assert "1 missing, 1 unexpected, 1 with a different shape" in message
    assert "missing from the checkpoint (1): rpn.head.conv.weight" in message
    assert "unexpected in the checkpoint (1): roi_heads.box.predictor.bbox_pred.weight" in message
    assert "roi_heads.box.predictor.cls_score.weight (checkpoint [81, 8], model [4, 8])" in message
    # strict failure copies nothing
    for key, value in target.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_non_strict_loads_what_matches_and_reports_the_rest(tmp_path, model):
    state = model.state_dict()
    state["roi_heads.box.predictor.cls_score.weight"] = torch.zeros(81, 8)
    path = tmp_path / "coco.pth"
    torch.save({"model": state}, path)
    target = fresh()
    kept = target.roi_heads.box.predictor.cls_score.weight.clone()
    report = load_weights(str(path), target, strict=False)
    assert not report.ok
    assert [k for k, _, _ in report.mismatched] == ["roi_heads.box.predictor.cls_score.weight"]
    assert torch.equal(target.roi_heads.box.predictor.cls_score.weight, kept)
    assert torch.equal(
        target.backbone.body.layer2[1].conv2.weight, model.backbone.body.layer2[1].conv2.weight
    )


def test_long_lists_are_cut_with_a_count(model):
    state = {f"extra.{i}": torch.zeros(1) for i in range(25)}
    state.update(model.state_dict())
    with pytest.raises(CheckpointError) as info:
        load_state_dict_into(fresh(), state, source="x.pth")
    message = str(info.value)
    assert "unexpected in the checkpoint (25): extra.0, extra.1" in message
    assert "... and 15 more" in message


def test_load_into_a_state_dict(model):
    target = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    report = load_state_dict_into(target, model.state_dict())
    assert report.ok
    for key, value in model.state_dict().items():
        assert torch.equal(target[key], value)


def torchvision_sized_body():
    """Our names with torchvision ResNet(BasicBlock, [1, 1, 1, 1]) shapes."""
    return tiny_detector(
        block=BasicBlock, blocks=(1, 1, 1, 1), widths=(64, 128, 256, 512), stem=64, expansion=1
    )


def test_torchvision_resnet_into_backbone_body(tmp_path):
    torch.manual_seed(3)
    resnet = ResNet(TorchvisionBasicBlock, [1, 1, 1, 1], num_classes=10)
    # give BN real statistics so that the buffers are checked, not just their defaults
    resnet.train()
    resnet(torch.randn(2, 3, 64, 64))
    tv_state = resnet.state_dict()
    path = tmp_path / "resnet18.pth"
    torch.save(tv_state, path)

    weights = read_weights(path)
    assert weights.kind == "torchvision"
    assert sorted(weights.dropped) == sorted(
        k for k in tv_state if k.startswith("fc.") or k.endswith("num_batches_tracked")
    )
    target = torchvision_sized_body()
    report = load_weights(str(path), target)
    assert report.ok
    got = target.state_dict()
    body = "backbone.body."
    assert torch.equal(got[body + "stem.conv1.weight"], tv_state["conv1.weight"])
    for name in ("weight", "bias", "running_mean"):
        assert torch.equal(got[f"{body}stem.bn1.{name}"], tv_state[f"bn1.{name}"])
    for key, value in tv_state.items():
        if not key.startswith("layer") or key.endswith("num_batches_tracked"):
            continue
        # torchvision's eps 1e-5 moves into running_var for a frozen BN without eps
        expected = value + 1e-5 if key.endswith("running_var") else value
        assert torch.equal(got[body + key], expected), key


def test_torchvision_bn_computes_the_same_affine_map(tmp_path):
    torch.manual_seed(4)
    resnet = ResNet(TorchvisionBasicBlock, [1, 1, 1, 1], num_classes=10)
    resnet.train()
    resnet(torch.randn(2, 3, 64, 64))
    resnet.eval()
    path = tmp_path / "resnet18.pth"
    torch.save(resnet.state_dict(), path)
    x = torch.randn(2, 64, 5, 5)
    reference = resnet.bn1(x)
    for eps in (0.0, 1e-5):
        target = torchvision_sized_body()
        load_weights(str(path), target, bn_eps=eps)
        bn = target.backbone.body.stem.bn1
        scale = bn.weight / torch.sqrt(bn.running_var + eps)
        ours = x * scale[:, None, None] + (bn.bias - bn.running_mean * scale)[:, None, None]
        torch.testing.assert_close(ours, reference, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------- damaged or foreign files


def test_text_file(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("these are not weights\n")
    with pytest.raises(CheckpointError, match=f"^{path}: not a torch checkpoint"):
        read_weights(path)


def test_truncated_file(tmp_path, model):
    whole = tmp_path / "whole.pth"
    torch.save({"model": model.state_dict()}, whole)
    data = whole.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=f"^{cut}: not a readable torch checkpoint"):
        read_weights(cut)


def test_a_tensor_instead_of_a_dict(tmp_path):
    path = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError, match=f"^{path}: expected a state dict .* got Tensor"):
        read_weights(path)


def test_a_dict_that_is_not_a_state_dict(tmp_path):
    path = tmp_path / "meta.pth"
    torch.save({"epoch": 3, "arch": "resnet"}, path)
    with pytest.raises(CheckpointError, match=f"^{path}: not a state dict: entry 'epoch'"):
        read_weights(path)


class NotWeights:
    def __init__(self):
        self.payload = 1


def test_pickled_object_is_refused_by_weights_only(tmp_path):
    path = tmp_path / "obj.pth"
    torch.save({"model": {}, "hook": NotWeights()}, path)
    with pytest.raises(CheckpointError) as info:
        read_weights(path)
    message = str(info.value)
    assert message.startswith(f"{path}: refused to load")
    assert "NotWeights" in message


def test_missing_file(tmp_path):
    path = tmp_path / "absent.pth"
    with pytest.raises(CheckpointError, match=f"^{path}: checkpoint file not found"):
        read_weights(path)
