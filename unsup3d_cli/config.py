"""The experiment configuration: composition of the per-layer settings and strict YAML I/O.

Each layer defines its own frozen settings dataclass next to its code; :class:`ExperimentConfig`
composes them, and the YAML file mirrors it section by section (``name``, ``data``,
``renderer``, ``model``, ``loss``, ``train``). Loading is strict and generic over any dataclass
tree: unknown keys, missing required keys and wrong types raise :class:`ConfigError` naming the
dotted key (``train.lr``). YAML lists become tuples, an int is accepted where a float is
expected (not the reverse), and a bool is never accepted as a number.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import os
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from unsup3d_cli.data import DataConfig
from unsup3d_cli.engine.trainer import TrainConfig
from unsup3d_cli.losses import LossConfig
from unsup3d_cli.model.unsup3d import ModelConfig
from unsup3d_cli.render.renderer import RendererConfig

_NONE_TYPE = type(None)
_OVERRIDE_WORDS: dict[str, Any] = {"null": None, "~": None, "true": True, "false": False}
_MAX_REPR = 80


class ConfigError(ValueError):
    """A configuration file, mapping or override is invalid (the message names the key/file)."""


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines a run; the YAML config file mirrors its sections."""

    name: str = "unsup3d"
    """Run name: outputs go to runs/<name>/<timestamp>/."""
    data: DataConfig = field(default_factory=DataConfig)
    """Dataset source, location and preprocessing."""
    renderer: RendererConfig = field(default_factory=RendererConfig)
    """Camera and rasterizer settings."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Network widths and output ranges."""
    loss: LossConfig = field(default_factory=LossConfig)
    """Weights of the training objective."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Optimisation, logging and checkpointing."""

    def __post_init__(self) -> None:
        """Reject run names that are not a single folder name."""
        if not self.name or self.name in (".", "..") or re.search(r"[/\\]", self.name):
            raise ValueError(
                f"name must be a folder name without path separators, got {self.name!r}"
            )


# --------------------------------------------------------------------------------------------
# YAML


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-4`` as a float and rejects duplicate keys."""


_YamlLoader.add_implicit_resolver(  # YAML 1.1 wants a dot in floats; accept 1e-4 like YAML 1.2
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    """Build a mapping, raising a YAML error on a repeated scalar key."""
    seen: set[str] = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value != "<<":
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                )
            seen.add(key_node.value)
    return loader.construct_mapping(node)


_YamlLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


class _YamlDumper(yaml.SafeDumper):
    """SafeDumper writing sections as blocks and lists inline (``betas: [0.9, 0.999]``)."""


_YamlDumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, True)
)


def _read_yaml(path: Path) -> Mapping[str, Any]:
    """Parse a YAML config file into a mapping (ConfigError naming the file otherwise)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        data = yaml.load(text, Loader=_YamlLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{path}: expected a mapping of sections (name, data, renderer, model, loss, train), "
            f"got {type(data).__name__}"
        )
    return data


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read a YAML config file strictly, then apply dotted overrides.

    Args:
        path: YAML file; missing sections and keys take the dataclass defaults.
        overrides: ``"section.key=value"`` strings, see :func:`apply_overrides`.

    Raises:
        ConfigError: if the file is missing or not YAML, or a key or value is invalid.
    """
    path = Path(path)
    data = _read_yaml(path)
    try:
        cfg = config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return apply_overrides(cfg, overrides)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Convert a config dataclass tree to plain YAML-safe types (tuples become lists)."""
    return _to_plain(cfg)


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_to_plain(item) for item in value]
    return value


LAUNCH_SECTION = "launch"
"""Top-level section that ``train`` adds to a run's ``config.yaml`` (world size, batch per
process, backend, device); it describes the run, not the experiment, and reading a config
skips it, so a run's ``config.yaml`` is itself a valid ``--config``."""


def dump_config(cfg: Any, path: str | Path, extra: Mapping[str, Any] | None = None) -> None:
    """Write a config as YAML atomically (temporary file in the same folder, then rename).

    Args:
        cfg: the config dataclass tree.
        path: the YAML file.
        extra: further top-level sections written after the config (e.g. :data:`LAUNCH_SECTION`).
    """
    path = Path(path)
    data = {**config_to_dict(cfg), **(extra or {})}
    text = yaml.dump(data, Dumper=_YamlDumper, sort_keys=False, allow_unicode=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# Strict conversion of plain data into dataclasses


def config_from_dict(data: Mapping[str, Any]) -> ExperimentConfig:
    """Build an :class:`ExperimentConfig` from nested plain data, strictly.

    Raises:
        ConfigError: on an unknown key (listing the valid ones), a wrong type (expected vs
            got) or a value a section rejects; the message names the dotted key.
    """
    data = {key: value for key, value in data.items() if key != LAUNCH_SECTION}
    return _build_dataclass(ExperimentConfig, data, "")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _describe(hint: Any) -> str:
    """Readable type name: 'float', 'int | None', 'tuple[float, float]'."""
    if hint is _NONE_TYPE:
        return "None"
    if type(hint) is type:
        return hint.__name__
    return repr(hint).replace("typing.", "")


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


def _type_error(key: str, hint: Any, value: Any) -> ConfigError:
    expected = _describe(hint)
    return ConfigError(
        f"{key}: expected {expected}, got {type(value).__name__} {_short_repr(value)}"
    )


def _unknown_key_error(prefix: str, name: Any, valid: Sequence[str]) -> ConfigError:
    where = f"of '{prefix}'" if prefix else "at the top level"
    close = difflib.get_close_matches(str(name), valid, n=1)
    hint = f" (did you mean '{_join(prefix, close[0])}'?)" if close else ""
    return ConfigError(
        f"unknown key '{_join(prefix, str(name))}'{hint}; valid keys {where}: {', '.join(valid)}"
    )


def _init_fields(cls: type) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(cls) if f.init]


def _build_dataclass(cls: type, value: Any, prefix: str) -> Any:
    """Mapping → dataclass ``cls``, converting every given field; defaults fill the rest."""
    if not isinstance(value, Mapping):
        where = prefix or "config"
        raise ConfigError(
            f"{where}: expected a mapping of {cls.__name__} keys, got {type(value).__name__} "
            f"{_short_repr(value)}"
        )
    fields = _init_fields(cls)
    names = [f.name for f in fields]
    for key in value:
        if key not in names:
            raise _unknown_key_error(prefix, key, names)
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in fields:
        if f.name in value:
            kwargs[f.name] = _convert(value[f.name], hints[f.name], _join(prefix, f.name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key '{_join(prefix, f.name)}'")
    return _construct(cls, prefix, **kwargs)


def _construct(cls_or_obj: Any, prefix: str, **kwargs: Any) -> Any:
    """Instantiate (class) or replace fields of (instance), turning ValueError into ConfigError."""
    try:
        if isinstance(cls_or_obj, type):
            return cls_or_obj(**kwargs)
        return dataclasses.replace(cls_or_obj, **kwargs)
    except ValueError as exc:
        raise ConfigError(f"{prefix}: {exc}" if prefix else str(exc)) from None


_SCALAR_CHECKS: dict[Any, Callable[[Any], bool]] = {
    _NONE_TYPE: lambda v: v is None,
    bool: lambda v: isinstance(v, bool),
    int: lambda v: isinstance(v, int) and not isinstance(v, bool),
    float: lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    str: lambda v: isinstance(v, str),
}


def _convert(value: Any, hint: Any, key: str) -> Any:
    """Check and convert one value against a type hint (dataclass, union, tuple, scalar)."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build_dataclass(hint, value, key)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return _convert_union(value, hint, key)
    if origin is tuple:
        return _convert_tuple(value, hint, key)
    if origin is Literal:
        if value in typing.get_args(hint) and not isinstance(value, bool):
            return value
        raise _type_error(key, hint, value)
    if hint in _SCALAR_CHECKS:
        if not _SCALAR_CHECKS[hint](value):
            raise _type_error(key, hint, value)
        return float(value) if hint is float else value
    raise TypeError(f"{key}: unsupported config field type {_describe(hint)}")


def _convert_union(value: Any, hint: Any, key: str) -> Any:
    """Convert with the first member of ``X | Y | None`` that accepts the value."""
    for member in typing.get_args(hint):
        try:
            return _convert(value, member, key)
        except ConfigError:
            continue
    raise _type_error(key, hint, value)


def _convert_tuple(value: Any, hint: Any, key: str) -> tuple[Any, ...]:
    """List/tuple → tuple, for ``tuple[X, Y]`` (fixed length) and ``tuple[X, ...]``."""
    if not isinstance(value, list | tuple):
        raise _type_error(key, hint, value)
    args = typing.get_args(hint)
    if len(args) == 2 and args[1] is Ellipsis:
        args = (args[0],) * len(value)
    elif len(value) != len(args):
        raise ConfigError(
            f"{key}: expected {_describe(hint)} ({len(args)} items), got {len(value)} items "
            f"{_short_repr(list(value))}"
        )
    return tuple(
        _convert(item, arg, f"{key}[{i}]")
        for i, (item, arg) in enumerate(zip(value, args, strict=True))
    )


# --------------------------------------------------------------------------------------------
# Overrides


def apply_overrides(cfg: ExperimentConfig, overrides: Sequence[str]) -> ExperimentConfig:
    """Apply ``"section.key=value"`` overrides, returning a new config (``cfg`` is unchanged).

    Values are parsed with ``ast.literal_eval`` (``2e-4``, ``(0, 0, 100, 100)``, ``None``,
    ``'text'``); ``null``/``~`` mean None and ``true``/``false`` booleans; anything else is
    taken as a plain string. A string field takes the raw text when the parsed value is not a
    string (``name=123`` sets the name '123'). The value is type-checked against the field.

    Raises:
        ConfigError: on a malformed override, an unknown key or a wrong type.
    """
    for text in overrides:
        key, raw = _split_override(text)
        cfg = _override(cfg, key.split("."), raw, "")
    return cfg


def _split_override(text: str) -> tuple[str, str]:
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. train.lr=2e-4")
    return key, raw.strip()


def _parse_override_value(raw: str) -> Any:
    if raw.lower() in _OVERRIDE_WORDS:
        return _OVERRIDE_WORDS[raw.lower()]
    try:
        return ast.literal_eval(raw)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return raw


def _accepts_str(hint: Any) -> bool:
    return hint is str or (
        typing.get_origin(hint) in (typing.Union, types.UnionType) and str in typing.get_args(hint)
    )


def _override(obj: Any, parts: list[str], raw: str, prefix: str) -> Any:
    """Return ``obj`` with the field at the dotted path ``parts`` set from the raw text."""
    name, key = parts[0], _join(prefix, parts[0])
    names = [f.name for f in _init_fields(type(obj))]
    if name not in names:
        raise _unknown_key_error(prefix, name, names)
    hint = typing.get_type_hints(type(obj))[name]
    is_section = isinstance(hint, type) and dataclasses.is_dataclass(hint)
    if len(parts) > 1 and not is_section:
        raise ConfigError(f"override '{'.'.join([key, *parts[1:]])}': '{key}' is not a section")
    if len(parts) > 1:
        value = _override(getattr(obj, name), parts[1:], raw, key)
    elif is_section:
        example = _init_fields(hint)[0].name
        raise ConfigError(
            f"override '{key}': is a section; set one of its keys, e.g. {key}.{example}"
        )
    else:
        value = _override_value(raw, hint, key)
    return _construct(obj, prefix, **{name: value})


def _override_value(raw: str, hint: Any, key: str) -> Any:
    parsed = _parse_override_value(raw)
    try:
        return _convert(parsed, hint, key)
    except ConfigError:
        if _accepts_str(hint) and not isinstance(parsed, str):
            return raw
        raise
