"""The strict-device tier needs a torch that can host a Python-only device (torch._C._acc)."""

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if hasattr(torch._C, "_acc"):
        return
    skip = pytest.mark.skip(
        reason=f"torch {torch.__version__} has no torch._C._acc: no Python-only PrivateUse1 device"
    )
    for item in items:
        if item.get_closest_marker("strictdev"):
            item.add_marker(skip)
