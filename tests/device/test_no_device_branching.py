"""Only models/rcnn/device/ may ask which backend it runs on: an AST walk over models/ and
benchmark/ finds every way code outside it could branch on, or reach for, a device backend."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("models", "benchmark")
EXEMPT = "models/rcnn/device/"  # the one room that knows backends
BACKENDS = frozenset({"cuda", "mlu", "npu", "xpu", "mps", "hpu", "musa"})
TORCH_BACKEND_MODULES = BACKENDS | {"cudnn", "mkldnn"}  # torch.backends.cudnn and friends
VENDOR_MODULES = frozenset(
    {"torch_mlu", "torch_npu", "torch_musa", "intel_extension_for_pytorch", "habana_frameworks"}
)
IMPORTERS = frozenset({"import_module", "__import__", "find_spec"})


def _is_backend_text(node: ast.AST) -> bool:
    """ "cuda", "cuda:1", "cpu" or a tuple/list/set holding one."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.partition(":")[0] in BACKENDS | {"cpu"}
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_is_backend_text(e) for e in node.elts)
    return False


def _is_vendor_module(node: ast.AST) -> bool:
    """A literal naming a vendor plug-in module, or an f-string built on 'torch_'."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.split(".")[0] in VENDOR_MODULES
    if isinstance(node, ast.JoinedStr) and node.values:
        head = node.values[0]
        return isinstance(head, ast.Constant) and str(head.value).startswith("torch_")
    return False


def _torch_chain(node: ast.Attribute) -> list[str]:
    """['torch', 'cuda', 'synchronize'] for torch.cuda.synchronize; [] when not rooted at torch."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id == "torch":
        return ["torch", *reversed(names)]
    return []


def offences(source: str) -> list[tuple[int, str]]:
    """(line, idiom) for every device-branching idiom in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        why = None
        if isinstance(node, ast.Attribute):
            chain = _torch_chain(node)
            if len(chain) >= 2 and chain[1] in BACKENDS:
                why = f"torch.{chain[1]}"
            elif len(chain) >= 3 and chain[1] == "backends" and chain[2] in TORCH_BACKEND_MODULES:
                why = f"torch.backends.{chain[2]}"
            elif node.attr.startswith("is_") and node.attr[3:] in BACKENDS:
                why = f".{node.attr}"
            elif node.attr in BACKENDS and not chain:
                why = f".{node.attr}"  # x.cuda(), model.npu
        elif isinstance(node, ast.Compare):
            if any(_is_backend_text(n) for n in (node.left, *node.comparators)):
                why = "compares with a backend name"
        elif isinstance(node, ast.Match):
            patterns = [c.pattern for c in node.cases]
            if any(isinstance(p, ast.MatchValue) and _is_backend_text(p.value) for p in patterns):
                why = "matches a backend name"
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in IMPORTERS and node.args and _is_vendor_module(node.args[0]):
                why = f"{name} of a vendor module"
            elif name in ("startswith", "endswith") and any(map(_is_backend_text, node.args)):
                why = f"{name} a backend name"
            elif (
                name in ("getattr", "hasattr")
                and len(node.args) >= 2
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id == "torch"
                and _is_backend_text(node.args[1])
            ):
                why = f"{name}(torch, backend)"
        elif isinstance(node, ast.Import):
            if any(a.name.split(".")[0] in VENDOR_MODULES for a in node.names):
                why = "imports a vendor module"
        elif isinstance(node, ast.ImportFrom):
            module = (node.module or "").split(".")
            if module[0] in VENDOR_MODULES or module[:2] in (["torch", b] for b in BACKENDS):
                why = "imports a vendor module"
        if why is not None:
            found.append((node.lineno, why))
    return sorted(set(found))


def scanned_files() -> tuple[list[Path], list[Path]]:
    """(files checked, files exempt) among every .py under models/ and benchmark/."""
    checked, exempt = [], []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            (exempt if rel.startswith(EXEMPT) else checked).append(path)
    return checked, exempt


def test_device_specific_code_lives_in_rcnn_device_only():
    checked, _ = scanned_files()
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {why}"
        for path in checked
        for line, why in offences(path.read_text())
    ]
    assert offenders == []


def test_rcnn_device_is_the_only_exempt_room_and_would_be_caught():
    checked, exempt = scanned_files()
    assert len(checked) > 50 and exempt  # both sides are real trees
    assert {p.relative_to(ROOT).as_posix().rsplit("/", 1)[0] for p in exempt} == {EXEMPT[:-1]}
    # the adapters do branch: without the exemption the check would flag them
    assert sum(len(offences(p.read_text())) for p in exempt) > 10


CAUGHT = [
    'if device.type == "cuda":\n    pass',
    'if device.type != "cpu":\n    pass',
    'if device.type in ("cuda", "mlu"):\n    pass',
    'use = "npu" in str(device)',
    'same = "cuda:0" == name',
    'ok = device.type not in ["xpu", "mps"]',
    'match device.type:\n    case "cuda":\n        pass',
    'fast = str(device).startswith("cuda")',
    "torch.cuda.synchronize()",
    "torch.cuda.empty_cache()",
    "n = torch.cuda.device_count()",
    "mem = torch.mlu.max_memory_allocated()",
    "torch.npu.set_device(0)",
    "torch.backends.cudnn.benchmark = True",
    "torch.backends.cuda.matmul.allow_tf32 = True",
    "on = torch.backends.mps.is_available()",
    "flag = x.is_cuda",
    "flag = x.is_mlu",
    "y = x.cuda()",
    "model.npu()",
    "m = getattr(torch, 'mlu')",
    "has = hasattr(torch, 'npu')",
    "import torch_mlu",
    "import torch_npu.contrib",
    "from torch_npu.contrib import transfer_to_npu",
    "from torch.cuda import amp",
    "import importlib\nimportlib.import_module('torch_mlu')",
    "from importlib import import_module\nimport_module('torch_npu')",
    "__import__('torch_mlu')",
    "import importlib.util\nimportlib.util.find_spec('torch_npu')",
    "import importlib\nimportlib.import_module(f'torch_{name}')",
]


@pytest.mark.parametrize("snippet", CAUGHT)
def test_each_idiom_is_caught(snippet):
    assert offences(snippet), snippet


CLEAN = [
    "x = x.cpu()",
    "adapter.synchronize(index)",
    "device = adapter.torch_device(index)",
    "with adapter.autocast(precision):\n    pass",
    "if device.type == adapter.name:\n    pass",  # compares with the adapter's own answer
    "y = x.to(device, non_blocking=True)",
    "n = torch.get_num_threads()",
    "import importlib\nimportlib.import_module('rcnn.commands.train')",
    'help = "auto, cpu, cuda, cuda:1, mlu, npu"',
]


@pytest.mark.parametrize("snippet", CLEAN)
def test_device_neutral_code_passes(snippet):
    assert offences(snippet) == []


# -- torch features are asked of the device layer and the shim module only ------------------

SHIM = "models/rcnn/compat.py"


def _torch_names(tree: ast.AST) -> set[str]:
    """Local names bound to torch or a part of it (import torch.distributed as dist, ...)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "torch":
                    names.add(a.asname or "torch")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
            names.update(a.asname or a.name for a in node.names)
    return names


def _rooted(node: ast.AST, names: set[str]) -> bool:
    while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return isinstance(node, ast.Name) and node.id in names


def feature_tests(source: str) -> list[tuple[int, str]]:
    """(line, idiom) for every test of what the installed torch has or which release it is."""
    tree = ast.parse(source)
    names = _torch_names(tree)
    found = []
    for node in ast.walk(tree):
        why = None
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            torch_arg = bool(node.args) and _rooted(node.args[0], names)
            if name == "hasattr" and torch_arg:
                why = "hasattr on torch"
            elif name == "getattr" and len(node.args) == 3 and torch_arg:
                why = "getattr on torch with a default"
            elif name == "signature" and torch_arg:
                why = "inspect.signature of a torch function"
            elif name == "torch_version":
                why = "asks the torch release"
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(
                isinstance(n, ast.Attribute) and n.attr == "__version__" and _rooted(n, names)
                for side in sides
                for n in ast.walk(side)
            ):
                why = "compares torch.__version__"
        if why is not None:
            found.append((node.lineno, why))
    return sorted(set(found))


def test_only_the_device_layer_and_the_shim_test_torch_features():
    checked, _ = scanned_files()
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {why}"
        for path in checked
        if path.relative_to(ROOT).as_posix() != SHIM
        for line, why in feature_tests(path.read_text())
    ]
    assert offenders == []
    assert feature_tests((ROOT / SHIM).read_text())  # the shim does: the check would see it


FEATURE_TESTS = [
    "import torch\nok = hasattr(torch, 'accelerator')",
    "import torch\nf = getattr(torch.amp, 'is_autocast_available', None)",
    "import torch.distributed as dist\nc = getattr(dist.Backend, 'backend_capability', {})",
    "from torch import nn\nok = hasattr(nn.Module, 'compile')",
    "import inspect\nimport torch.distributed as dist\n"
    "s = inspect.signature(dist.init_process_group)",
    "import torch\nnew = torch.__version__ >= '2.6'",
    "from rcnn.compat import torch_version\nnew = torch_version() >= (2, 6)",
]


@pytest.mark.parametrize("snippet", FEATURE_TESTS)
def test_each_feature_test_is_caught(snippet):
    assert feature_tests(snippet), snippet


@pytest.mark.parametrize(
    "snippet",
    [
        "import torch\nversion = torch.__version__",  # reported, not tested
        "import torch\nf = getattr(torch.nn.functional, name)",  # a lookup without a default
        "ok = hasattr(model, 'compile')",
    ],
)
def test_reading_torch_is_not_a_feature_test(snippet):
    assert feature_tests(snippet) == []
