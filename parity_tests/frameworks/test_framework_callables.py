"""torch and jax code handed to check_vjp, check_grad and check_op as it is.

The call forms (``Function.apply``, ``custom_vjp`` / ``custom_jvp``, jitted and
compiled functions, plain functions of tensors, ``nn.Module``), what the code
receives (tensors of the drawn dtype on the device), that the framework's own
autograd is what is judged when no VJP is given, and every bad input refused
with a message naming the argument.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import reference_impl as ri
from reference_impl.frameworks.detection import detect

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
F = torch.nn.functional

from .framework_catalog import TanhWithJVP  # noqa: E402  (imports torch and jax: after the skips)

pytestmark = [pytest.mark.torch, pytest.mark.jax]

X = ri.Inputs(x=ri.Arg("real", shape=(3, 4)))
FAST = {"max_examples": 5, "seed": 0}


class Sigmoid(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Any) -> Any:
        y = torch.sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (y,) = ctx.saved_tensors
        return g * y * (1 - y)


class SigmoidWrongBackward(Sigmoid):
    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (y,) = ctx.saved_tensors
        return g * y * (1 + y)  # 1 + y for 1 - y


@jax.custom_vjp
def jax_sigmoid(x: Any) -> Any:
    return jax.nn.sigmoid(x)


def _jax_sigmoid_fwd(x: Any) -> tuple[Any, Any]:
    y = jax.nn.sigmoid(x)
    return y, y


jax_sigmoid.defvjp(_jax_sigmoid_fwd, lambda y, g: (g * y * (1 - y),))


@jax.custom_vjp
def jax_sigmoid_wrong(x: Any) -> Any:
    return jax.nn.sigmoid(x)


jax_sigmoid_wrong.defvjp(_jax_sigmoid_fwd, lambda y, g: (g * y,))  # forgets 1 - y


@jax.custom_jvp
def jax_sin(x: Any) -> Any:
    return jnp.sin(x)


jax_sin.defjvp(lambda p, t: (jnp.sin(p[0]), jnp.cos(p[0]) * t[0]))


def torch_tanh(x: Any) -> Any:
    return torch.tanh(x) * 2


# =========================================================================== detection


@pytest.mark.parametrize(("fn", "framework"), [
    (Sigmoid.apply, "torch"),
    (torch.nn.Linear(2, 3), "torch"),
    (torch.sin, "torch"),
    (F.softplus, "torch"),
    (functools.partial(torch.clamp, min=0.0), "torch"),
    (jax.jit(lambda x: x * 2), "jax"),
    (jax_sigmoid, "jax"),
    (jax_sin, "jax"),
    (jnp.sin, "jax"),
    (jax.nn.sigmoid, "jax"),
    (torch_tanh, None),  # a plain function: only what it returns can tell
    (np.sin, None),
], ids=lambda v: getattr(v, "__name__", type(v).__name__) if callable(v) else str(v))
def test_detect_from_the_callable(fn: Any, framework: str | None) -> None:
    assert detect(fn) == framework


def test_detect_a_compiled_function() -> None:
    assert detect(torch.compile(torch_tanh, backend="eager")) == "torch"


# =========================================================================== call forms, framework autograd judged


@pytest.mark.parametrize("fn", [Sigmoid.apply, jax_sigmoid, jax_sin, torch_tanh, jax.jit(jnp.tanh),
                                torch.compile(torch_tanh, backend="eager"), lambda x: jnp.logaddexp(x, 0.0)],
                         ids=["Function.apply", "custom_vjp", "custom_jvp", "plain torch", "jax.jit", "torch.compile",
                              "plain jax"])
def test_correct_code_passes_with_its_own_autograd(fn: Callable[..., Any]) -> None:
    result = ri.check_vjp(fn, inputs=X, **FAST)
    assert result.ok, result.report()


@pytest.mark.parametrize("fn", [SigmoidWrongBackward.apply, jax_sigmoid_wrong], ids=["Function", "custom_vjp"])
def test_the_custom_rule_is_what_is_judged(fn: Callable[..., Any]) -> None:
    result = ri.check_vjp(fn, inputs=X, **FAST)
    assert not result.ok
    assert {c.check.split("[")[0] for c in result.counterexamples} <= {"taylor", "adjoint"}, result.report()


def test_a_user_vjp_of_torch_code_is_checked() -> None:
    good = ri.check_vjp(torch.sin, lambda g, x: g * torch.cos(x), inputs=X, **FAST)
    bad = ri.check_vjp(torch.sin, lambda g, x: g * torch.sin(x), inputs=X, **FAST)
    assert good.ok, good.report()
    assert not bad.ok


def test_the_code_receives_tensors_of_the_drawn_dtype_on_the_device() -> None:
    seen: set[tuple[str, str, str]] = set()

    def f(x: Any) -> Any:
        seen.add((type(x).__name__, str(x.dtype), str(x.device)))
        return torch.sin(x)

    assert ri.check_vjp(f, inputs=X, framework="torch", **FAST).ok
    assert seen == {("Tensor", "torch.float32", "cpu"), ("Tensor", "torch.float64", "cpu")}


def test_assume_on_the_first_call_leaves_the_framework_undecided() -> None:
    from hypothesis import assume

    calls = [0]

    def f(x: Any) -> Any:
        calls[0] += 1
        assume(calls[0] > 1)  # the first input is skipped; the next call tells the framework
        return torch.sin(x)

    result = ri.check_vjp(f, inputs=X, **FAST)
    assert result.ok and result.skipped == 1, result.report()


def test_torch_dtypes_are_accepted_by_name() -> None:
    result = ri.check_vjp(torch.sin, inputs=X, dtypes=(torch.float64,), **FAST)
    assert result.ok and result.dtypes == ("float64",)


def test_numpy_code_without_a_vjp_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^vjp: .*plain function.*framework='torch'"):
        ri.check_vjp(lambda x: np.sin(x), inputs=X, **FAST)
    with pytest.raises(TypeError, match=r"^vjp: none given, and <lambda> is NumPy code"):
        ri.check_vjp(lambda x: np.sin(x), inputs=X, framework="numpy", **FAST)


def test_framework_overrides_and_is_validated() -> None:
    assert ri.check_vjp(torch_tanh, inputs=X, framework="torch", **FAST).ok
    with pytest.raises(ValueError, match=r"^framework: 'tf' is not one of"):
        ri.check_vjp(torch_tanh, inputs=X, framework="tf")


def test_examples_given_as_tensors() -> None:
    result = ri.check_vjp(torch.sin, inputs=[(torch.randn(3, dtype=torch.float64),), (torch.randn(2, 2),)])
    assert result.ok, result.report()


# =========================================================================== check_grad: modules and parameter pytrees


class _WrongTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Any) -> Any:
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (y,) = ctx.saved_tensors
        return g * (1 - y)  # 1 - y for 1 - y^2


class _WrongTanhLayer(torch.nn.Module):
    def forward(self, x: Any) -> Any:
        return _WrongTanh.apply(x)


DATA = (ri.Arg("real", shape=(5, 3), scale=1.0), ri.Arg("real", shape=(5, 2), scale=1.0))


def _model(activation: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), activation, torch.nn.Linear(4, 2))


def test_check_grad_of_a_module() -> None:
    good = ri.check_grad(_model(torch.nn.Tanh()), loss_fn=F.mse_loss, data=DATA, **FAST)
    bad = ri.check_grad(_model(_WrongTanhLayer()), loss_fn=F.mse_loss, data=DATA, **FAST)
    assert good.ok, good.report()
    assert not bad.ok
    assert good.subject == "Sequential"


def test_check_grad_of_a_module_with_labels_and_given_data() -> None:
    model = _model(torch.nn.ReLU())
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 1, 0, 1, 0])
    result = ri.check_grad(model, loss_fn=torch.nn.CrossEntropyLoss(), data=(x, y), seed=0)
    assert result.ok, result.report()


def test_check_grad_of_a_loss_of_a_parameter_pytree() -> None:
    def loss(p: dict[str, Any], d: Any) -> Any:
        return ((d @ p["w"] + p["b"]) ** 2).mean()

    params = {"w": torch.randn(3, 2, requires_grad=True), "b": torch.zeros(2, requires_grad=True)}
    result = ri.check_grad(loss, params=params, data=ri.Arg("real", shape=(4, 3)), **FAST)
    assert result.ok, result.report()


# =========================================================================== check_op


def test_check_op_checks_forward_and_the_autograd_vjp() -> None:
    good = ri.check_op("sigmoid", forward=Sigmoid.apply, **FAST)
    bad = ri.check_op("sigmoid", forward=SigmoidWrongBackward.apply, **FAST)
    assert good.ok and good.functions == ("forward", "vjp"), good.report()
    assert not bad.ok and bad.counterexamples[0].check == "vjp[x]", bad.report()


CE_INPUTS = ri.Inputs(logits=ri.Arg("logits", shape=("batch", 5)),
                      target=ri.Arg("labels", shape=("batch",), classes=5))


def test_check_op_passes_a_fixed_parameter_only_to_code_that_takes_it() -> None:
    # Function.apply and plain wrappers take no reduction=
    result = ri.check_op("softmax_cross_entropy", forward=lambda z, t: F.cross_entropy(z, t), framework="torch",
                         params={"reduction": "mean"}, inputs=CE_INPUTS, max_examples=3, seed=0)
    assert result.ok, result.report()
    with pytest.raises(ValueError, match=r"^params: your forward \(<lambda>\) takes no 'reduction' argument"):
        ri.check_op("softmax_cross_entropy", forward=lambda z, t: F.cross_entropy(z, t), framework="torch")


def test_check_op_with_a_plain_forward_says_its_vjp_was_not_checked() -> None:
    result = ri.check_op("tanh", forward=lambda x: torch.tanh(x), **FAST)
    assert result.ok and result.functions == ("forward",)
    assert any("framework='torch'" in c for c in result.cuts), result.cuts


# =========================================================================== backends: torch-backed code


def test_backends_on_framework_code() -> None:
    mine = ri.check_vjp(torch.sin, lambda g, x: g * torch.cos(x), inputs=X, backends=("torch", "jax"), **FAST)
    assert mine.ok and mine.backends == ("torch",), mine.report()
    assert any("'jax' left out: it cannot run torch code" in c for c in mine.cuts)
    own = ri.check_vjp(torch.sin, inputs=X, backends=("torch",), **FAST)
    assert own.ok and own.backends == ()
    assert any("compared with itself" in c for c in own.cuts)


def _torch_glue(x: Any) -> Any:
    # NumPy in, NumPy out, torch inside: no framework can differentiate it from outside
    return torch.sin(torch.as_tensor(x)).numpy()


def test_numpy_glue_around_torch_with_backends_torch() -> None:
    # the torch opinion cannot run it, which is said, not reported as a wrong gradient
    right = ri.check_vjp(_torch_glue, lambda g, x: g * np.cos(x), inputs=X, backends=("torch",), **FAST)
    assert right.ok, right.report()
    assert any("'torch' left out: it could not run your f on its own arrays" in c for c in right.cuts), right.cuts
    wrong = ri.check_vjp(_torch_glue, lambda g, x: g * np.sin(x), inputs=X, backends=("torch",), **FAST)
    assert not wrong.ok


# =========================================================================== bad input


def _no_grad(x: Any) -> Any:
    with torch.no_grad():
        return torch.sin(x)


def _through_numpy(x: Any) -> Any:
    return jnp.asarray(np.asarray(x) * 2)


def _square_loss(p: dict[str, Any]) -> Any:
    return (p["w"] ** 2).sum()


BAD: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    ("detached result", lambda: ri.check_vjp(lambda x: torch.sin(x).detach(), inputs=X, **FAST),
     ValueError, r"^f: <lambda> returned a result that does not require grad.*detached"),
    ("torch.no_grad inside", lambda: ri.check_vjp(_no_grad, inputs=X, **FAST),
     ValueError, r"^f: _no_grad returned a result that does not require grad.*torch\.no_grad\(\)"),
    ("jax value through NumPy", lambda: ri.check_vjp(_through_numpy, inputs=X, **FAST),
     ValueError, r"^f: _through_numpy turns a jax value into a NumPy array"),
    ("non-leaf parameter", lambda: ri.check_grad(_square_loss, params={"w": torch.ones(3, requires_grad=True) * 2}),
     ValueError, r"^params\['w'\]: a non-leaf tensor \(made by MulBackward0\).*\.detach\(\)"),
    ("data that requires grad", lambda: ri.check_grad(lambda p, d: (p["w"] * d).sum(), params={"w": torch.ones(3)},
                                                       data=torch.ones(3, requires_grad=True)),
     ValueError, r"^data: requires grad, but data is held fixed"),
    ("tensor on another device", lambda: ri.check_grad(_square_loss, params={"w": torch.empty(3, device="meta")}),
     ValueError, r"^params\['w'\]: is on meta, but device='cpu'"),
    ("model on another device", lambda: ri.check_grad(torch.nn.Linear(2, 1, device="meta"), data=DATA),
     ValueError, r"^loss: the model's 'weight' is on meta, but device='cpu'"),
    ("absent cuda (torch)", lambda: ri.check_vjp(torch.sin, inputs=X, device="cuda"),
     ValueError, r"^device: 'cuda' was asked for, but torch sees no CUDA device"),
    ("absent cuda (jax)", lambda: ri.check_vjp(jnp.sin, inputs=X, device="cuda"),
     ValueError, r"^device: jax has no 'cuda' device"),
    ("mixed frameworks", lambda: ri.check_grad(_square_loss, params={"w": torch.ones(3), "b": jnp.ones(3)}),
     TypeError, r"^params: mixes torch tensors \(params\['w'\]\) and jax arrays \(params\['b'\]\)"),
    ("complex dtype", lambda: ri.check_grad(_square_loss, params={"w": torch.ones(3, dtype=torch.complex64)}),
     TypeError, r"^params\['w'\]: complex64 is not supported"),
    ("integer parameter", lambda: ri.check_grad(_square_loss, params={"w": torch.arange(3)}),
     TypeError, r"^params\['w'\]: int64 has no gradient"),
    ("complex dtypes", lambda: ri.check_vjp(torch.sin, inputs=X, dtypes=(torch.complex64,)),
     ValueError, r"^dtypes: 'complex64' is not supported"),
    ("arrays of the other framework", lambda: ri.check_vjp(torch.sin, inputs=[(jnp.ones(3),)]),
     TypeError, r"^inputs\[0\]: holds jax arrays, but the code under test is torch code"),
    ("params beside a module", lambda: ri.check_grad(torch.nn.Linear(2, 1), params={"w": np.ones(2)}),
     ValueError, r"^params: a Module's parameters are the params"),
    ("loss_fn without a module", lambda: ri.check_grad(_square_loss, loss_fn=F.mse_loss, params={"w": np.ones(2)}),
     ValueError, r"^loss_fn: only with a torch.nn.Module"),
    ("integer dtypes", lambda: ri.check_vjp(torch.sin, inputs=X, dtypes=(torch.int64,)),
     ValueError, r"^dtypes: 'int64' is not supported"),
    ("complex example", lambda: ri.check_vjp(torch.sin, inputs=[(torch.ones(3, dtype=torch.complex64),)]),
     TypeError, r"^inputs\[0\]\[0\]: complex64 is not supported"),
    ("non-leaf example", lambda: ri.check_vjp(torch.sin, inputs=[(torch.ones(3, requires_grad=True) * 2,)]),
     ValueError, r"^inputs\[0\]\[0\]: a non-leaf tensor"),
    ("example on another device", lambda: ri.check_vjp(torch.sin, inputs=[(torch.ones(3, device="meta"),)]),
     ValueError, r"^inputs\[0\]\[0\]: is on meta, but device='cpu'"),
    ("mixed frameworks in one example", lambda: ri.check_vjp(lambda x, y: x * y, framework="torch",
                                                             inputs=[(torch.ones(3), jnp.ones(3))]),
     TypeError, r"^inputs\[0\]: mixes torch tensors \(inputs\[0\]\[0\]\) and jax arrays"),
    ("integer parameter (int32)", lambda: ri.check_grad(_square_loss, params={"w": torch.ones(3, dtype=torch.int32)}),
     TypeError, r"^params\['w'\]: int32 has no gradient"),
    *[(f"detached result ({mode})", (lambda kw=kw: ri.check_vjp(lambda x: torch.sin(x).detach(), inputs=X, **FAST,
                                                               **kw)),
       ValueError, r"^f: <lambda> returned a result that does not require grad")
      for mode, kw in (("order 2", {"order": 2}), ("vmap", {"batched": True}), ("fwd", {"modes": ("fwd",)}))],
    *[(f"torch.no_grad inside ({mode})", (lambda kw=kw: ri.check_vjp(_no_grad, inputs=X, **FAST, **kw)),
       ValueError, r"^f: _no_grad returned a result that does not require grad.*torch\.no_grad\(\)")
      for mode, kw in (("order 2", {"order": 2}), ("vmap", {"batched": True}))],
]


@pytest.mark.parametrize(("name", "call", "error", "pattern"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_naming_the_argument(name: str, call: Callable[[], Any], error: type[Exception],
                                                   pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        call()


def test_jax_without_x64_says_how_to_turn_it_on() -> None:
    # the float64 finding names jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        result = ri.check_vjp(jnp.tanh, inputs=X, **FAST)
    finally:
        jax.config.update("jax_enable_x64", True)
    assert not result.ok
    (found,) = [c for c in result.counterexamples if c.dtype == "float64"]
    assert "has dtype float32, expected float64" in found.message
    assert "jax_enable_x64 is off" in found.message and "jax.config.update('jax_enable_x64', True)" in found.message


def test_numpy_code_loads_no_framework() -> None:
    code = ("import sys, numpy as np, reference_impl as ri; "
            "r = ri.check_vjp(np.sin, lambda g, x: g * np.cos(x), inputs=ri.Arg('real', shape=(3,)), max_examples=3, "
            "seed=0); bad = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'jax', 'jaxlib'}); "
            "print(r.ok, bad); sys.exit(0 if r.ok and not bad else 1)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr[-800:]


# =========================================================================== forward mode


class _TanhWrongJVP(TanhWithJVP):
    @staticmethod
    def jvp(ctx: Any, t: Any) -> Any:
        return t * (1 - ctx.y)  # a wrong JVP beside a right VJP


class _TanhWrongBackward(TanhWithJVP):
    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (y,) = ctx.saved_tensors
        return g * (1 - y)  # a wrong backward beside a right JVP


@jax.custom_jvp
def _jax_sin_wrong_jvp(x: Any) -> Any:
    return jnp.sin(x)


_jax_sin_wrong_jvp.defjvp(lambda p, t: (jnp.sin(p[0]), -jnp.cos(p[0]) * t[0]))


SMALL = {"max_examples": 3, "seed": 0}


@pytest.mark.parametrize("fn", [TanhWithJVP.apply, jax_sin], ids=["Function with jvp", "custom_jvp"])
def test_forward_mode_passes_right_code(fn: Callable[..., Any]) -> None:
    result = ri.check_vjp(fn, inputs=X, modes=("rev", "fwd"), **SMALL)
    assert result.ok and result.functions == ("f", "vjp", "jvp"), result.report()
    assert any(r.check == "taylor[x] (fwd)" for r in result.rows)


def test_a_wrong_jvp_beside_a_right_vjp_is_caught_by_forward_mode() -> None:
    rev = ri.check_vjp(_TanhWrongJVP.apply, inputs=X, **SMALL)
    both = ri.check_vjp(_TanhWrongJVP.apply, inputs=X, modes=("rev", "fwd"), **SMALL)
    assert rev.ok, rev.report()
    assert not both.ok and {c.check for c in both.counterexamples} <= {"taylor[x] (fwd)", "adjoint[x] (fwd)"}


def test_forward_mode_is_compared_with_reverse_mode() -> None:
    # <J u, v> = <u, J^T v>: J^T v from the JVPs against the backward's, under the error model
    right = ri.check_vjp(TanhWithJVP.apply, inputs=X, modes=("fwd",), **SMALL)
    assert right.ok and any(r.check == "fwd vs rev[x]" for r in right.rows), right.report()
    wrong = ri.check_vjp(_TanhWrongBackward.apply, inputs=X, modes=("fwd",), **SMALL)
    assert not wrong.ok and {c.check for c in wrong.counterexamples} == {"fwd vs rev[x]"}, wrong.report()


def test_a_wrong_custom_jvp_rule_is_caught_in_both_modes() -> None:
    result = ri.check_vjp(_jax_sin_wrong_jvp, inputs=X, modes=("rev", "fwd"), **SMALL)
    checks = {c.check for c in result.counterexamples}
    assert any(c.endswith("(fwd)") for c in checks) and any(not c.endswith("(fwd)") for c in checks), checks


def test_modes_are_validated() -> None:
    with pytest.raises(ValueError, match=r"^modes: 'sideways' is not a mode"):
        ri.check_vjp(torch.sin, inputs=X, modes=("sideways",))
    with pytest.raises(ValueError, match=r"^modes: 'fwd' checks the framework's forward mode"):
        ri.check_vjp(np.sin, lambda g, x: g * np.cos(x), inputs=X, modes=("fwd",), framework="numpy")
