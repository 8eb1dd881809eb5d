"""Native NMS against torchvision's kernel: the same indices in the same order."""

import importlib

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st

from rcnn.layers import batched_nms, batched_nms_top_k, native, nms

# The package re-exports the function under the module's name; fetch the module itself.
native_nms_module = importlib.import_module("rcnn.layers.native.nms")


def random_boxes(seed: int, n: int, quantum: float, zero_area: float) -> torch.Tensor:
    """Boxes in a 100x100 image spilling past its border; coordinates are multiples of quantum.

    Coarse quanta make touching boxes, exact-threshold IoUs and duplicate boxes common.
    """
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=gen) * 120 - 10
    wh = torch.rand(n, 2, generator=gen) * 60
    wh[torch.rand(n, generator=gen) < zero_area] = 0
    boxes = torch.cat((xy, xy + wh), dim=1)
    return torch.round(boxes / quantum) * quantum if quantum else boxes


def random_scores(seed: int, n: int, levels: int) -> torch.Tensor:
    """Scores; with `levels` > 0 only that many distinct values, so ties are everywhere."""
    gen = torch.Generator().manual_seed(seed + 1)
    scores = torch.rand(n, generator=gen)
    return torch.floor(scores * levels) / levels if levels else scores


box_cases = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**31 - 1),
        "n": st.integers(0, 300),
        "quantum": st.sampled_from([0.0, 0.25, 1.0, 5.0]),
        "zero_area": st.sampled_from([0.0, 0.2]),
        "levels": st.sampled_from([0, 3, 50]),
        "threshold": st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]) | st.floats(0.01, 0.99),
    }
)


@settings(max_examples=150, deadline=None)
@given(box_cases)
def test_native_nms_keeps_torchvision_indices_in_order(case):
    boxes = random_boxes(case["seed"], case["n"], case["quantum"], case["zero_area"])
    scores = random_scores(case["seed"], case["n"], case["levels"])
    got = native.nms(boxes, scores, case["threshold"])
    want = torchvision.ops.nms(boxes, scores, case["threshold"])
    assert got.dtype == torch.int64
    assert got.tolist() == want.tolist()


@pytest.mark.parametrize("block_elements", [1 << 22, 1 << 12])
def test_native_nms_on_rpn_sized_input_with_ties_across_blocks(monkeypatch, block_elements):
    # 1 << 12 elements makes 64-box blocks: suppression must carry across many block borders.
    monkeypatch.setattr(native_nms_module, "_BLOCK_ELEMENTS", block_elements)
    boxes = random_boxes(7, 3000, 1.0, 0.05) * 8
    scores = random_scores(7, 3000, 20)
    for threshold in (0.5, 0.7):
        want = torchvision.ops.nms(boxes, scores, threshold)
        assert native.nms(boxes, scores, threshold).tolist() == want.tolist()
        assert 100 < want.numel() < 3000


def test_native_nms_resolves_a_suppression_chain():
    # Each box suppresses only its right neighbour: greedy keeps every other box, which needs
    # the fixed-point iteration to run the whole chain length.
    x = torch.arange(200, dtype=torch.float32) * 2
    boxes = torch.stack((x, torch.zeros(200), x + 10, torch.full((200,), 10.0)), dim=1)
    scores = torch.linspace(1, 0, 200)
    keep = native.nms(boxes, scores, 0.55)
    assert keep.tolist() == torchvision.ops.nms(boxes, scores, 0.55).tolist()
    assert keep.tolist() == list(range(0, 200, 2))


def test_nms_ties_keep_input_order():
    boxes = torch.tensor([[0, 0, 10, 10], [50, 50, 60, 60], [1, 1, 11, 11], [0, 0, 10, 10.0]])
    scores = torch.tensor([0.5, 0.5, 0.9, 0.5])
    assert native.nms(boxes, scores, 0.5).tolist() == [2, 1]
    assert native.nms(boxes, scores, 0.9).tolist() == [2, 0, 1]
    assert torchvision.ops.nms(boxes, scores, 0.9).tolist() == [2, 0, 1]


def test_nms_of_no_boxes_is_empty_int64():
    keep = native.nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert keep.shape == (0,) and keep.dtype == torch.int64


@settings(max_examples=100, deadline=None)
@given(box_cases, st.integers(1, 6))
def test_native_batched_nms_matches_torchvision(case, categories):
    # Coordinates are multiples of 1/4: torchvision's kernel path shifts each category by an
    # offset, which is exact on such values, so its IoUs equal the native per-category ones.
    boxes = random_boxes(case["seed"], case["n"], case["quantum"] or 0.25, case["zero_area"])
    scores = random_scores(case["seed"], case["n"], case["levels"])
    idxs = torch.randint(0, categories, (case["n"],), generator=torch.Generator().manual_seed(3))
    got = native.batched_nms(boxes, scores, idxs, case["threshold"])
    want = torchvision.ops.batched_nms(boxes, scores, idxs, case["threshold"])
    assert got.tolist() == want.tolist()


@pytest.mark.parametrize("padded_elements", [0, 1 << 20])
def test_native_batched_nms_matches_torchvision_per_category_path(monkeypatch, padded_elements):
    # Over 1000 boxes torchvision runs nms per category, then sorts the kept boxes by score
    # without a stable sort: with distinct scores the order is fully determined. A zero budget
    # for the all-groups-at-once overlap tensor forces the blockwise path.
    monkeypatch.setattr(native_nms_module, "_PADDED_ELEMENTS", padded_elements)
    boxes = random_boxes(11, 2500, 0.0, 0.0) * 5
    scores = random_scores(11, 2500, 0)
    idxs = torch.randint(0, 8, (2500,), generator=torch.Generator().manual_seed(5))
    got = native.batched_nms(boxes, scores, idxs, 0.5)
    want = torchvision.ops.batched_nms(boxes, scores, idxs, 0.5)
    assert got.tolist() == want.tolist()
    assert 800 < got.numel() < 2500


def test_batched_nms_never_suppresses_across_categories():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert native.batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5).tolist() == [0, 1]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("mode", ["native", "kernel"])
def test_half_precision_boxes_are_compared_in_float32(ops_mode, mode, dtype):
    ops_mode(mode)
    boxes = random_boxes(5, 400, 0.0, 0.0).to(dtype)
    scores = random_scores(5, 400, 0).to(dtype)
    want = torchvision.ops.nms(boxes.float(), scores.float(), 0.5)
    assert nms(boxes, scores, 0.5).tolist() == want.tolist()
    idxs = torch.arange(400) % 3
    want = torchvision.ops.batched_nms(boxes.float(), scores.float(), idxs, 0.5)
    assert batched_nms(boxes, scores, idxs, 0.5).tolist() == want.tolist()


def test_nms_under_autocast_matches_float32(ops_mode):
    ops_mode("native")
    boxes = random_boxes(2, 200, 0.0, 0.0)
    scores = random_scores(2, 200, 0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        keep = nms(boxes, scores, 0.6)
    assert keep.tolist() == torchvision.ops.nms(boxes, scores, 0.6).tolist()


@settings(max_examples=300, deadline=None)
@given(st.floats(-2.0, 2.0) | st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0, 1e-40, -1e-40]))
def test_the_threshold_is_rounded_down_on_the_host_as_torch_rounds_it(threshold):
    """The largest float32 <= the threshold, from the float's bits (no tensor, no read)."""
    rounded = torch.tensor(threshold, dtype=torch.float32)
    if rounded.item() > threshold:
        rounded = torch.nextafter(rounded, torch.tensor(float("-inf")))
    assert native_nms_module._threshold_below(threshold, torch.float32) == rounded.item()
    assert native_nms_module._threshold_below(threshold, torch.float64) == threshold


@pytest.mark.parametrize("padded_elements", [0, 1 << 20])
def test_off_the_host_nms_tests_its_fixed_point_less_often_with_the_same_result(
    monkeypatch, padded_elements
):
    """On a card each test of the fixed point is a wait: it tests after 2, 4, 8 ... steps,
    and keeps exactly what testing after every step (the host's way) keeps."""
    monkeypatch.setattr(native_nms_module, "_PADDED_ELEMENTS", padded_elements)
    boxes = random_boxes(7, 600, 1.0, 0.0) * 2
    scores = random_scores(7, 600, 0)
    idxs = torch.randint(0, 4, (600,), generator=torch.Generator().manual_seed(2))
    equal, tests = torch.equal, []

    def counted(a, b):
        tests.append(1)
        return equal(a, b)

    monkeypatch.setattr(torch, "equal", counted)
    on_host = native.batched_nms(boxes, scores, idxs, 0.3)
    host_tests = len(tests)
    monkeypatch.setattr(native_nms_module, "on_host", lambda device: False)
    tests.clear()
    on_card = native.batched_nms(boxes, scores, idxs, 0.3)
    assert on_card.tolist() == on_host.tolist()
    want = torchvision.ops.batched_nms(boxes, scores, idxs, 0.3)
    assert on_card.tolist() == want.tolist()
    assert 0 < len(tests) < host_tests, (len(tests), host_tests)


def test_kernel_batched_nms_of_many_categories_runs_one_nms_per_sorted_slice(ops_mode):
    """Over 1000 boxes on the host, the kernel path keeps torchvision's boxes in its score
    order (equal scores in input order) without a full-length scan per category."""
    ops_mode("kernel")
    n, categories = 4000, 80
    boxes = random_boxes(7, n, 0.0, 0.0) * 5
    scores = random_scores(7, n, 200)  # ties everywhere
    idxs = torch.randint(0, categories, (n,), generator=torch.Generator().manual_seed(9)) * 3 - 7
    batched_nms(boxes, scores, idxs, 0.5)  # the kernel's preflight runs outside the profile
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        got = batched_nms(boxes, scores, idxs, 0.5)
    want = torchvision.ops.batched_nms(boxes, scores, idxs, 0.5)
    assert sorted(got.tolist()) == sorted(want.tolist()) and 1000 < got.numel() < n
    assert torch.equal(scores[got], scores[want])
    tied = scores[got][1:] == scores[got][:-1]
    assert bool((got[1:][tied] > got[:-1][tied]).all())
    calls = {e.key: e.count for e in prof.key_averages()}
    assert calls["torchvision::nms"] == categories
    assert calls["aten::nonzero"] == 1  # torchvision's loop scans once per category


def top_k_with_ties(keep: torch.Tensor, scores: torch.Tensor, images: torch.Tensor, k: int):
    """Per image, its kept boxes scoring at least its k-th kept box (all when fewer than k)."""
    chosen = []
    for image in images.unique().tolist():
        kept = keep[images[keep] == image]
        if kept.numel() >= k:
            kept = kept[scores[kept] >= scores[kept][k - 1]]
        chosen.append(kept.tolist())
    return chosen


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    images=st.integers(1, 3),
    per_image=st.integers(1, 1500),
    categories=st.integers(1, 12),
    k=st.integers(1, 40),
    levels=st.sampled_from([0, 4, 50]),
    duplicates=st.booleans(),
)
def test_top_k_nms_keeps_the_full_runs_top_k_of_each_image(
    seed, images, per_image, categories, k, levels, duplicates
):
    """The host's prefix NMS gives each image's k best kept boxes (ties at the k-th kept)
    exactly as batched_nms over every box does, in its order, and keeps only boxes it keeps."""
    n = images * per_image
    boxes = random_boxes(seed, n, 1.0, 0.0)
    if duplicates:  # few survivors per prefix: the prefix has to grow
        boxes = boxes[torch.arange(n) % 7]
    scores = random_scores(seed, n, levels)
    image = torch.arange(images).repeat_interleave(per_image)
    gen = torch.Generator().manual_seed(seed + 2)
    idxs = image * categories + torch.randint(0, categories, (n,), generator=gen)
    full = batched_nms(boxes, scores, idxs, 0.5)
    top = batched_nms_top_k(boxes, scores, idxs, 0.5, image, images, k)
    assert top_k_with_ties(top, scores, image, k) == top_k_with_ties(full, scores, image, k)
    assert set(top.tolist()) <= set(full.tolist())
    position = {box: i for i, box in enumerate(full.tolist())}
    assert [position[box] for box in top.tolist()] == sorted(position[b] for b in top.tolist())


def test_top_k_nms_grows_its_prefix_past_a_tie_at_its_edge():
    """k=1: the prefix's 8 boxes keep one (the rest are its duplicates), and the first box
    left out ties with it in another category: it is among the top 1, so the prefix grows."""
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 8 + [[50.0, 50.0, 60.0, 60.0]] * 2)
    scores = torch.tensor([0.5] * 9 + [0.25])
    idxs = torch.tensor([0] * 8 + [1, 1])
    image = torch.zeros(10, dtype=torch.int64)
    top = batched_nms_top_k(boxes, scores, idxs, 0.5, image, 1, 1)
    assert top.tolist() == [0, 8]


def test_top_k_nms_runs_nms_on_each_images_best_boxes(monkeypatch):
    """80 categories x 1000 boxes per image, 100 wanted: NMS sees each image's 800 best."""
    nms_module = importlib.import_module("rcnn.layers.nms")
    sizes = []
    full_run = nms_module.batched_nms

    def counted(boxes, *args):
        sizes.append(boxes.shape[0])
        return full_run(boxes, *args)

    monkeypatch.setattr(nms_module, "batched_nms", counted)
    per_image, images = 80_000, 2
    boxes = random_boxes(3, per_image * images, 0.0, 0.0) * 5
    scores = random_scores(3, per_image * images, 0)
    image = torch.arange(images).repeat_interleave(per_image)
    idxs = image * 80 + torch.arange(per_image * images) % 80
    top = nms_module.batched_nms_top_k(boxes, scores, idxs, 0.5, image, images, 100)
    assert sizes == [1600]
    full = full_run(boxes, scores, idxs, 0.5)
    assert top_k_with_ties(top, scores, image, 100) == top_k_with_ties(full, scores, image, 100)
