"""The README's "torch and jax code as it is" examples run as written.

Each Python block preceded by ``<!-- framework-example -->`` is executed in a
fresh namespace; an example whose check fails raises from its
``raise_if_failed()`` / ``assert`` and fails this test."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("jax")

pytestmark = [pytest.mark.torch, pytest.mark.jax]

README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.compile(r"<!-- framework-example -->\s*```python\n(.*?)```", re.DOTALL)


def _examples() -> list[str]:
    return _BLOCK.findall(README.read_text(encoding="utf-8"))


def test_readme_has_the_four_examples() -> None:
    blocks = _examples()
    assert len(blocks) == 4
    assert "ri.check_vjp(MySigmoid.apply" in blocks[0] and "ri.check_grad(model, loss_fn=" in blocks[0]
    for form in ('modes=("rev", "fwd")', "order=2", "batched=True", "ri.check_network(\"004\", model=model",
                 "value_and_grad=jax.value_and_grad(loss)"):
        assert form in blocks[1], form
    assert "torch.autograd.gradcheck(" in blocks[2]
    assert "check_grads(" in blocks[3]


@pytest.mark.parametrize("index", range(4))
def test_readme_example_runs(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(_examples()[index], f"README.md framework example {index + 1}", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert ("PASS" if index < 2 else "FAIL") in out
    if index == 1:
        assert out.count("PASS") == 6 and "FAIL" not in out, out
