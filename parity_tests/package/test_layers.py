"""The layering of the package, read from its source with ``ast``: every
module-level import runs down the list of layers below (or stays in its own
layer), and the optional dependencies are imported only where their layer
says. A function-local import is a lazy load: ``test_structure.py`` allows
it only for the optional frameworks and the hypothesis-backed checkers.

The layers, from the ground up (README, "Layout"):

0. foundation -- ``wide``, ``double_double`` (with ``dd_tables``, ``dd_kernels``, ``dd_loops``), ``exact_dot``,
   ``broadcasting``, ``bounded_json``, ``pytree``, ``dtypes``;
1. ``accuracy/`` -- the error model;
2. the reference -- the other top-level modules and ``networks/``;
3. ``frameworks/`` -- torch, jax, python-flint, the per-op recipes;
4. ``strategies/`` -- drawing inputs;
5. ``engine/`` -- the one check engine;
6. ``golden/`` -- the fixtures and their replay;
7. ``oracle/`` -- the checkers of user code;
8. ``certify/`` -- the certificate;
9. the faces on top: the command line, the pytest plugin, the deprecated paths.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import reference_impl

pytestmark = pytest.mark.numpy_only

PACKAGE = Path(reference_impl.__file__).resolve().parent

FOUNDATION = {"reference_impl.wide", "reference_impl.double_double", "reference_impl.dd_tables",
              "reference_impl.dd_kernels", "reference_impl.dd_loops", "reference_impl.exact_dot",
              "reference_impl.broadcasting", "reference_impl.bounded_json", "reference_impl.pytree",
              "reference_impl.dtypes"}
FACES = {"reference_impl.cli", "reference_impl.__main__", "reference_impl.pytest_plugin", "reference_impl.truth",
         "reference_impl.gradcheck", "reference_impl.gradcheck.numerics"}
LAYERS = ["foundation", "accuracy", "reference", "frameworks", "strategies", "engine", "golden", "oracle", "certify",
          "faces"]
OPTIONAL = {
    "torch": {"frameworks"}, "jax": {"frameworks"}, "jaxlib": {"frameworks"}, "optax": {"frameworks"},
    "flint": {"frameworks"}, "array_api_compat": {"frameworks"},
    "hypothesis": {"strategies", "engine", "oracle", "certify", "faces"},
    "jsonschema": {"golden"},
    "numba": {"foundation"}, "llvmlite": {"foundation"},
    "matplotlib": {"certify"}, "dask": {"certify"}, "distributed": {"certify"},
}
"""Where each optional dependency may be imported, at module level or lazily."""
MODULE_LEVEL_HYPOTHESIS = {"strategies", "engine", "oracle", "certify"}
"""Layers that may import hypothesis when they are imported (the faces load it on use)."""


def layer_of(module: str) -> str:
    if module in FOUNDATION:
        return "foundation"
    if module in FACES:
        return "faces"
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    return "reference"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, module_level: bool) -> list[tuple[int, str]]:
    """``(line, module)`` for each import in ``name``: package modules resolved to
    the deepest module that exists, other modules by their top-level name."""
    modules = _modules()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if module_level else list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                base_name = ".".join([*base, node.module] if node.module else base)
            else:
                base_name = node.module or ""
            targets = [f"{base_name}.{a.name}" if f"{base_name}.{a.name}" in modules else base_name
                       for a in node.names]
        else:
            continue
        for t in targets:
            if t.startswith("reference_impl"):
                while t not in modules:
                    t = t.rpartition(".")[0]
            else:
                t = t.split(".")[0]
            out.append((node.lineno, t))
    return out


def test_every_module_has_a_layer_and_the_layers_are_as_documented() -> None:
    layers = {layer_of(m) for m in _modules()}
    assert layers == set(LAYERS), f"layers found: {sorted(layers)}"
    assert layer_of("reference_impl.ops") == "reference" and layer_of("reference_impl.networks.mlp") == "reference"
    assert layer_of("reference_impl.engine.search") == "engine"


def test_module_level_imports_run_down_the_layers() -> None:
    upward = []
    for name, path in _modules().items():
        here = LAYERS.index(layer_of(name))
        for line, target in _imports(name, path, module_level=True):
            if target.startswith("reference_impl") and LAYERS.index(layer_of(target)) > here:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({layer_of(name)}) imports {target} "
                              f"({layer_of(target)})")
    assert not upward, "imports that run up the layers:\n" + "\n".join(upward)


def test_optional_dependencies_only_where_their_layer_allows() -> None:
    misplaced = []
    for name, path in _modules().items():
        layer = layer_of(name)
        for line, target in _imports(name, path, module_level=False):
            if target in OPTIONAL and layer not in OPTIONAL[target]:
                misplaced.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({layer}) imports {target}")
        for line, target in _imports(name, path, module_level=True):
            if target == "hypothesis" and layer not in MODULE_LEVEL_HYPOTHESIS:
                misplaced.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({layer}) imports hypothesis at "
                                 "module level")
    assert not misplaced, "optional dependencies outside their layer:\n" + "\n".join(misplaced)


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: an import of the engine from an op is found."""
    fake = tmp_path / "ops.py"
    fake.write_text("from .engine import search\nimport torch\n", encoding="utf-8")
    found = _imports("reference_impl.ops", fake, module_level=True)
    assert (1, "reference_impl.engine.search") in found and (2, "torch") in found
    assert LAYERS.index(layer_of("reference_impl.engine.search")) > LAYERS.index(layer_of("reference_impl.ops"))
