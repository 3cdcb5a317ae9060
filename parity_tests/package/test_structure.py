"""The package's shape, read from its source with ``ast``: no import cycles,
no module over 500 lines, no function-local imports except the lazy loads
of optional dependencies that keep ``import reference_impl`` NumPy-only,
and no import of the test suite."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

import reference_impl
from reference_impl import OPS
from reference_impl.frameworks.recipes import SPECS, OpSpec

pytestmark = pytest.mark.numpy_only

PACKAGE = Path(reference_impl.__file__).resolve().parent
MAX_LINES = 500
LAZY_OK = ("torch", "jax", "jaxlib", "optax", "hypothesis", "flint", "array_api_compat", "ml_dtypes", "matplotlib",
           "dask", "reference_impl.dd_loops",
           "reference_impl.frameworks", "reference_impl.oracle", "reference_impl.engine.profiles")
"""What a function may import: the optional frameworks, hypothesis, ml_dtypes (bfloat16), the
report's plotting library and the cluster's scheduler client, the
compiled double-double kernels (numba's import takes about a second), and
the modules that import hypothesis (the oracle, the profiles), loaded on
first use by ``import reference_impl`` and the pytest plugin."""


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _imports(name: str, path: Path, modules: dict[str, Path], top_level_only: bool) -> set[str]:
    """The reference_impl modules that ``name`` imports at module level."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, is_package, node)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def _cycles() -> list[list[str]]:
    modules = _modules()
    graph = {m: _imports(m, p, modules, top_level_only=True) for m, p in modules.items()}
    found, state = [], {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                found.append([*stack[stack.index(n):], n] if n in stack else [m, n])
            elif n not in state:
                visit(n, [*stack, n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    return found


def test_no_import_cycles() -> None:
    cycles = _cycles()
    assert not cycles, "import cycles inside reference_impl:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_module_over_500_lines() -> None:
    long = {str(p.relative_to(PACKAGE.parent)): n for p in _modules().values()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_function_local_imports_are_only_lazy_optional_loads() -> None:
    bad = []
    for name, path in _modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    targets = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    base = _resolve(name, path.name == "__init__.py", node)
                    targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in _modules() else base for a in node.names]
                else:
                    continue
                for t in targets:
                    if not any(t == ok or t.startswith(ok + ".") for ok in LAZY_OK):
                        bad.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports {t} in {fn.name}()")
    assert not bad, "function-local imports:\n" + "\n".join(bad)


def test_the_library_never_imports_the_test_suite() -> None:
    hits = [str(p.relative_to(PACKAGE.parent)) for p in _modules().values()
            if "parity_tests" in p.read_text(encoding="utf-8")]
    assert not hits, f"reference_impl mentions parity_tests in: {hits}"


def test_every_op_has_its_recipes_row() -> None:
    """An op is added in three places: ops.py, tolerances.py and its row in
    recipes.py, which carries its torch, jax and truth (ball arithmetic)
    recipes. A row without one of them is refused when the table is built."""
    lacking = {op: [r for r in ("torch", "jax", "truth_forward", "truth_vjp") if not callable(getattr(SPECS[op], r))]
               for op in OPS if op in SPECS}
    assert set(OPS) <= set(SPECS), f"ops without a recipes row: {sorted(set(OPS) - set(SPECS))}"
    assert not any(lacking.values()), f"recipes rows lacking recipes: { {k: v for k, v in lacking.items() if v} }"
    with pytest.raises(ValueError, match=r"'relu'.*truth_forward / truth_vjp"):
        OpSpec("relu", torch=lambda ns, x: ns.torch.relu(x), jax=lambda ns, x: ns.nn.relu(x))


def test_every_subpackage_is_in_the_wheel() -> None:
    """``pyproject.toml`` spells out its packages (the fixtures' package-dir
    mapping needs the list): a subpackage missing there is missing from the wheel."""
    pyproject = PACKAGE.parent / "pyproject.toml"
    listed = set(tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(PACKAGE.parent).parts) for p in PACKAGE.rglob("__init__.py")}
    assert found <= listed, f"subpackages missing from pyproject.toml's packages: {sorted(found - listed)}"
