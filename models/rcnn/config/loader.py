"""Read a config file (with ``_BASE_`` chains) and ``KEY VALUE`` overrides into a frozen CfgNode.

Every user error (unknown key, wrong type, bad YAML, missing file, odd override list, value
outside its choices) is one ``ConfigError`` whose message names the file and the key.

Beyond yacs' own merging, values are coerced where the intent is plain: a list for a tuple key
and back, an int for a float key, and a single number for a tuple key (old configs wrote
``MIN_SIZE_TRAIN: 800``). Keys renamed by maskrcnn-benchmark (``RENAMED_KEYS``) are accepted
under their old name.
"""

import ast
import difflib
import os
from collections.abc import Iterable
from typing import Any

import yaml
from yacs.config import CfgNode

from rcnn.config.checks import config_problem
from rcnn.config.defaults import _C, CHOICES, RENAMED_KEYS

BASE_KEY = "_BASE_"
OVERRIDES = "command line overrides"


class ConfigError(ValueError):
    """A config file or override the project cannot use; the message says where and why."""


def get_default_config() -> CfgNode:
    """A mutable copy of the defaults."""
    return _C.clone()


def load_config(path: str | os.PathLike | None, overrides: Iterable[str] = ()) -> CfgNode:
    """Defaults, then the file (after its ``_BASE_`` files), then ``KEY VALUE`` overrides; frozen.

    ``path`` may be None to start from the defaults alone.
    """
    cfg = get_default_config()
    origins: dict[str, str] = {}
    if path is not None:
        _merge_file(cfg, os.fspath(path), origins, chain=())
    _merge_overrides(cfg, list(overrides), origins)
    _finalize(cfg, origins)
    cfg.freeze()
    return cfg


def all_keys(node: CfgNode, prefix: str = "") -> list[str]:
    """Every leaf key of ``node`` as a dotted name."""
    keys = []
    for name, value in node.items():
        full = f"{prefix}{name}"
        if isinstance(value, CfgNode):
            keys.extend(all_keys(value, full + "."))
        else:
            keys.append(full)
    return keys


def _merge_file(cfg: CfgNode, path: str, origins: dict[str, str], chain: tuple[str, ...]) -> None:
    real = os.path.realpath(path)
    if real in chain:
        cycle = " -> ".join([*chain[chain.index(real) :], real])
        raise ConfigError(f"{path}: {BASE_KEY} cycle: {cycle}")
    data = _read_yaml(path)
    base = data.pop(BASE_KEY, None)
    if base is not None:
        if not isinstance(base, str) or not base:
            raise ConfigError(f"{path}: {BASE_KEY} must be a file name, got {base!r}")
        base_path = os.path.normpath(os.path.join(os.path.dirname(path), base))
        if not os.path.isfile(base_path):
            raise ConfigError(f"{path}: {BASE_KEY} {base!r} not found (looked for {base_path})")
        _merge_file(cfg, base_path, origins, (*chain, real))
    _merge_dict(cfg, data, path, origins, prefix="")


def _read_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: config file not found")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{path}: not valid YAML{at}: {problem}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config file: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def _merge_dict(
    cfg: CfgNode, data: dict, source: str, origins: dict[str, str], prefix: str
) -> None:
    for name, value in data.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            node = _lookup(cfg, key, source)
            if not isinstance(node, CfgNode):
                raise ConfigError(f"{source}: {key} is a value, not a section")
            _merge_dict(cfg, value, source, origins, prefix=key + ".")
        else:
            _set(cfg, key, value, source, origins)


def _merge_overrides(cfg: CfgNode, tokens: list[str], origins: dict[str, str]) -> None:
    if len(tokens) % 2:
        raise ConfigError(
            f"{OVERRIDES}: expected KEY VALUE pairs, got {len(tokens)} tokens; "
            f"key {tokens[-1]} has no value"
        )
    for key, value in zip(tokens[0::2], tokens[1::2], strict=True):
        _set(cfg, key, value, OVERRIDES, origins)


def _set(cfg: CfgNode, key: str, value: Any, source: str, origins: dict[str, str]) -> None:
    key = RENAMED_KEYS.get(key, key)
    default = _lookup(cfg, key, source)
    if isinstance(default, CfgNode):
        raise ConfigError(f"{source}: {key} is a section; set its keys one by one")
    decoded = _decode(value, default)
    coerced = _coerce(decoded, default)
    if coerced is None:
        raise ConfigError(
            f"{source}: {key} expects {type(default).__name__} (default {default!r}), "
            f"got {type(decoded).__name__} {decoded!r}"
        )
    *parents, leaf = key.split(".")
    node = cfg
    for part in parents:
        node = node[part]
    node[leaf] = coerced
    origins[key] = source


def _lookup(cfg: CfgNode, key: str, source: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, CfgNode) or part not in node:
            raise ConfigError(f"{source}: unknown key {key}{_suggest(cfg, key)}")
        node = node[part]
    return node


def _suggest(cfg: CfgNode, key: str) -> str:
    known = all_keys(cfg)
    # a misspelt leaf under the right section is the common case
    section, _, leaf = key.rpartition(".")
    siblings = {k.rpartition(".")[2]: k for k in known if k.rpartition(".")[0] == section}
    close = [siblings[m] for m in difflib.get_close_matches(leaf, list(siblings), n=1, cutoff=0.5)]
    close = close or difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _decode(value: Any, default: Any) -> Any:
    """YAML and the command line give strings for tuples ("(4, 8)"); read them as literals."""
    if not isinstance(value, str):
        return value
    try:
        decoded = ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value
    # a string key keeps the text as written ("0" stays "0"), minus quotes around it
    return value if isinstance(default, str) and not isinstance(decoded, str) else decoded


def _coerce(value: Any, default: Any) -> Any:
    """``value`` in the type of ``default``, or None when the types do not fit."""
    kind = type(default)
    if isinstance(default, bool) or isinstance(value, bool):
        return value if type(value) is type(default) else None
    if isinstance(value, kind):
        return value
    if isinstance(default, tuple | list):
        if isinstance(value, tuple | list):
            return kind(value)
        if isinstance(value, int | float):
            return kind((value,))
        # one dataset name for a tuple of names
        if isinstance(value, str) and all(isinstance(x, str) for x in default):
            return kind((value,))
        return None
    if isinstance(default, float) and isinstance(value, int):
        return float(value)
    return None


def _finalize(cfg: CfgNode, origins: dict[str, str]) -> None:
    # maskrcnn-benchmark configs ask for half precision through DTYPE
    if "MODEL.PRECISION" not in origins and cfg.DTYPE == "float16":
        cfg.MODEL.PRECISION = "fp16"
    for key, allowed in CHOICES.items():
        value = _lookup(cfg, key, "defaults")
        if value not in allowed:
            source = origins.get(key, "defaults")
            raise ConfigError(f"{source}: {key} must be one of {', '.join(allowed)}; got {value!r}")
    problem = config_problem(
        origins, lambda k: _lookup(cfg, k, "config"), lambda k: _lookup(_C, k, "defaults")
    )
    if problem:
        raise ConfigError(problem)
