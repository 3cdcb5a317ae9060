"""A computational graph of gates, swept backwards in topological order
(document 004, "the graph approach").

Gates and their local gradients (004, section 3):

* ``add`` -- a *distributor*: local gradient 1 for both inputs, so the
  upstream gradient passes to each input unchanged (summed over the axes a
  bias was broadcast along).
* ``multiply`` -- a *switch*: each input's local gradient is the other input.
* ``matmul`` -- the matrix form of the switch: ``dA = G B^T``, ``dB = A^T G``.
* ``activation`` -- relu, tanh, sigmoid (or softmax): the upstream gradient
  times the activation's own derivative.
* ``loss`` -- the cost; the start of the backward sweep, where the gradient
  of the cost with respect to itself is 1.

Each gate is the registry op of the same name (``OPS[...]``): its forward
computes the node's value, and in the backward sweep its VJP rule multiplies
the gradient arriving from the end by the gate's local gradient. A node used
by several gates receives the sum of their gradients. Unlike
:meth:`reference_impl.networks.MLP.backward`, which walks a fixed layer
structure with fused dense layers, the graph knows nothing of layers: a dense
layer is a ``matmul`` gate followed by an ``add`` gate, and the order of the
backward sweep comes from a topological sort of whatever was built.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._validate import as_array, check_choice, check_cotangent, overflow_remedy
from ._validate import frozen as _frozen
from .networks import MLP, LayerGradients, NetworkGradients
from .ops import OPS
from .sources import fill_citations

__all__ = ["Node", "Graph", "Gradients", "MLPGraph", "mlp_graph", "graph_gradients", "GATE_ACTIVATIONS"]

GATE_ACTIVATIONS = ("relu", "tanh", "sigmoid", "softmax", "identity")
LOSSES = ("cross_entropy", "softmax_cross_entropy", "mse")


@dataclass(frozen=True, eq=False)
class Node:
    """One value in the graph: a variable (``op is None``) or a gate's output."""

    name: str
    op: str | None
    inputs: tuple[Node, ...]
    value: np.ndarray
    params: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        kind = "variable" if self.op is None else self.op
        return f"Node({self.name!r}, {kind}, shape={self.value.shape})"


class Gradients(Mapping[str, np.ndarray]):
    """The gradient of the swept output with respect to every node upstream
    of it, by node name (``grads["W1"]``) or by node (``grads[node]``)."""

    def __init__(self, by_node: dict[Node, np.ndarray]) -> None:
        self._by_node = by_node
        self._by_name = {n.name: g for n, g in by_node.items()}

    def __getitem__(self, key: str | Node) -> np.ndarray:
        if isinstance(key, Node):
            if key not in self._by_node:
                raise KeyError(f"node {key.name!r} is not upstream of the swept output")
            return self._by_node[key]
        if key not in self._by_name:
            raise KeyError(f"no node named {key!r} upstream of the swept output; known: {sorted(self._by_name)}")
        return self._by_name[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)


class Graph:
    """A graph of gates built forward, one call per gate; :meth:`backward`
    sweeps it from an output node. Names are unique within a graph.
    Source: {004}."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self._names: set[str] = set()

    def _name(self, name: str | None, default: str) -> str:
        if name is None:
            name = f"{default}{len(self.nodes)}"
        if not isinstance(name, str) or not name:
            raise TypeError(f"name: expected a non-empty string, got {name!r}")
        if name in self._names:
            raise ValueError(f"name: {name!r} is already a node of this graph")
        return name

    def _own(self, node: Any, arg: str) -> Node:
        if not isinstance(node, Node):
            raise TypeError(
                f"{arg}: expected a Node of this graph (make one with Graph.variable), got {type(node).__name__}"
            )
        if node not in self.nodes:
            raise ValueError(f"{arg}: node {node.name!r} belongs to another graph")
        return node

    def _push(self, node: Node) -> Node:
        self.nodes.append(node)
        self._names.add(node.name)
        return node

    def _gate(self, op: str, inputs: tuple[Node, ...], name: str | None, names: tuple[str, ...] | None = None,
              **params: Any) -> Node:
        """The gate's node; ``names``: the gate method's arguments where they
        differ from the op's (the loss gate's ``prediction`` is the
        cross-entropy's ``probs``), so that an error names what was passed."""
        node_name = self._name(name, op)
        try:
            value = _frozen(OPS[op].forward(*(n.value for n in inputs), **params))
        except (ValueError, TypeError) as e:
            if names is None:
                raise
            raise type(e)(f"{', '.join(names)}: {e}") from None
        return self._push(Node(node_name, op, inputs, value, dict(params)))

    def variable(self, name: str | None, value: Any) -> Node:
        """A leaf: an input, a weight, a bias or a target (``name`` ``None``:
        ``v<n>``)."""
        node_name = self._name(name, "v")
        return self._push(Node(node_name, None, (), _frozen(as_array(value, "value"))))

    def add(self, a: Node, b: Node, name: str | None = None) -> Node:
        """``a + b``; backward: the distributor, ``da = db = upstream``."""
        return self._gate("add", (self._own(a, "a"), self._own(b, "b")), name)

    def multiply(self, a: Node, b: Node, name: str | None = None) -> Node:
        """``a * b`` elementwise; backward: the switch, ``da = upstream * b``, ``db = upstream * a``."""
        return self._gate("multiply", (self._own(a, "a"), self._own(b, "b")), name)

    def matmul(self, a: Node, b: Node, name: str | None = None) -> Node:
        """``a @ b``; backward: ``da = upstream @ b^T``, ``db = a^T @ upstream``."""
        return self._gate("matmul", (self._own(a, "a"), self._own(b, "b")), name)

    def activation(self, kind: str, x: Node, name: str | None = None) -> Node:
        """``kind(x)`` for ``kind`` in relu, tanh, sigmoid, softmax; backward:
        upstream times the activation's derivative. ``identity`` adds no
        gate and returns ``x`` itself."""
        check_choice(kind, "kind", GATE_ACTIVATIONS)
        node = self._own(x, "x")
        if kind == "identity":
            return node
        return self._gate(kind, (node,), name)

    def loss(self, kind: str, prediction: Node, target: Node, reduction: str = "mean", name: str | None = None) -> Node:
        """The cost ``kind(prediction, target)``, a scalar."""
        check_choice(kind, "kind", LOSSES)
        check_choice(reduction, "reduction", OPS[kind].params["reduction"])
        return self._gate(kind, (self._own(prediction, "prediction"), self._own(target, "target")), name,
                          ("prediction", "target"), reduction=reduction)

    def topological_order(self, output: Node) -> list[Node]:
        """The nodes ``output`` depends on, each after all of its inputs.

        Nodes are frozen, but a graph edited anyway (``object.__setattr__``,
        or ``Graph.nodes`` changed by hand) into a cycle or onto foreign nodes
        is a ``ValueError`` naming ``output``, not a hang."""
        self._own(output, "output")
        members = {id(n) for n in self.nodes}
        order: list[Node] = []
        done: set[int] = set()
        visiting: set[int] = set()
        stack: list[tuple[Node, bool]] = [(output, False)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in done:
                continue
            if expanded:
                visiting.discard(id(node))
                done.add(id(node))
                order.append(node)
                continue
            if id(node) in visiting:
                # (node, False) above its own (node, True) marker: pushed by one of its descendants
                raise ValueError(f"output: the graph upstream of {output.name!r} has a cycle through node "
                                 f"{node.name!r}; a graph of gates is acyclic, rebuild it")
            visiting.add(id(node))
            stack.append((node, True))
            for i in node.inputs:
                if not isinstance(i, Node) or id(i) not in members:
                    raise ValueError(f"output: node {node.name!r} upstream of {output.name!r} has an input that is "
                                     f"not a node of this graph ({i!r})")
                if id(i) not in done:
                    stack.append((i, False))
        return order

    def backward(self, output: Node, cotangent: Any = None) -> Gradients:
        """Sweep the graph backwards from ``output``.

        The gradient at ``output`` is ``cotangent`` (1 for a scalar output
        when omitted); in reverse topological order every gate multiplies the
        gradient arriving at its output by its local gradient (its op's VJP
        rule) and adds the result to each input's gradient. Source: {004}.
        """
        return self._sweep(output, cotangent, "output")

    def _sweep(self, output: Node, cotangent: Any, blame: str) -> Gradients:
        """:meth:`backward`; an overflowing gradient is an error naming
        ``blame``, what the caller passed that the values came from."""
        order = self.topological_order(output)
        if cotangent is None:
            if output.value.ndim != 0:
                raise ValueError(f"cotangent: output {output.name!r} has shape {output.value.shape}; "
                                 "pass a cotangent of that shape (it is 1 only for a scalar)")
            seed = np.ones((), dtype=output.value.dtype)
        else:
            seed = check_cotangent(cotangent, output.value.shape, output.value.dtype)
        grads: dict[Node, np.ndarray] = {output: seed}
        for node in reversed(order):
            if node.op is None:
                continue
            upstream = grads[node]
            local = OPS[node.op].vjp_from_output(upstream, node.value, *(i.value for i in node.inputs), **node.params)
            for inp, g in zip(node.inputs, local, strict=True):
                grads[inp] = grads[inp] + g if inp in grads else g
        out: dict[Node, np.ndarray] = {}
        for node in order:
            # a copy each: a gate's rule may hand one array to both of its inputs
            g = np.array(grads[node], copy=True) if node in grads else np.zeros_like(node.value)
            if not np.all(np.isfinite(g)):
                raise ValueError(f"{blame}: the gradient of {output.name!r} w.r.t. node {node.name!r} overflows "
                                 f"{g.dtype}; {overflow_remedy(g.dtype, 'scale the values down')}")
            out[node] = g
        return Gradients(out)


@dataclass(frozen=True)
class MLPGraph:
    """An :class:`~reference_impl.networks.MLP` as a gate graph, named in
    document 004's notation: ``X``; for layer ``l`` (counted from 1)
    ``W{l}``, ``b{l}``, ``XW{l}`` (the matmul gate), ``z{l+1}`` (the add
    gate), ``a{l+1}`` (the activation); ``yhat`` (the output: the softmax,
    or the last activation), ``y`` (the target) and ``J`` (the cost)."""

    net: MLP
    graph: Graph
    x: Node
    weights: tuple[Node, ...]
    biases: tuple[Node, ...]
    z: tuple[Node, ...]
    a: tuple[Node, ...]
    output: Node
    target: Node
    loss: Node


def mlp_graph(net: MLP, params: Any, x: Any, target: Any) -> MLPGraph:
    """Build ``net`` gate by gate: per layer ``z = add(matmul(a, W), b)``,
    ``a = activation(z)``; then ``softmax`` if the net has one and the loss
    gate. For :func:`reference_impl.networks.preset_004` this is document
    004's Figure 1: ``X -> (*W1) -> (+b1) -> z2 -> sigma -> a2 -> (*W2) ->
    (+b2) -> z3 -> sigma -> yhat -> J``. Source: {004}.
    """
    if not isinstance(net, MLP):
        raise TypeError(f"net: expected an MLP, got {type(net).__name__}")
    tape = net.forward(params, x, target)  # validates every argument with the network's messages
    if net.cost == "cross_entropy" and np.any(tape.output <= 0):
        where = tuple(int(i) for i in np.argwhere(tape.output <= 0)[0])
        raise ValueError(
            f"params, x, target: the softmax output underflows to 0 at {where} in {tape.output.dtype}, and the "
            "gate graph feeds that rounded output to its cross_entropy gate (-log 0); MLP.value_and_grad "
            "evaluates the pair through the logits, or use cost='softmax_cross_entropy'"
        )
    g = Graph()
    a = g.variable("X", tape.x)
    x_node = a
    ws, bs, zs, acts = [], [], [], []
    for l, (rec, act) in enumerate(zip(tape.layers, net.activations, strict=True), start=1):
        w = g.variable(f"W{l}", rec.W)
        b = g.variable(f"b{l}", rec.b)
        prod = g.matmul(a, w, name="XW1" if l == 1 else f"a{l}W{l}")
        z = g.add(prod, b, name=f"z{l + 1}")
        last = l == net.depth and not net.softmax
        a = g.activation(act, z, name="yhat" if last else f"a{l + 1}")
        ws.append(w)
        bs.append(b)
        zs.append(z)
        acts.append(a)
    out = g.activation("softmax", a, name="yhat") if net.softmax else a
    y = g.variable("y", tape.target)
    j = g.loss(net.cost, out, y, net.reduction, name="J")
    return MLPGraph(net, g, x_node, tuple(ws), tuple(bs), tuple(zs), tuple(acts), out, y, j)


def graph_gradients(net: MLP, params: Any, x: Any, target: Any) -> NetworkGradients:
    """The loss and every gradient of ``net`` from the gate graph's backward
    sweep, in the layout of :meth:`MLP.value_and_grad` (so the two can be
    compared field by field)."""
    mg = mlp_graph(net, params, x, target)
    grads = mg.graph._sweep(mg.loss, None, "params, x, target")
    layers = tuple(
        LayerGradients(grads[a], grads[z], grads[w], grads[b])
        for w, b, z, a in zip(mg.weights, mg.biases, mg.z, mg.a, strict=True)
    )
    return NetworkGradients(mg.loss.value, grads[mg.output], layers, grads[mg.x])


for _obj in (Graph, Graph.backward, mlp_graph):
    fill_citations(_obj)
