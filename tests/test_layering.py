"""The import-direction rule of the contract, checked by parsing every module's imports.

Layers, low to high (a module may import its own layer and the layers below it, never above):

    checks, pngio, images, package root        0  leaves anyone may import
    geometry                                   1
    render                                     2
    model, losses, metrics, data, synthetic    3  (data/synthetic may use geometry and render)
    engine, evaluation, export                 4
    config, pretrained                         5  composes the per-layer config dataclasses
    api                                        6
    cli, __main__                              7

Only ``cli/`` may import typer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "unsup3d_cli"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE

LAYER_RANK: dict[str, int] = {
    "": 0,  # the package itself (``__version__``)
    "checks": 0,
    "pngio": 0,
    "images": 0,
    "geometry": 1,
    "render": 2,
    "model": 3,
    "losses": 3,
    "metrics": 3,
    "data": 3,
    "synthetic": 3,
    "synth_mesh": 3,
    "facecrop": 3,
    "engine": 4,
    "evaluation": 4,
    "export": 4,
    "refine": 4,
    "reconstruct": 4,
    "gallery": 4,
    "synth_dataset": 4,
    "weights": 4,
    "config": 5,
    "pretrained": 5,
    "api": 6,
    "cli": 7,
    "__main__": 7,
}


def module_name(path: Path) -> str:
    """Dotted module name of a file under the package, e.g. ``unsup3d_cli.render.mesh``."""
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def resolve_relative(module: str, is_pkg: bool, level: int, target: str | None) -> str:
    """Absolute name of ``from <level dots><target> import ...`` written inside ``module``."""
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imported_modules(source: str, module: str, is_pkg: bool) -> list[tuple[int, str]]:
    """Every module a source file imports (lazy imports included), as ``(line, name)``.

    ``from pkg import name`` yields ``pkg.name`` when that is a module of ours, else ``pkg``.
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = resolve_relative(module, is_pkg, node.level, node.module)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append((node.lineno, candidate if is_our_module(candidate) else base))
    return found


def is_our_module(name: str) -> bool:
    """Whether ``name`` is a module or package of ours (top-level layers count even if absent)."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return False
    if name.count(".") == 1 and layer_of(name) in LAYER_RANK:
        return True
    relative = Path(*name.split("."))
    root = PACKAGE_DIR.parent
    return (root / relative).with_suffix(".py").is_file() or (root / relative).is_dir()


def layer_of(name: str) -> str:
    """The layer key of one of our dotted module names (its first component below the package)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def package_modules() -> list[Path]:
    return sorted(PACKAGE_DIR.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    unknown = {layer_of(module_name(p)) for p in package_modules()} - LAYER_RANK.keys()
    assert not unknown, f"add these top-level modules to LAYER_RANK: {sorted(unknown)}"


def test_imports_never_go_up_a_layer() -> None:
    violations = []
    for path in package_modules():
        module = module_name(path)
        rank = LAYER_RANK.get(layer_of(module))
        if rank is None:
            continue  # reported by test_every_module_has_a_layer
        for line, name in imported_modules(path.read_text(), module, is_package(path)):
            if not (name == PACKAGE or name.startswith(PACKAGE + ".")):
                continue
            target_rank = LAYER_RANK.get(layer_of(name))
            if target_rank is not None and target_rank > rank:
                violations.append(f"{path.relative_to(PACKAGE_DIR.parent)}:{line} imports {name}")
    assert not violations, "upward imports:\n" + "\n".join(violations)


def test_only_cli_imports_typer() -> None:
    offenders = []
    for path in package_modules():
        module = module_name(path)
        if layer_of(module) == "cli":
            continue
        for line, name in imported_modules(path.read_text(), module, is_package(path)):
            if name == "typer" or name.startswith("typer."):
                offenders.append(f"{path.relative_to(PACKAGE_DIR.parent)}:{line}")
    assert not offenders, "typer imported outside cli/: " + ", ".join(offenders)


# The checker itself: each case would slip through if the resolution were wrong.
@pytest.mark.parametrize(
    ("source", "module", "is_pkg", "expected"),
    [
        (
            "from unsup3d_cli.render import mesh",
            "unsup3d_cli.model.unsup3d",
            False,
            "unsup3d_cli.render.mesh",
        ),
        (
            "from ..render.mesh import grid_mesh",
            "unsup3d_cli.model.unsup3d",
            False,
            "unsup3d_cli.render.mesh",
        ),
        ("from . import camera", "unsup3d_cli.geometry", True, "unsup3d_cli.geometry.camera"),
        ("from .. import api", "unsup3d_cli.cli.train", False, "unsup3d_cli.api"),
        ("from .checks import check_shape", "unsup3d_cli.losses", False, "unsup3d_cli.checks"),
        (
            "def f():\n    import unsup3d_cli.api\n",
            "unsup3d_cli.engine.trainer",
            False,
            "unsup3d_cli.api",
        ),
    ],
)
def test_import_resolution(source: str, module: str, is_pkg: bool, expected: str) -> None:
    assert [name for _, name in imported_modules(source, module, is_pkg)] == [expected]


def test_upward_import_is_ranked_higher() -> None:
    names = imported_modules("from ..api import train", "unsup3d_cli.engine.trainer", False)
    assert LAYER_RANK[layer_of(names[0][1])] > LAYER_RANK[layer_of("unsup3d_cli.engine.trainer")]
