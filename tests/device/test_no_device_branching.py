"""Only rcnn/device/ may ask which backend it runs on."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PATTERNS = [
    re.compile(r"\.type\s*[!=]=\s*['\"]"),  # device.type == "cuda"
    re.compile(
        r"torch\.(cuda|mlu|npu|xpu|mps)\.(is_available|synchronize|set_device|"
        r"max_memory|reset_peak|manual_seed|device_count)"
    ),
    re.compile(r"import torch_(mlu|npu)"),
]


def test_device_specific_code_lives_in_rcnn_device_only():
    offenders = []
    for path in [*ROOT.glob("models/**/*.py"), *ROOT.glob("benchmark/**/*.py")]:
        if "rcnn/device" in path.as_posix():
            continue
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if any(p.search(line) for p in PATTERNS):
                offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert offenders == []
