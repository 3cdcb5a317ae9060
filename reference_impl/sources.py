"""The five source documents this reference implements, in one list.

Every docstring and every golden fixture cites a document by its key here
(``"000"`` .. ``"004"``), which is also the prefix of its file name in
``shared/seeds/``.  Titles are given as the documents carry them; where a
document names the address it was published at, that address is kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

from ._validate import check_choice

__all__ = ["Source", "SOURCES", "cite", "fill_citations"]

_T = TypeVar("_T", bound=Any)


@dataclass(frozen=True)
class Source:
    key: str
    """Short key, the first three characters of the file name."""
    title: str
    """Title as printed in the document (its language kept)."""
    title_en: str
    """English title (the original article's title)."""
    address: str | None
    """Original address named in the document, ``None`` where it names none."""
    file_name: str
    """File name in ``shared/seeds/``."""
    language: str
    covers: str
    """What of the document this project implements, in our words."""


SOURCES: Mapping[str, Source] = MappingProxyType(
    {
        s.key: s
        for s in (
            Source(
                key="000",
                title="计算网络的反向传播",
                title_en="Calculating Back-Propagation of a Network",
                address="https://pub.towardsai.net/calculating-back-propagation-of-a-network-1febbcaa2b5d",
                file_name="000_9df549be518cd308.txt",
                language="zh (translation)",
                covers="one-hidden-unit network (w, b, A1; v, c, softmax A2), "
                "cross-entropy cost, its four gradients, the weight update",
            ),
            Source(
                key="001",
                title="解开反向传播之谜",
                title_en="Solving the Mystery of Backpropagation",
                address="https://towardsdatascience.com/solving-the-mystery-of-backpropagation-73b18cae8e40",
                file_name="001_37c825871eef2834.txt",
                language="zh (translation)",
                covers="dC/dw as a sum over all paths of products of local derivatives",
            ),
            Source(
                key="002",
                title="Demystified Back-Propagation in Machine Learning: The Hidden Math You Want to Know About",
                title_en="Demystified Back-Propagation in Machine Learning: The Hidden Math You Want to Know About",
                address="https://medium.com/swlh/demystified-back-propagation-in-machine-learning-the-hidden-maths-you-want-to-know-about-990843a76f58",
                file_name="002_e04e9b3691888ea4.txt",
                language="en + zh",
                covers="relu, tanh, softmax and their derivatives; g(x,y,z)=(2x+y)z; "
                "p(X)=softmax(tanh(relu(X))); weight-matrix layout; the 2-4-4-3 "
                "relu/tanh/softmax network with cross-entropy; gradient descent",
            ),
            Source(
                key="003",
                title="深度学习——反向传播(Backpropagation)",
                title_en="Deep learning: backpropagation",
                address=None,
                file_name="003_a56ab0aea7055992.txt",
                language="zh",
                covers="logistic neuron z = w1 x1 + w2 x2 + b with sigmoid; the hidden-layer "
                "recursion dl/dz = sigma'(z) (w3 dl/dz' + w4 dl/dz'')",
            ),
            Source(
                key="004",
                title="神经网络 IV:图表方法",
                title_en="Neural Networks IV: The Graph Approach",
                address="https://towardsdatascience.com/neural-networks-iv-the-graph-approach-cb25590a7f24",
                file_name="004_a34d86ac8997ef03.txt",
                language="zh (translation)",
                covers="the [2, 3, 1] sigmoid network as a graph of gates: add "
                "(distributor), multiply (switch), activation, squared-error cost",
            ),
        )
    }
)


def cite(key: str) -> str:
    """Return a one-line citation for document ``key`` (e.g. ``"002"``); any
    other key is a ``ValueError`` naming ``key`` and listing the known ones."""
    s = SOURCES[check_choice(key, "key", tuple(sorted(SOURCES)))]
    return f"[{s.key}] {s.title_en} ({s.file_name})"


def fill_citations(obj: _T) -> _T:
    """Replace each ``{NNN}`` in ``obj``'s docstring by ``cite("NNN")``, so
    that docstrings cite the documents by key and file name."""
    obj.__doc__ = re.sub(r"\{(\d{3})\}", lambda m: cite(m.group(1)), obj.__doc__ or "")
    return obj
