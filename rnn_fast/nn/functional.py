"""Keras's functional API on rnn_fast's layers: ``Input`` makes a symbolic
tensor, calling a layer on symbolic tensors records a node of the graph
(``layer(x)``, ``layer([a, b])``, ``lstm(x, initial_state=[h, c])``; a
layer called twice is shared: one set of weights, two nodes), and
``models.Model(inputs, outputs)`` runs the graph.

The graph's order follows Keras's ``map_graph``: a depth-first walk from
the outputs, nodes run by decreasing depth (distance from the outputs), the
layers listed the same way, so a model's layers and weights come in the
order Keras gives them. A forward runs the nodes in that order, passing each
tensor's mask as Keras does; the backward runs them in reverse, summing the
gradients of a tensor used several times and of a shared layer's weights
over its nodes.
"""
import collections
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import backend
from .layers import Layer
from .naming import auto_name

Shape = Tuple[Optional[int], ...]


class KerasTensor:
    """A symbolic tensor: the shape (batch axis first, None where unknown),
    the dtype, and where it comes from (keras_history: the layer, which of
    its nodes, which of that node's outputs)."""

    __slots__ = ("shape", "dtype", "name", "_keras_history")

    def __init__(self, shape: Shape, dtype, layer: Layer, node_index: int, tensor_index: int,
                 name: Optional[str] = None):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.name = name
        self._keras_history = (layer, node_index, tensor_index)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype.name}, name={self.name}>"

    def __array__(self, *args, **kwargs):
        raise TypeError(f"{self!r} is symbolic (a node of a model's graph) and holds no values: build a "
                        f"Model(inputs, outputs) and call it, or predict, on arrays")

    def __bool__(self):
        raise TypeError(f"{self!r} is symbolic and has no truth value")


def is_symbolic(x) -> bool:
    if isinstance(x, KerasTensor):
        return True
    return isinstance(x, (list, tuple)) and len(x) > 0 and any(isinstance(t, KerasTensor) for t in x)


class Node:
    """One call of a layer in the graph: its inputs (args: a tensor or a list
    of them; initial_state: a list of them, for recurrent layers) and outputs."""

    def __init__(self, layer: Layer, args, initial_state: Optional[List[KerasTensor]],
                 outputs: List[KerasTensor]):
        self.layer, self.args, self.initial_state, self.outputs = layer, args, initial_state, outputs
        self.is_input = args is None

    @property
    def input_tensors(self) -> List[KerasTensor]:
        if self.args is None:
            return []
        flat = list(self.args) if isinstance(self.args, list) else [self.args]
        return flat + list(self.initial_state or [])

    @property
    def parent_nodes(self) -> List["Node"]:
        return [t._keras_history[0]._inbound_nodes[t._keras_history[1]] for t in self.input_tensors]


def _nodes_of(layer: Layer) -> List[Node]:
    if "_inbound_nodes" not in layer.__dict__:
        layer._inbound_nodes = []
    return layer._inbound_nodes


class InputLayer(Layer):
    """The layer behind Input(): no weights, one node without inputs."""

    base_name = "input_layer"

    def __init__(self, shape: Optional[Sequence[Optional[int]]] = None, batch_size: Optional[int] = None,
                 dtype=None, name: Optional[str] = None, batch_shape: Optional[Sequence[Optional[int]]] = None,
                 **kwargs):
        super().__init__(name=name)
        for key, value in kwargs.items():  # Keras's: accepted when off
            if key in ("sparse", "ragged") and not value:
                continue
            raise ValueError(f"Input(): {key}={value!r} is not supported")
        if batch_shape is None:
            if shape is None:
                raise ValueError("Input(): shape is required (the shape of one sample, without the batch axis), "
                                 "e.g. Input(shape=(None, 8)) for sequences of 8 features")
            if isinstance(shape, (int, np.integer)):
                shape = (shape,)
            batch_shape = (batch_size,) + tuple(shape)
        batch_shape = tuple(None if d is None else int(d) for d in batch_shape)
        if any(d is not None and d < 0 for d in batch_shape) or len(batch_shape) < 1:
            raise ValueError(f"Input(): shape must hold non-negative sizes or None, got {batch_shape[1:]}")
        self.batch_shape = batch_shape
        self.dtype = np.dtype(dtype if dtype is not None else backend.floatx())  # int for Embedding inputs
        if self.dtype.kind not in "fiub":
            raise ValueError(f"Input(): dtype must be numeric, got {self.dtype}")
        self.input_shape = batch_shape[1:]
        self.built = True
        tensor = KerasTensor(batch_shape, self.dtype, self, 0, 0, name=self.name)
        _nodes_of(self).append(Node(self, None, None, [tensor]))
        self.output_tensor = tensor

    def get_config(self) -> Dict[str, Any]:
        return {"batch_shape": list(self.batch_shape), "dtype": self.dtype.name, "name": self.name}

    def forward(self, x, training: bool = False):
        return x

    def backward(self, dy):
        return dy


def Input(shape=None, batch_size=None, dtype=None, name=None, batch_shape=None, **kwargs) -> KerasTensor:
    """keras.Input: a symbolic tensor of shape (batch_size,) + shape to build a Model from."""
    return InputLayer(shape, batch_size, dtype, name=name, batch_shape=batch_shape, **kwargs).output_tensor


def _check_tensor(t, who: str) -> KerasTensor:
    if not isinstance(t, KerasTensor):
        raise TypeError(f"{who}: every input must be a symbolic tensor (from Input() or a layer's output), "
                        f"got {type(t).__name__}")
    return t


def call(layer: Layer, x, initial_state=None, training=None, mask=None) -> Any:
    """layer(x) on symbolic tensors: builds the layer if need be, checks
    the shapes, records the node and returns its output tensor(s)."""
    who = f"{layer.name} ({type(layer).__name__})"
    if mask is not None:
        raise ValueError(f"{who}: mask= is not supported in a functional call; masks come from Masking and "
                         f"Embedding(mask_zero=True) and pass along the graph by themselves")
    if training is not None:
        raise ValueError(f"{who}: training= is not supported in a functional call; fit trains and "
                         f"predict/evaluate infer")
    multi = getattr(layer, "_takes_list", False)
    if multi:
        if not isinstance(x, (list, tuple)) or len(x) < 2:
            raise ValueError(f"{who}: expects a list of at least 2 tensors, got {x!r}")
        args: Any = [_check_tensor(t, who) for t in x]
        in_shape: Any = [t.shape[1:] for t in args]
    else:
        if isinstance(x, (list, tuple)):
            raise ValueError(f"{who}: expects one tensor, got a list of {len(x)} (merge tensors with "
                             f"Concatenate/Add first)")
        args = _check_tensor(x, who)
        in_shape = args.shape[1:]
    states = None
    if initial_state is not None:
        from .layers import _Recurrent
        if not isinstance(layer, _Recurrent):
            raise ValueError(f"{who}: initial_state= is for SimpleRNN, LSTM and GRU")
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        states = [_check_tensor(t, f"{who}: initial_state") for t in states]
        if len(states) != layer._n_states:
            raise ValueError(f"{who}: initial_state must hold {layer._n_states} tensor(s) of shape "
                             f"(batch, {layer.units}), got {len(states)}")
        for t in states:
            if len(t.shape) != 2 or t.shape[1] not in (None, layer.units):
                raise ValueError(f"{who}: initial_state tensors must have shape (batch, {layer.units}), got "
                                 f"{t.shape}")
    if not layer.built:
        layer.build(in_shape)
    else:
        layer._check_call_shape(in_shape)
    out_shape = layer.output_shape_for(in_shape)
    shapes = out_shape if isinstance(out_shape, list) else [out_shape]
    index = len(_nodes_of(layer))
    dtype = args[0].dtype if multi else layer.dtype
    outputs = [KerasTensor((None,) + tuple(s), layer.dtype if not multi else dtype, layer, index, i)
               for i, s in enumerate(shapes)]
    _nodes_of(layer).append(Node(layer, args, states, outputs))
    return outputs if isinstance(out_shape, list) else outputs[0]


# ---------------------------------------------------------------------------
# The graph
# ---------------------------------------------------------------------------
class Graph:
    """The nodes between a model's inputs and outputs, in Keras's order."""

    def __init__(self, inputs: List[KerasTensor], outputs: List[KerasTensor]):
        for t in inputs:
            layer = t._keras_history[0]
            if not isinstance(layer, InputLayer):
                raise ValueError(f"Model(): inputs must come from Input(), got {t!r} made by {layer.name}")
        self.inputs, self.outputs = inputs, outputs
        ordered, first_seen = self._build_map()
        depth: Dict[Node, int] = {}
        layer_depth: Dict[Layer, int] = {}
        in_graph = set(ordered)
        for node in reversed(ordered):
            d = depth.setdefault(node, 0)
            d = max(d, layer_depth.get(node.layer, 0))
            layer_depth[node.layer] = d
            depth[node] = d
            for parent in node.parent_nodes:
                if parent in in_graph:
                    depth[parent] = max(d + 1, depth.get(parent, 0))
        for t in inputs:  # inputs that no output needs
            layer = t._keras_history[0]
            if layer not in layer_depth:
                layer_depth[layer], first_seen[layer] = 0, -1
                depth[_nodes_of(layer)[0]] = 0
        by_depth = collections.defaultdict(list)
        for layer, d in layer_depth.items():
            by_depth[d].append(layer)
        self.layers: List[Layer] = []
        for d in sorted(by_depth, reverse=True):
            self.layers += sorted(by_depth[d], key=lambda l: first_seen[l])
        nodes_by_depth = collections.defaultdict(list)
        for node, d in depth.items():
            nodes_by_depth[d].append(node)
        self.nodes: List[Node] = []  # in running order, input nodes left out
        known = {id(t) for t in inputs}
        for d in sorted(nodes_by_depth, reverse=True):
            for node in nodes_by_depth[d]:
                if node.is_input:
                    continue
                for t in node.input_tensors:
                    if id(t) not in known:
                        raise ValueError(f"Model(): the graph is disconnected: {node.layer.name} needs {t!r}, "
                                         f"which does not come from the model's inputs "
                                         f"{[i.name for i in inputs]}")
                known.update(id(t) for t in node.outputs)
                self.nodes.append(node)
        names = [layer.name for layer in self.layers]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"Model(): layer names must be unique in a model; {dup} are used more than once")
        self.node_count = collections.Counter(node.layer for node in self.nodes)

    def _build_map(self):
        finished, in_progress = set(), set()
        ordered: List[Node] = []
        first_seen: Dict[Layer, int] = {}
        input_ids = {id(t) for t in self.inputs}

        def visit(t: KerasTensor) -> None:
            layer, node_index, _ = t._keras_history
            node = _nodes_of(layer)[node_index]
            if node in finished:
                return
            if not node.is_input and id(t) in input_ids:
                finished.add(node)
                return
            if node in in_progress:
                raise ValueError(f"Model(): {t!r} from {layer.name} is part of a cycle")
            first_seen.setdefault(layer, len(first_seen))
            in_progress.add(node)
            for parent in node.input_tensors:
                visit(parent)
            finished.add(node)
            in_progress.discard(node)
            ordered.append(node)

        for t in self.outputs:
            visit(t)
        return ordered, first_seen

    def node_index(self, node: Node) -> int:
        return _nodes_of(node.layer).index(node)

    # ---- running ---------------------------------------------------------------
    def forward(self, xs: List[np.ndarray], training: bool):
        """The outputs (a list), their masks, and the tape the backward reads:
        each tensor's value and each node's call state."""
        values: Dict[int, np.ndarray] = {}
        masks: Dict[int, Optional[np.ndarray]] = {}
        for t, a in zip(self.inputs, xs):
            values[id(t)], masks[id(t)] = a, None
        calls: Dict[Node, Any] = {}
        for node in self.nodes:
            layer = node.layer
            if isinstance(node.args, list):
                x = [values[id(t)] for t in node.args]
                m = [masks[id(t)] for t in node.args]
                has_mask = any(v is not None for v in m)
            else:
                x, m = values[id(node.args)], masks[id(node.args)]
                has_mask = m is not None
            kw: Dict[str, Any] = {}
            if node.initial_state:
                kw["initial_state"] = [values[id(t)] for t in node.initial_state]
            if has_mask and layer._takes_mask:
                kw["mask"] = m
            y = layer.forward(x, training=training, **kw)
            out_mask = layer.compute_mask(x, m)
            ys = y if isinstance(y, list) else [y]
            for i, (t, v) in enumerate(zip(node.outputs, ys)):
                values[id(t)], masks[id(t)] = v, out_mask if i == 0 else None
            calls[node] = layer._call_state()
        return [values[id(t)] for t in self.outputs], [masks[id(t)] for t in self.outputs], (values, calls)

    def backward(self, douts: List[Optional[np.ndarray]], tape) -> List[Optional[np.ndarray]]:
        """From the outputs' gradients, fills every layer's grads (summed over
        a shared layer's nodes; zero for a layer no gradient reaches) and
        returns the inputs' gradients."""
        values, calls = tape
        grads: Dict[int, np.ndarray] = {}

        def add(t: KerasTensor, g) -> None:
            if g is None:
                return
            old = grads.get(id(t))
            grads[id(t)] = g if old is None else old + g

        for t, g in zip(self.outputs, douts):
            add(t, g)
        summed: Dict[Layer, List[np.ndarray]] = {}
        for node in reversed(self.nodes):
            layer = node.layer
            dys = [grads.pop(id(t), None) for t in node.outputs]
            if all(d is None for d in dys):
                continue
            layer._restore_call_state(calls[node])
            if len(dys) == 1:
                dy = dys[0]
            else:  # a list output: zeros where no gradient came, except a recurrent layer's states
                keep_none = getattr(layer, "_n_states", 0) and getattr(layer, "return_state", False)
                dy = [d if d is not None or (keep_none and i > 0) else np.zeros_like(values[id(t)])
                      for i, (t, d) in enumerate(zip(node.outputs, dys))]
            dx = layer.backward(dy)
            if layer.grads:
                if layer in summed:
                    for s, g in zip(summed[layer], layer.grads):
                        s += g
                elif self.node_count[layer] > 1:
                    summed[layer] = [g.copy() for g in layer.grads]
                else:
                    summed[layer] = layer.grads
            if isinstance(node.args, list):
                for t, g in zip(node.args, dx):
                    add(t, g)
            else:
                add(node.args, dx)
            if node.initial_state:
                for t, g in zip(node.initial_state, layer.state_grads):
                    add(t, g)
        for layer in self.layers:
            if layer in summed:
                if summed[layer] is not layer.grads:
                    for g, s in zip(layer.grads, summed[layer]):
                        g[...] = s
            else:
                for g in layer.grads:
                    g[...] = 0
        return [grads.get(id(t)) for t in self.inputs]


# ---------------------------------------------------------------------------
# Configs: Keras's functional layout (layers with their inbound nodes, the
# model's input and output layers as [name, node index, tensor index])
# ---------------------------------------------------------------------------
def node_config(node: Node, ref) -> Dict[str, Any]:
    """A node as Keras's config writes it: its tensors as __keras_tensor__
    entries whose keras_history is ref(tensor) = [layer name, node, index]."""
    def tensor(t: KerasTensor) -> Dict[str, Any]:
        return {"class_name": "__keras_tensor__",
                "config": {"shape": list(t.shape), "dtype": t.dtype.name, "keras_history": ref(t)}}
    args = [[tensor(t) for t in node.args]] if isinstance(node.args, list) else [tensor(node.args)]
    kwargs: Dict[str, Any] = {}
    if node.initial_state:
        kwargs["initial_state"] = [tensor(t) for t in node.initial_state]
    return {"args": args, "kwargs": kwargs}


def rebuild(config: Dict[str, Any], make_layer) -> Tuple[List[KerasTensor], List[KerasTensor], bool, bool]:
    """The inputs and outputs of a functional config's graph, its layers made
    by make_layer(spec) and called node by node in Keras's order (a node
    waits until the nodes it needs are made), and whether the config gave
    one input and one output (not lists)."""
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ValueError("Model.from_config(): config must be a dict with a 'layers' list, as get_config() returns")
    layers: Dict[str, Layer] = {}
    pending: Dict[str, List[Dict[str, Any]]] = {}
    order: List[str] = []
    for spec in config["layers"]:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise ValueError(f"Model.from_config(): every layer needs a name, got {spec!r}")
        name = spec["name"]
        if name in layers:
            raise ValueError(f"Model.from_config(): layer name {name!r} is used twice")
        layers[name] = make_layer(spec)
        pending[name] = list(spec.get("inbound_nodes") or [])
        order.append(name)

    def tensor(ref) -> KerasTensor:
        if isinstance(ref, dict) and ref.get("class_name") == "__keras_tensor__":
            ref = ref["config"]["keras_history"]
        name, node_index, tensor_index = ref
        nodes = _nodes_of(layers[name]) if name in layers else None
        if nodes is None or node_index >= len(nodes):
            raise KeyError(name)
        return nodes[node_index].outputs[tensor_index]

    progress = True
    while progress and any(pending.values()):
        progress = False
        for name in order:
            while pending[name]:
                spec = pending[name][0]
                try:
                    args = spec["args"][0]
                    x = [tensor(a) for a in args] if isinstance(args, list) else tensor(args)
                    states = spec.get("kwargs", {}).get("initial_state")
                    states = None if states is None else [tensor(s) for s in states]
                except KeyError:
                    break  # its inputs are not made yet
                layers[name](x, **({"initial_state": states} if states is not None else {}))
                pending[name].pop(0)
                progress = True
    left = [n for n in order if pending[n]]
    if left:
        raise ValueError(f"Model.from_config(): the nodes of {left} need tensors the config never makes")
    def single(value) -> bool:  # Keras writes one tensor's [name, node, index] alone, several as a list
        return isinstance(value, list) and bool(value) and isinstance(value[0], str)

    try:
        ins, outs = config["input_layers"], config["output_layers"]
        inputs = [tensor(r) for r in ([ins] if single(ins) else ins)]
        outputs = [tensor(r) for r in ([outs] if single(outs) else outs)]
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ValueError(f"Model.from_config(): bad input_layers/output_layers ({e!r})") from None
    return inputs, outputs, single(ins), single(outs)


def default_name() -> str:
    return auto_name("functional")
