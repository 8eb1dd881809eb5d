"""The strict test device itself: it must fail where a real card fails, and keep its own state.

Each process pays torch's import, so one process answers many questions (module fixtures).
"""

import pytest
from strict import run_python

pytestmark = pytest.mark.strictdev

AUTOCAST_CONV = """
def autocast_conv():
    x = torch.rand(1, 3, 8, 8, device="strict")
    w = torch.rand(4, 3, 3, 3, device="strict")
    try:
        with torch.autocast("strict", dtype=torch.bfloat16):
            return str(torch.nn.functional.conv2d(x, w).dtype)
    except NotImplementedError:
        return "NotImplementedError"
"""


@pytest.fixture(scope="module")
def default_device() -> dict:
    """Three cards, every capability, autocast over conv/linear/matmul."""
    return run_python(
        AUTOCAST_CONV,
        """
        import torchvision
        from strictdev.device import STATE
        mod, out = torch.strict, {}

        x = torch.arange(6.0).reshape(2, 3).to("strict")
        out["mix_errors"] = []
        for other in (torch.ones(3), torch.ones(2, 3, device="strict:1")):
            try:
                x + other
            except RuntimeError as err:
                out["mix_errors"].append(str(err))
        y = x * torch.tensor(2.0)  # a 0-dim host scalar is fine, as on CUDA
        out["scalar"] = [y.cpu().tolist(), str(y.device)]

        z = torch.rand(4, 4, device="strict")
        out["no_kernel"] = []
        for name, op in [
            ("repeat", lambda: z.repeat(2, 1)),
            ("unfold", lambda: z.unfold(0, 2, 1)),
            ("nms", lambda: torchvision.ops.nms(z, z[:, 0], 0.5)),
        ]:
            try:
                op()
            except NotImplementedError:
                out["no_kernel"].append(name)

        torch.manual_seed(7)  # seeds the host and, through manual_seed_all, every card
        host = torch.rand(3).tolist()
        torch.manual_seed(7)
        state = mod.get_rng_state(1)
        a = torch.rand(3, device="strict:1").cpu().tolist()
        host_after_card = torch.rand(3).tolist()
        mod.set_rng_state(state, 1)
        b = torch.rand(3, device="strict:1").cpu().tolist()
        torch.manual_seed(7)
        mod.set_device(1)
        c = torch.rand(3, device="strict").cpu().tolist()
        out["rng"] = {"host": host, "host_after_card": host_after_card, "a": a, "b": b, "c": c}
        out["default_device"] = str(torch.empty(1, device="strict").device)
        mod.set_device(0)
        syncs = mod.counters()["synchronize"]
        mod.synchronize()
        mod.synchronize(2)
        out["cards"] = [mod.device_count(), mod.counters()["synchronize"] - syncs]

        base = mod.memory_allocated(0)
        big = torch.empty(1024, 256, device="strict")  # 1 MiB
        view = big[:10]
        grew = mod.memory_allocated(0) - base
        del big, view
        mod.reset_peak_memory_stats(0)
        after, peak = mod.memory_allocated(0) - base, mod.max_memory_allocated(0) - base
        out["memory"] = [grew, after, peak]

        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
                                    torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2))
        inputs = torch.rand(2, 3, 8, 8)
        model(inputs).sum().backward()
        cpu_grads = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        card = model.to("strict")
        card(inputs.to("strict")).sum().backward()
        grads = zip(card.parameters(), cpu_grads)
        diffs = [(p.grad.cpu() - g).abs().max().item() for p, g in grads]
        out["grad"] = [max(diffs), str(card[0].weight.grad.device)]
        out["autocast"] = autocast_conv()
        print(json.dumps(out))
        """,
        cards="3",
    )


def test_a_host_tensor_mixed_into_a_card_op_raises_but_a_scalar_does_not(default_device):
    errors = default_device["mix_errors"]
    assert len(errors) == 2
    assert "strict:0" in errors[0] and "cpu" in errors[0]
    assert "strict:1" in errors[1]
    assert default_device["scalar"] == [[[0.0, 2.0, 4.0], [6.0, 8.0, 10.0]], "strict:0"]


def test_ops_without_a_kernel_raise(default_device):
    assert default_device["no_kernel"] == ["repeat", "unfold", "nms"]


def test_rng_state_is_per_card_and_apart_from_the_host(default_device):
    rng = default_device["rng"]
    assert rng["a"] == rng["b"] == rng["c"]  # restored state replays; the seed reaches each card
    assert rng["host_after_card"] == rng["host"]  # a card draw leaves the host generator alone
    assert default_device["default_device"] == "strict:1"  # set_device picks the default card


def test_device_count_and_synchronize(default_device):
    assert default_device["cards"] == [3, 2]


def test_memory_statistics_count_live_card_tensors(default_device):
    assert default_device["memory"] == [2**20, 0, 0]  # a view shares its base's storage


def test_training_step_gradients_match_the_cpu(default_device):
    diff, device = default_device["grad"]
    assert device == "strict:0"
    assert diff < 1e-6


def test_autocast_casts_convolutions_by_default(default_device):
    assert default_device["autocast"] == "torch.bfloat16"


def test_flags_hide_optional_capabilities_and_empty_autocast():
    out = run_python(
        AUTOCAST_CONV,
        """
        names = ["get_device_name", "get_device_properties", "max_memory_allocated",
                 "reset_peak_memory_stats", "is_bf16_supported", "get_rng_state"]
        print(json.dumps({"present": [n for n in names if hasattr(torch.strict, n)],
                          "autocast": autocast_conv()}))
        """,
        hide="name,properties,memory,bf16,rng",
        autocast="none",
    )
    assert out == {"present": [], "autocast": "torch.float32"}  # autocast that covers no op


def test_autocast_off_raises_under_autocast():
    assert run_python(AUTOCAST_CONV, "print(json.dumps(autocast_conv()))", autocast="off") == (
        "NotImplementedError"
    )
