"""The package's contract: imports, the registry, docstrings and sources."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import reference_impl as ri
import reference_impl.networks.mlp
from reference_impl import OPS, SOURCES

EXPECTED_OPS = {"add", "multiply", "matmul", "dense", "relu", "tanh", "sigmoid", "softmax",
                "cross_entropy", "softmax_cross_entropy", "mse"}


def test_import_needs_numpy_only() -> None:
    code = ("import sys, reference_impl, reference_impl.accuracy.ops, reference_impl.ops; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'jax', 'jaxlib', 'optax', "
            "'hypothesis', 'scipy', 'matplotlib', 'dask', 'distributed', 'ml_dtypes')); print(','.join(bad)); "
            "sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0, f"import reference_impl pulled in: {r.stdout.strip()} {r.stderr[-500:]}"


def test_registry_holds_the_eleven_ops() -> None:
    assert set(OPS) == EXPECTED_OPS


@pytest.mark.parametrize("op", sorted(EXPECTED_OPS))
def test_docstrings_state_formula_and_cite(op: str) -> None:
    for fn in (getattr(ri, op), getattr(ri, op + "_vjp")):
        doc = fn.__doc__ or ""
        assert "Formula:" in doc and "Sources:" in doc, f"{fn.__name__} lacks formula or sources"
        for key in OPS[op].sources:
            assert SOURCES[key].file_name in doc
    assert OPS[op].impl.__doc__ and OPS[op].rule.__doc__


@pytest.mark.parametrize("op", sorted(EXPECTED_OPS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradients_have_input_shapes_and_dtypes(op: str, dtype) -> None:
    from reference_impl.frameworks.recipes import SPECS

    inputs = SPECS[op].special[0].inputs(np.dtype(dtype))
    params = dict(SPECS[op].special[0].params)
    out = OPS[op].forward(*inputs, **params)
    assert out.dtype == dtype
    grads = OPS[op].vjp(np.ones(out.shape, dtype), *inputs, **params)
    assert len(grads) == len(inputs)
    for x, g, name in zip(inputs, grads, OPS[op].arg_names):
        assert g.shape == x.shape and g.dtype == x.dtype, f"{op}: gradient of {name} is {g.shape} {g.dtype}"


def test_sources_name_the_five_documents() -> None:
    assert sorted(SOURCES) == ["000", "001", "002", "003", "004"]
    for key, s in SOURCES.items():
        assert s.file_name.startswith(key + "_") and s.title


@pytest.mark.parametrize(("old", "new", "name"), [
    ("reference_impl.gradcheck", "reference_impl.check_vjp", "check_vjp"),
    ("reference_impl.gradcheck.numerics", "reference_impl.engine.differences", "fit_taylor_order"),
    ("reference_impl.truth", "reference_impl.frameworks.truth", "forward"),
])
def test_moved_paths_still_import_with_a_deprecation_warning_naming_the_new_one(old: str, new: str,
                                                                               name: str) -> None:
    code = (f"import warnings, importlib\n"
            f"with warnings.catch_warnings(record=True) as w:\n"
            f"    warnings.simplefilter('always')\n"
            f"    m = importlib.import_module({old!r})\n"
            f"assert callable(getattr(m, {name!r}))\n"
            f"print('|'.join(str(x.message) for x in w if issubclass(x.category, DeprecationWarning)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert f"{old} is deprecated" in out and new in out, out


def test_the_checkers_keep_their_public_names() -> None:
    import reference_impl.oracle as oracle

    for name in ("check_op", "check_network", "check_sgd_step", "check_vjp", "check_grad", "Arg", "Inputs"):
        assert getattr(ri, name) is getattr(oracle, name), name
    assert ri.networks.MLP is reference_impl.networks.mlp.MLP  # ri.networks as the README shows it
