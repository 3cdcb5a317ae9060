"""The pytest plugin (``reference_impl.pytest_plugin``, entry point
``pytest11``): fixture, options, ini settings, marker and summary section,
run through ``pytester``; and the plugin active in a fresh virtual
environment after a plain ``pip install`` of the project.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]

USER_CODE = '''
import numpy as np
import pytest


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_vjp(g, x):
    s = softmax(x)
    return (s * (g - (g * s).sum(axis=-1, keepdims=True)),)


def diagonal_softmax_vjp(g, x):
    s = softmax(x)
    return (g * s * (1 - s),)
'''


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # pytest-benchmark, where installed, warns at configure time inside an
    # xdist worker, and the suite turns warnings into errors: block it as the
    # suite's own addopts do.
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:benchmark", *args)


def _summary(output: str) -> list[str]:
    """Lines of the 'gradient oracle' section of a pytest run's output."""
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip("= ") == "gradient oracle"]
    if not starts:
        return []
    out = []
    for line in lines[starts[0] + 1:]:
        if line.startswith("==="):
            break
        out.append(line)
    return out


def test_fixture_passes_and_the_summary_names_the_check(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_CODE + '''
def test_my_softmax_vjp(gradient_oracle):
    gradient_oracle.check_op("softmax", vjp=softmax_vjp).raise_if_failed()
''')
    result = _run(pytester, "--gradient-oracle-examples=5")
    result.assert_outcomes(passed=1)
    summary = _summary(result.stdout.str())
    assert summary[0].startswith("PASS vjp of op 'softmax': 10 examples in float32, float64"), summary
    assert summary[0].endswith("[test_user.py::test_my_softmax_vjp]")
    assert summary[-1] == "1 check(s), 0 failed (reference_impl)"


def test_wrong_vjp_fails_the_test_with_its_counterexample(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_CODE + '''
def test_my_softmax_vjp(gradient_oracle):
    gradient_oracle.check_op("softmax", vjp=diagonal_softmax_vjp).raise_if_failed()
''')
    result = _run(pytester, "--gradient-oracle-examples=20",
                                "--gradient-oracle-seed=3")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "counterexample (float32, disagreement, wrong, shrunk by hypothesis): vjp[x] vs reference" in out
    summary = _summary(out)
    assert summary[0].startswith("FAIL vjp of op 'softmax'"), summary
    assert summary[-1] == "1 check(s), 1 failed (reference_impl)"


GENERIC_CODE = '''
import numpy as np
from reference_impl import Arg, Inputs


def logsumexp(x):
    m = x.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))[..., 0]


def logsumexp_vjp(g, x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return g[..., None] * e / e.sum(axis=-1, keepdims=True)


def loss(params, data):
    return np.sum((data["x"] @ params["w"]) ** 2)


def grad(params, data):
    return {"w": 2 * data["x"].T @ (data["x"] @ params["w"])}


def wrong_grad(params, data):
    return {"w": data["x"].T @ (data["x"] @ params["w"])}  # forgets the factor 2


X = Inputs(x=Arg("logits", shape=(None, None)))
PARAMS = {"w": Arg("real", shape=("n", 2), scale=1.0)}
DATA = {"x": Arg("real", shape=(3, "n"), scale=1.0)}


def test_vjp(gradient_oracle):
    r = gradient_oracle.check_vjp(logsumexp, logsumexp_vjp, inputs=X).raise_if_failed()
    assert (r.max_examples, r.seed) == (4, 7)


def test_grad(gradient_oracle):
    gradient_oracle.check_grad(loss, grad, params=PARAMS, data=DATA).raise_if_failed()


def test_wrong_grad(gradient_oracle):
    gradient_oracle.check_grad(loss, wrong_grad, params=PARAMS, data=DATA).raise_if_failed()
'''


def test_check_vjp_and_check_grad_on_the_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_generic=GENERIC_CODE)
    result = _run(pytester, "--gradient-oracle-examples=4", "--gradient-oracle-seed=7")
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    assert "gradient check: loss/grad of loss -- FAILED" in out
    summary = _summary(out)
    assert any(line.startswith("PASS f/vjp of logsumexp: 8 examples in float32, float64") and
               line.endswith("[test_generic.py::test_vjp]") for line in summary), summary
    assert any(line.startswith("PASS loss/grad of loss") and "test_grad]" in line for line in summary), summary
    assert any(line.startswith("FAIL loss/grad of loss") and "test_wrong_grad]" in line for line in summary), summary
    assert summary[-1] == "3 check(s), 1 failed (reference_impl)"


def test_marker_overrides_the_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_CODE + '''
@pytest.mark.gradient_oracle(max_examples=3, dtypes=("float64",), seed=11)
def test_marked(gradient_oracle):
    r = gradient_oracle.check_op("softmax", vjp=softmax_vjp).raise_if_failed()
    assert (r.max_examples, r.dtypes, r.seed) == (3, ("float64",), 11)


def test_unmarked(gradient_oracle):
    r = gradient_oracle.check_op("softmax", vjp=softmax_vjp).raise_if_failed()
    # the ci profile's fixed seed applies; its 100 examples yield to --gradient-oracle-examples
    assert (r.max_examples, r.seed, r.profile, r.dtypes) == (2, 0, "ci", ("float32", "float64"))
''')
    result = _run(pytester, "--strict-markers", "--gradient-oracle-profile=ci",
                                "--gradient-oracle-examples=2")
    result.assert_outcomes(passed=2)
    summary = _summary(result.stdout.str())
    assert any("3 examples in float64" in line and "test_marked" in line for line in summary), summary
    assert any("4 examples in float32, float64" in line and "test_unmarked" in line for line in summary), summary


def test_ini_settings_apply(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ngradient_oracle_examples = 4\ngradient_oracle_seed = 5\n")
    pytester.makepyfile(test_user=USER_CODE + '''
def test_it(gradient_oracle):
    r = gradient_oracle.check_op("softmax", vjp=softmax_vjp).raise_if_failed()
    assert (r.max_examples, r.seed) == (4, 5)
''')
    _run(pytester).assert_outcomes(passed=1)


@pytest.mark.parametrize(("option", "message"), [
    pytest.param("--gradient-oracle-profile=weekly", "--gradient-oracle-profile: 'weekly' is not one of",
                 id="profile"),
    pytest.param("--gradient-oracle-examples=many", "--gradient-oracle-examples: expected an integer, got 'many'",
                 id="examples"),
    pytest.param("--gradient-oracle-examples=0", "--gradient-oracle-examples: must be >= 1, got 0", id="examples-0"),
    pytest.param("--gradient-oracle-backends=tensorflow",
                 "--gradient-oracle-backends: 'tensorflow' is not one of torch, jax", id="backend"),
])
def test_bad_option_is_a_usage_error(pytester: pytest.Pytester, option: str, message: str) -> None:
    pytester.makepyfile(test_user="def test_nothing():\n    pass\n")
    result = _run(pytester, option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_no_summary_section_without_the_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user="def test_nothing():\n    assert 1 + 1 == 2\n")
    result = _run(pytester)
    result.assert_outcomes(passed=1)
    assert "gradient oracle" not in result.stdout.str()


def test_options_are_listed_in_help(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--help")
    for name in ("--gradient-oracle-backends", "--gradient-oracle-examples", "--gradient-oracle-profile",
                 "--gradient-oracle-seed"):
        result.stdout.fnmatch_lines([f"*{name}=*"])


def test_plugin_import_loads_no_framework_or_hypothesis() -> None:
    code = ("import sys, reference_impl.pytest_plugin; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('hypothesis', 'torch', 'jax', 'jaxlib')"
            " or m == 'reference_impl.oracle'); print(','.join(bad)); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0, f"importing the plugin pulled in: {r.stdout.strip()} {r.stderr[-500:]}"
