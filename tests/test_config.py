"""Tests of the strict config loader, dumper and dotted overrides."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from unsup3d_cli.config import (
    ConfigError,
    ExperimentConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
)
from unsup3d_cli.config import _build_dataclass as build_dataclass

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _non_default_config() -> ExperimentConfig:
    cfg = ExperimentConfig()
    return dataclasses.replace(
        cfg,
        name="round-trip",
        data=dataclasses.replace(cfg.data, source="paired", crop=(8, 14, 100, 100), hflip=False),
        model=dataclasses.replace(cfg.model, border_depth=1.05, width=16),
        loss=dataclasses.replace(cfg.loss, lam_flip=0.25, perceptual_weights="random"),
        train=dataclasses.replace(cfg.train, lr=2e-4, betas=(0.5, 0.9), max_steps=7, seed=3),
    )


# ---------------------------------------------------------------------------- round trips


def test_defaults_from_empty_mapping() -> None:
    assert config_from_dict({}) == ExperimentConfig()


def test_dump_then_load_gives_equal_config(tmp_path: Path) -> None:
    cfg = _non_default_config()
    path = tmp_path / "nested" / "config.yaml"
    dump_config(cfg, path)
    assert load_config(path) == cfg
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]  # no .tmp left


def test_config_to_dict_is_plain_and_round_trips() -> None:
    cfg = _non_default_config()
    plain = config_to_dict(cfg)
    assert plain["train"]["betas"] == [0.5, 0.9]
    assert plain["data"]["crop"] == [8, 14, 100, 100]
    assert plain["model"]["border_depth"] == 1.05
    assert config_from_dict(plain) == cfg


def test_lists_become_tuples() -> None:
    cfg = config_from_dict({"train": {"betas": [0.8, 0.99]}, "data": {"crop": [1, 2, 3, 4]}})
    assert cfg.train.betas == (0.8, 0.99)
    assert isinstance(cfg.train.betas, tuple)
    assert cfg.data.crop == (1, 2, 3, 4)
    assert isinstance(cfg.data.crop, tuple)


def test_int_accepted_for_float_and_converted() -> None:
    cfg = config_from_dict({"train": {"lr": 1, "betas": [0, 1]}})
    assert cfg.train.lr == 1.0
    assert isinstance(cfg.train.lr, float)
    assert all(isinstance(b, float) for b in cfg.train.betas)


def test_crop_union_accepts_int_box_and_none() -> None:
    assert config_from_dict({"data": {"crop": 170}}).data.crop == 170
    assert config_from_dict({"data": {"crop": None}}).data.crop is None
    assert config_from_dict({"data": {"crop": [0, 0, 5, 6]}}).data.crop == (0, 0, 5, 6)


def test_yaml_exponent_floats_without_dot(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.yaml", "train:\n  lr: 1e-4\n  weight_decay: 5E-4\n")
    cfg = load_config(path)
    assert cfg.train.lr == pytest.approx(1e-4)
    assert cfg.train.weight_decay == pytest.approx(5e-4)


# ---------------------------------------------------------------------------- strictness


def test_unknown_key_names_key_and_lists_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"train": {"learning_rate": 1e-3}})
    message = str(info.value)
    assert "train.learning_rate" in message
    for valid in ("lr", "batch_size", "betas", "keep_checkpoints"):
        assert valid in message


def test_unknown_top_level_key_lists_sections() -> None:
    with pytest.raises(ConfigError, match="optim") as info:
        config_from_dict({"optim": {}})
    for section in ("name", "data", "renderer", "model", "loss", "train"):
        assert section in str(info.value)


def test_unknown_key_suggests_close_match() -> None:
    with pytest.raises(ConfigError, match=r"did you mean 'model\.min_depth'"):
        config_from_dict({"model": {"min_dpeth": 0.8}})


@pytest.mark.parametrize(
    ("data", "key", "expected"),
    [
        ({"train": {"lr": "abc"}}, "train.lr", "float"),
        ({"train": {"batch_size": 1.5}}, "train.batch_size", "int"),
        ({"train": {"batch_size": True}}, "train.batch_size", "int"),
        ({"train": {"lr": False}}, "train.lr", "float"),
        ({"train": {"validate": 1}}, "train.validate", "bool"),
        ({"train": {"validate": "yes"}}, "train.validate", "bool"),
        ({"train": {"max_steps": 2.0}}, "train.max_steps", "int | None"),
        ({"name": 5}, "name", "str"),
        ({"loss": {"perceptual_weights": None}}, "loss.perceptual_weights", "str"),
        ({"data": {"crop": 1.5}}, "data.crop", "int | tuple[int, int, int, int] | None"),
        ({"data": {"crop": [1, 2]}}, "data.crop", "tuple"),
        ({"data": {"crop": "center"}}, "data.crop", "int"),
        ({"train": {"betas": 0.9}}, "train.betas", "tuple[float, float]"),
        ({"train": {"betas": "ab"}}, "train.betas", "tuple[float, float]"),
        ({"train": "fast"}, "train", "mapping"),
    ],
)
def test_wrong_type_names_dotted_key(data: dict, key: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    message = str(info.value)
    assert message.startswith(f"{key}:")
    assert expected in message
    assert "\n" not in message


def test_tuple_length_and_element_errors() -> None:
    with pytest.raises(ConfigError, match=r"train\.betas: .*2 items.*got 3"):
        config_from_dict({"train": {"betas": [0.9, 0.99, 0.999]}})
    with pytest.raises(ConfigError, match=r"train\.betas\[1\]: expected float, got str"):
        config_from_dict({"train": {"betas": [0.9, "x"]}})


def test_section_validation_becomes_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^data: .*source"):
        config_from_dict({"data": {"source": "webcam"}})
    with pytest.raises(ConfigError, match=r"^data: .*crop"):
        config_from_dict({"data": {"crop": 0}})
    with pytest.raises(ConfigError, match="name"):
        config_from_dict({"name": "../escape"})


def test_non_string_key_is_unknown() -> None:
    with pytest.raises(ConfigError, match="unknown key '1'"):
        config_from_dict({1: "x"})


@dataclass(frozen=True)
class _Inner:
    sizes: tuple[int, ...] = ()
    """Any number of ints."""
    label: str | None = None
    """Optional text."""


@dataclass(frozen=True)
class _Outer:
    required: float
    """No default."""
    inner: _Inner = field(default_factory=_Inner)
    """Nested section."""


def test_converter_is_generic_over_nested_dataclasses() -> None:
    built = build_dataclass(_Outer, {"required": 2, "inner": {"sizes": [1, 2, 3]}}, "")
    assert built == _Outer(required=2.0, inner=_Inner(sizes=(1, 2, 3)))
    with pytest.raises(ConfigError, match="missing required key 'required'"):
        build_dataclass(_Outer, {}, "")
    with pytest.raises(ConfigError, match=r"inner\.sizes\[2\]: expected int"):
        build_dataclass(_Outer, {"required": 1, "inner": {"sizes": [1, 2, "3"]}}, "")


# ---------------------------------------------------------------------------- files


def test_missing_file_names_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="not found") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.yaml", "train:\n  lr: [1, 2\n")
    with pytest.raises(ConfigError, match="invalid YAML") as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_non_mapping_yaml_names_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "list.yaml", "- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_duplicate_yaml_key_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path / "dup.yaml", "train:\n  lr: 0.1\n  lr: 0.2\n")
    with pytest.raises(ConfigError, match="duplicate key 'lr'"):
        load_config(path)


def test_yaml_python_tags_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "evil.yaml", "name: !!python/object/apply:os.getcwd []\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(path)


def test_key_errors_in_file_name_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.yaml", "train:\n  lr: abc\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: train\.lr: expected float"):
        load_config(path)


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path / "empty.yaml", "# nothing\n")) == ExperimentConfig()


def test_load_config_applies_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.yaml", "train:\n  lr: 0.1\n")
    cfg = load_config(path, ["train.lr=0.5", "train.batch_size=3"])
    assert (cfg.train.lr, cfg.train.batch_size) == (0.5, 3)


SHIPPED = sorted(CONFIG_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_config_loads_and_round_trips(path: Path, tmp_path: Path) -> None:
    cfg = load_config(path)
    dump_config(cfg, tmp_path / "again.yaml")
    assert load_config(tmp_path / "again.yaml") == cfg


def test_the_paper_recipes_and_the_smoke_config_are_shipped() -> None:
    names = {p.stem for p in SHIPPED}
    assert {"celeba", "cat", "synface", "syncar", "smoke"} <= names, names
    smoke = load_config(CONFIG_DIR / "smoke.yaml")  # the demo's config needs no files
    assert smoke.data.source == "synthetic" and smoke.loss.perceptual_weights == "none"


# ---------------------------------------------------------------------------- overrides


def test_overrides_parse_values_and_do_not_mutate() -> None:
    cfg = ExperimentConfig()
    new = apply_overrides(
        cfg,
        [
            "train.lr=2e-4",
            "train.betas=(0.5, 0.9)",
            "data.crop=[0, 0, 10, 12]",
            "model.border_depth=None",
            "train.max_steps=null",
            "train.validate=false",
            "data.root=/some/where else",
            "loss.perceptual_weights='random'",
            "name = quoted-name ",
        ],
    )
    assert new.train.lr == pytest.approx(2e-4)
    assert new.train.betas == (0.5, 0.9)
    assert new.data.crop == (0, 0, 10, 12)
    assert new.model.border_depth is None
    assert new.train.max_steps is None
    assert new.train.validate is False
    assert new.data.root == "/some/where else"
    assert new.loss.perceptual_weights == "random"
    assert new.name == "quoted-name"
    assert cfg == ExperimentConfig()


def test_override_string_field_keeps_raw_text() -> None:
    new = apply_overrides(ExperimentConfig(), ["name=123", "loss.perceptual_weights=none"])
    assert new.name == "123"
    assert new.loss.perceptual_weights == "none"


def test_override_int_and_none_for_optional_fields() -> None:
    new = apply_overrides(ExperimentConfig(), ["train.max_steps=10", "data.crop=170"])
    assert new.train.max_steps == 10
    assert new.data.crop == 170
    assert apply_overrides(new, ["data.crop=None"]).data.crop is None


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("train.lr=abc", r"train\.lr: expected float, got str 'abc'"),
        ("train.batch_size=1.5", r"train\.batch_size: expected int"),
        ("train.batch_size=True", r"train\.batch_size: expected int, got bool"),
        ("train.lrate=1", r"unknown key 'train\.lrate'.*valid keys of 'train': seed, batch_size"),
        ("optim.lr=1", r"unknown key 'optim'.*valid keys at the top level"),
        ("train", r"expected KEY=VALUE"),
        ("=3", r"expected KEY=VALUE"),
        ("train=1", r"'train': is a section"),
        ("train.lr.x=1", r"'train\.lr' is not a section"),
        ("data.crop=(1, 2)", r"data\.crop: expected int \| tuple"),
        ("data.crop=-4", r"data: crop must be a positive"),
        ("data.source=webcam", r"data: source must be one of"),
        ("train.max_steps=", r"train\.max_steps: expected int \| None"),
    ],
)
def test_bad_overrides_raise(override: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        apply_overrides(ExperimentConfig(), [override])


@pytest.mark.parametrize("override", ["renderer.slots_per_pixel=-1", "renderer.max_candidates=0"])
def test_bad_rasterizer_settings_are_config_errors(override: str) -> None:
    key = override.partition("=")[0]
    with pytest.raises(ConfigError, match=f"{re.escape(key)} must be >= "):
        apply_overrides(ExperimentConfig(name="t"), [override])
