"""Execution modes (MODEL.CHANNELS_LAST, MODEL.COMPILE) give the eager model's detections."""

import pytest
import torch

from rcnn.config import load_config
from rcnn.device import resolve
from rcnn.engine.run import Session
from rcnn.modeling.detector import build_detection_model
from rcnn.structures.image_list import to_image_list

QUICK = "models/configs/quick/faster_rcnn_R_18_FPN_quick.yaml"


def _detections(
    overrides: list[str], images, compile_backend: str = "inductor"
) -> tuple[list[torch.Tensor], list]:
    torch.manual_seed(0)
    model = build_detection_model(load_config(QUICK, overrides), compile_backend).eval()
    with torch.no_grad():
        features = model.backbone(images.tensors)
        return features, model(images)


def _assert_same(eager, other) -> None:
    (want_features, want), (got_features, got) = eager, other
    for w, g in zip(want_features, got_features, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)
    assert sum(len(b) for b in want) > 0
    for w, g in zip(want, got, strict=True):
        assert g.get_field("labels").tolist() == w.get_field("labels").tolist()
        torch.testing.assert_close(g.bbox, w.bbox, rtol=1e-4, atol=1e-2)
        torch.testing.assert_close(g.get_field("scores"), w.get_field("scores"), atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def images():
    """Two noisy 120x150 images with one bright rectangle each, padded to 128x160."""
    gen = torch.Generator().manual_seed(1)
    batch = []
    for _ in range(2):
        image = torch.randn(3, 120, 150, generator=gen) * 20
        image[:, 20:70, 30:110] += 80
        batch.append(image)
    return to_image_list(batch, size_divisible=32)


def test_channels_last_backbone_gives_eager_detections(images):
    eager = _detections([], images)
    model_cl = build_detection_model(load_config(QUICK, ["MODEL.CHANNELS_LAST", "True"]))
    body_weight = model_cl.backbone.body.stem.conv1.weight
    assert body_weight.is_contiguous(memory_format=torch.channels_last)
    _assert_same(eager, _detections(["MODEL.CHANNELS_LAST", "True"], images))


def test_compiled_backbone_gives_eager_detections(images):
    supported, reason = resolve("cpu")[0].supports_compile()
    if not supported:
        pytest.skip(f"torch.compile on cpu: {reason}")
    assert reason == "inductor"
    eager = _detections([], images)
    # aot_eager traces and partitions the graph as inductor does but skips its C++ codegen,
    # which takes minutes on a busy host (inductor passed this check too: README, test-suite table).
    compiled = _detections(["MODEL.COMPILE", "True"], images, "aot_eager")
    _assert_same(eager, compiled)
    state = build_detection_model(load_config(QUICK, ["MODEL.COMPILE", "True"])).state_dict()
    assert "backbone.body.stem.conv1.weight" in state  # in-place compile keeps the names


def _compiled_dynamic(monkeypatch, overrides: list[str], adapter_shapes: str) -> bool:
    """The `dynamic` the builder compiles the backbone with (nn.Module.compile recorded)."""
    calls = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda module, **kw: calls.append(kw))
    cfg = load_config(QUICK, ["MODEL.COMPILE", "True", *overrides])
    build_detection_model(cfg, "eager", adapter_shapes)
    (kwargs,) = calls
    assert kwargs["backend"] == "eager"
    return kwargs["dynamic"]


def test_compile_shapes_come_from_the_adapter_unless_the_config_says(monkeypatch):
    adapter = resolve("cpu")[0]
    supported, reason = adapter.supports_compile()
    if not supported:
        pytest.skip(f"torch.compile on cpu: {reason}")
    assert adapter.compile_shapes in ("static", "dynamic")
    assert _compiled_dynamic(monkeypatch, [], "static") is False  # one graph per bucket
    assert _compiled_dynamic(monkeypatch, [], "dynamic") is True
    assert _compiled_dynamic(monkeypatch, ["MODEL.COMPILE_SHAPES", "static"], "dynamic") is False
    assert _compiled_dynamic(monkeypatch, ["MODEL.COMPILE_SHAPES", "dynamic"], "static") is True
    session = Session(load_config(QUICK, ["MODEL.COMPILE", "True"]), adapter, 0, "fp32", False)
    assert session.compile_shapes == adapter.compile_shapes
    session.cfg = load_config(QUICK, ["MODEL.COMPILE", "True", "MODEL.COMPILE_SHAPES", "dynamic"])
    assert session.compile_shapes == "dynamic"
    session.cfg = load_config(QUICK, ["MODEL.COMPILE_SHAPES", "dynamic"])
    assert session.compile_shapes is None  # eager
