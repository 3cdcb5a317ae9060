"""The README's "Check any gradient: check_vjp and check_grad" examples run as written.

Each Python block preceded by ``<!-- check-vjp-example -->`` is executed in a
fresh namespace; an example whose check fails raises from its
``raise_if_failed()`` / ``assert`` and fails this test."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.compile(r"<!-- check-vjp-example -->\s*```python\n(.*?)```", re.DOTALL)


def _examples() -> list[str]:
    return _BLOCK.findall(README.read_text(encoding="utf-8"))


def test_readme_has_the_three_examples() -> None:
    blocks = _examples()
    assert len(blocks) == 3
    assert "check_vjp(logsumexp" in blocks[0]
    assert 'backends=("torch", "jax")' in blocks[1]
    assert "check_grad(loss, grad" in blocks[2]


@pytest.mark.parametrize("index", range(3))
def test_readme_example_runs(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    code = _examples()[index]
    if "backends=" in code:
        pytest.importorskip("torch")
        pytest.importorskip("jax")
    exec(compile(code, f"README.md example {index + 1}", "exec"), {"__name__": "__readme__"})
    assert "PASS" in capsys.readouterr().out
