"""Keras-style layers whose recurrent and affine math runs on rnn_fast's C++
kernels.

Every layer is a forward/backward pair over NumPy arrays with a leading
batch axis: ``forward(x, training)`` returns the output and keeps what
``backward(dy)`` needs; ``backward`` returns the gradient of the input and
stores the gradients of the layer's weights in ``self.grads`` (same order as
``self.weights``). Names, arguments, defaults and weight layouts follow Keras,
so weights move between the two with ``get_weights`` / ``set_weights``.

Masks follow Keras 3: a (batch, timesteps) boolean array of the steps that
hold data, made by ``Masking`` and ``Embedding(mask_zero=True)``, passed on
by the layers that support masking (``compute_mask``), consumed by the
recurrent layers (which run the masked steps as rnn_fast's ``lengths=``) and
by the model's loss and metrics.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _core
from . import activations, backend, general, initializers, regularizers
from .naming import auto_name

Shape = Tuple[Optional[int], ...]


class Layer:
    """Base class: weights, their gradients and regularizers, build-on-first-call."""

    base_name = "layer"  # default names are base_name, base_name_1, ...

    def __init__(self, name: Optional[str] = None, input_shape: Optional[Sequence[Optional[int]]] = None,
                 dtype: Optional[str] = None, trainable: bool = True):
        self.name = name if name is not None else auto_name(self.base_name)
        self.input_shape: Optional[Shape] = None if input_shape is None else tuple(input_shape)
        self.dtype = np.dtype(dtype if dtype is not None else backend.floatx())
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"{self.name}: dtype must be float32 or float64, got {self.dtype}")
        self.trainable = bool(trainable)
        self.built = False
        self.weight_names: List[str] = []
        self.weights: List[np.ndarray] = []
        self.grads: List[np.ndarray] = []
        self._regularizers: List[Optional[regularizers.Regularizer]] = []

    # ---- weights -----------------------------------------------------------
    def add_weight(self, name: str, shape: Tuple[int, ...], initializer: str,
                   regularizer: Optional[regularizers.Regularizer] = None) -> np.ndarray:
        w = initializers.initialize(initializer, shape, self.dtype)
        self.weight_names.append(name)
        self.weights.append(w)
        self.grads.append(np.zeros(w.shape, w.dtype))  # (not zeros_like, which writes every page)
        self._regularizers.append(regularizer)
        return w

    def get_weights(self) -> List[np.ndarray]:
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        self._assign(self._checked(weights))

    def _assign(self, checked: List[np.ndarray]) -> None:
        for w, new in zip(self.weights, checked):
            w[...] = new  # in place: optimizers and wrappers keep referring to the same arrays

    def _checked(self, weights: Sequence[np.ndarray]) -> List[np.ndarray]:
        """set_weights's arrays, each checked (all before any is written: a refused call changes nothing)."""
        if len(weights) != len(self.weights):
            raise ValueError(f"{self.name}.set_weights(): expected {len(self.weights)} arrays "
                             f"({', '.join(self.weight_names)}), got {len(weights)}")
        checked = []
        for name, w, new in zip(self.weight_names, self.weights, weights):
            new = np.asarray(new)
            if new.dtype.kind not in "fiub":  # complex, strings, records, objects: no value to take without loss
                raise TypeError(f"{self.name}.set_weights(): {name} must be a real numeric array, got dtype "
                                f"{new.dtype}")
            if new.shape != w.shape:
                raise ValueError(f"{self.name}.set_weights(): {name} must have shape {w.shape}, got {new.shape}")
            checked.append(new)
        return checked

    def count_params(self) -> int:
        return int(sum(w.size for w in self.weights))

    def regularization_loss(self) -> float:
        return sum(r(w) for r, w in zip(self._regularizers, self.weights) if r is not None)

    def add_regularization_grads(self) -> None:
        for r, w, g in zip(self._regularizers, self.weights, self.grads):
            if r is not None:
                g += r.gradient(w)

    # ---- structure ---------------------------------------------------------
    def build(self, input_shape: Shape) -> None:
        """input_shape excludes the batch axis."""
        self.input_shape = tuple(input_shape)
        self.built = True

    def output_shape_for(self, input_shape: Shape) -> Shape:
        return input_shape

    def get_config(self) -> Dict[str, Any]:
        cfg = {"name": self.name, "dtype": self.dtype.name, "trainable": self.trainable}
        if self.input_shape is not None:
            cfg["input_shape"] = list(self.input_shape)
        return cfg

    def reset_states(self) -> None:
        pass

    # ---- masks (Keras's) ----------------------------------------------------
    # Whether the layer passes a mask on (Keras's supports_masking); one that
    # does not drops it. Layers that read the mask (_takes_mask) get it as
    # forward's mask= keyword.
    supports_masking = False
    _takes_mask = False

    def compute_mask(self, x, mask):
        """The mask of the output, given the input and its mask."""
        return mask if self.supports_masking else None

    def _check_rank(self, x: np.ndarray, ranks: Tuple[int, ...]) -> None:
        if x.ndim not in ranks:
            want = " or ".join(f"{r}-D" for r in ranks)
            raise ValueError(f"{self.name} ({type(self).__name__}): input must be {want} with the batch "
                             f"axis first, got shape {x.shape}")

    def _check_features(self, x: np.ndarray) -> None:
        """The last axis must match what the layer was built for."""
        want = self.input_shape[-1] if self.input_shape else None
        if want is not None and x.shape[-1] != want:
            raise ValueError(f"{self.name} ({type(self).__name__}): input's last axis must be {want} "
                             f"(built for input shape {(None,) + self.input_shape}), got shape {x.shape}")

    def __call__(self, x, *args, **kwargs):
        """On arrays: builds the layer at its first call and runs forward
        (keywords: training, and initial_state for the recurrent layers). On
        symbolic tensors (Input() and layers' outputs): adds a node to a
        functional graph (functional.py) and returns its output tensor(s)."""
        from . import functional
        if functional.is_symbolic(x) or functional.is_symbolic(kwargs.get("initial_state")):
            return functional.call(self, x, *args, **kwargs)
        x = [np.asarray(a) for a in x] if self._takes_list else np.asarray(x)
        if not self.built:
            self.build([tuple(a.shape[1:]) for a in x] if self._takes_list else tuple(x.shape[1:]))
        return self.forward(x, *args, **kwargs)

    # A merge layer takes a list of tensors (Concatenate, Add, ...).
    _takes_list = False

    def _check_call_shape(self, input_shape) -> None:
        """A built layer called on a new tensor (a shared layer): the
        features must be those it was built for."""
        want = self.input_shape
        if want is not None and len(want) and len(input_shape) and want[-1] is not None \
                and input_shape[-1] is not None and (len(want) != len(input_shape) or want[-1] != input_shape[-1]):
            raise ValueError(f"{self.name} ({type(self).__name__}) was built for input shape {(None,) + tuple(want)} "
                             f"and cannot be called on shape {(None,) + tuple(input_shape)}")

    # What backward needs from a forward, kept so that a layer called at
    # several nodes of a graph (shared) backpropagates each call: every
    # layer keeps it in _ctx; layers holding layers add theirs.
    _ctx: Any = None

    def _call_state(self):
        return self._ctx

    def _restore_call_state(self, state) -> None:
        self._ctx = state

    @property
    def output(self):
        """The output tensor(s) of the layer's first functional call (Keras's layer.output)."""
        outputs = self._node(0, "output").outputs
        return outputs[0] if len(outputs) == 1 else outputs

    @property
    def input(self):
        """The input tensor(s) of the layer's first functional call (Keras's layer.input)."""
        node = self._node(0, "input")
        return node.outputs[0] if node.is_input else node.args

    def _node(self, index: int, what: str):
        nodes = self.__dict__.get("_inbound_nodes") or []
        if len(nodes) <= index:
            raise AttributeError(f"{self.name} has no {what}: it was not called on a symbolic tensor (Input())")
        return nodes[index]

    def forward(self, x: np.ndarray, training: bool = False):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    # Whether forward keeps what backward needs. Models turn it off for
    # inference passes (predict, evaluate), where the recurrent kernels then
    # run without writing a cache. _borrow: a model's training pass, whose
    # backward follows with nothing writing the arrays in between: the
    # recurrent kernels' caches refer to their inputs rather than copy them.
    _keep_cache = True
    _borrow = False

    def _set_keep_cache(self, keep: bool, borrow: bool = False) -> None:
        self._keep_cache = keep
        self._borrow = borrow

    def _freeze(self, frozen: bool) -> None:
        """Models call this around passes whose batches all see the same
        weights (predict, evaluate); layers that can use it pack their
        weights once for those passes."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


def positive_int(value, who: str) -> int:
    """value as an int, or a ValueError naming it unless it is an integer >= 1."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{who} must be a positive integer, got {value!r}")
    return int(value)


def _as_float(x, dtype: np.dtype, who: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{who}: input must be a real numeric array, got dtype {a.dtype}")
    return a.astype(dtype, copy=False)


# ---------------------------------------------------------------------------
# Recurrent layers
# ---------------------------------------------------------------------------
class _Recurrent(Layer):
    """What SimpleRNN, LSTM and GRU share: the sequence in and out, returned
    states, running backwards, state carried across batches (stateful), input
    dropout, and the kernel calls' gradients."""

    _n_states = 1
    _gates = 1
    # While rnn_fast.diagnostics probes the layer: a dict that takes its
    # input, initial states and (after a backward) the gradient of its steps.
    _probe: Optional[Dict[str, Any]] = None

    def __init__(self, units: int, activation: str = "tanh", use_bias: bool = True,
                 kernel_initializer: str = "glorot_uniform", recurrent_initializer: str = "orthogonal",
                 bias_initializer: str = "zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 return_sequences: bool = False, return_state: bool = False, go_backwards: bool = False,
                 stateful: bool = False, unroll: bool = False, zero_output_for_mask: bool = False, **kwargs):
        super().__init__(**kwargs)
        for what, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not isinstance(rate, (int, float, np.floating, np.integer)) or not 0.0 <= rate < 1.0:
                raise ValueError(f"{self.name}: {what} must be in [0, 1), got {rate!r}")
        self.recurrent_dropout = float(recurrent_dropout)
        self.units = positive_int(units, f"{self.name}: units")
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.dropout = float(dropout)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.states: Optional[List[np.ndarray]] = None  # carried (N,H) states of a stateful layer
        self.state_grads: Optional[List[np.ndarray]] = None  # gradients of the initial states, after backward
        self._ctx: Dict[str, Any] = {}

    def build(self, input_shape: Shape) -> None:
        if len(input_shape) != 2:
            raise ValueError(f"{self.name} ({type(self).__name__}): expects input of shape (batch, timesteps, "
                             f"features), got {(None,) + tuple(input_shape)}")
        D, G = input_shape[-1], self._gates * self.units
        self.add_weight("kernel", (D, G), self.kernel_initializer, self.kernel_regularizer)
        self.add_weight("recurrent_kernel", (self.units, G), self.recurrent_initializer, self.recurrent_regularizer)
        if self.use_bias:
            b = self.add_weight("bias", self._bias_shape(), self.bias_initializer, self.bias_regularizer)
            self._init_bias(b)
        super().build(input_shape)

    def _bias_shape(self) -> Tuple[int, ...]:
        return (self._gates * self.units,)

    def _init_bias(self, b: np.ndarray) -> None:
        pass

    def output_shape_for(self, input_shape: Shape) -> Union[Shape, List[Shape]]:
        T = input_shape[0]
        out = (T, self.units) if self.return_sequences else (self.units,)
        return [out] + [(self.units,)] * self._n_states if self.return_state else out

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        cfg.update(units=self.units, use_bias=self.use_bias, kernel_initializer=self.kernel_initializer,
                   recurrent_initializer=self.recurrent_initializer, bias_initializer=self.bias_initializer,
                   kernel_regularizer=_reg_config(self.kernel_regularizer),
                   recurrent_regularizer=_reg_config(self.recurrent_regularizer),
                   bias_regularizer=_reg_config(self.bias_regularizer), dropout=self.dropout,
                   recurrent_dropout=self.recurrent_dropout,
                   return_sequences=self.return_sequences, return_state=self.return_state,
                   go_backwards=self.go_backwards, stateful=self.stateful,
                   zero_output_for_mask=self.zero_output_for_mask)
        return cfg

    def reset_states(self, states: Optional[Sequence[np.ndarray]] = None) -> None:
        """Forgets the carried state (zeros at the next batch), or sets it."""
        if states is None:
            self.states = None
            return
        if len(states) != self._n_states:
            raise ValueError(f"{self.name}.reset_states(): expected {self._n_states} arrays, got {len(states)}")
        self.states = [_as_float(s, self.dtype, f"{self.name}.reset_states()").copy() for s in states]

    def _initial_states(self, N: int, initial_state) -> List[np.ndarray]:
        if initial_state is not None:
            if len(initial_state) != self._n_states:
                raise ValueError(f"{self.name}: initial_state must hold {self._n_states} arrays of shape "
                                 f"(batch, {self.units}), got {len(initial_state)}")
            return [_as_float(s, self.dtype, f"{self.name}: initial_state") for s in initial_state]
        if self.stateful and self.states is not None:
            if self.states[0].shape[0] != N:
                raise ValueError(f"{self.name} is stateful and holds states of batch size "
                                 f"{self.states[0].shape[0]}, got a batch of {N}: feed equal batches "
                                 f"(fit/predict with shuffle=False and a batch_size that divides the data) "
                                 f"or call reset_states()")
            return self.states
        return [np.zeros((N, self.units), self.dtype) for _ in range(self._n_states)]

    supports_masking = True
    _takes_mask = True

    def compute_mask(self, x, mask):
        return mask if self.return_sequences else None

    def _lengths(self, mask, N: int, T: int) -> Optional[np.ndarray]:
        """A mask's rows as lengths: each row's True steps must come first
        (right padding), which the kernels run as lengths=."""
        if mask is None:
            return None
        m = np.asarray(mask)
        if m.shape != (N, T):
            raise ValueError(f"{self.name}: mask must have shape (batch, timesteps) = {(N, T)}, got {m.shape}")
        m = m.astype(bool, copy=False)
        lengths = m.sum(axis=1)
        gaps = np.flatnonzero((m != (np.arange(T)[None, :] < lengths[:, None])).any(axis=1))
        if gaps.size:
            raise ValueError(f"{self.name}: only masks whose unmasked steps come first in every row (right-padded "
                             f"sequences) run on the kernels' lengths=; row {gaps[0]} of this mask has a masked step "
                             f"before an unmasked one. Pad sequences at the end (Keras's pad_sequences("
                             f"padding='post'))")
        return lengths

    def forward(self, x: np.ndarray, training: bool = False, initial_state=None, mask=None):
        x = _as_float(x, self.dtype, self.name)
        self._check_rank(x, (3,))
        self._check_features(x)
        N, T = x.shape[0], x.shape[1]
        lengths = self._lengths(mask, N, T)
        drop = in_masks = rec_masks = None
        rec_drop = training and self.recurrent_dropout > 0
        if training and self.dropout > 0:
            if rec_drop and self._gates > 1:
                # Keras's cell with recurrent dropout: a mask for each gate block's input
                in_masks = self._dropout_masks(self.dropout, N, x.shape[2])
            else:
                # Keras: one mask per sequence (a sample's features dropped at every step alike).
                drop = self._dropout_masks(self.dropout, N, x.shape[2], gates=1)[0][:, None, :]
                x = x * drop
        if rec_drop:
            rec_masks = self._dropout_masks(self.recurrent_dropout, N, self.units)
        states = self._initial_states(N, initial_state)
        if self._probe is not None:  # rnn_fast.diagnostics follows this layer's steps
            self._probe.update(x=x, states=[np.array(s) for s in states], lengths=lengths)
        if rec_drop or not self._fused():
            bias = self._bias()
            h, final, cache = general.forward(
                "lstm" if self._gates == 4 else "simple", x, states, self.weights[0], self.weights[1], bias,
                self.activation, getattr(self, "recurrent_activation", "sigmoid"), self.go_backwards, lengths,
                in_masks, rec_masks, self._keep_cache)
        else:
            h, final, cache = self._run(x, states, self._keep_cache, lengths)
        if self.stateful:
            self.states = [s.copy() for s in final]
        self._ctx = {"cache": cache, "mask": drop, "N": N, "T": T, "lengths": lengths}
        # Keras: with go_backwards the returned sequence is in processing order (reversed).
        seq = h[:, ::-1] if self.go_backwards else h
        if lengths is not None:
            seq, last = self._masked_outputs(seq, final[0], lengths)
        else:
            last = final[0]
        out = seq if self.return_sequences else last
        return [out] + list(final) if self.return_state else out

    def _dropout_masks(self, rate: float, N: int, width: int, gates: Optional[int] = None) -> np.ndarray:
        """(gates, N, width) Keras dropout masks: 0 or 1 / (1 - rate), one per sequence and gate block."""
        keep = 1.0 - rate
        rng = backend.rng()
        masks = np.stack([backend.batch_random(rng, (N, width)) < keep
                          for _ in range(gates or self._gates)]).astype(self.dtype)
        masks /= self.dtype.type(keep)
        return masks

    def _fused(self) -> bool:
        """Whether the activations are those the fused kernels run."""
        return True

    # Keras's outputs at masked steps (its backends' rnn with a mask): a
    # masked step outputs the step before's output (zeros before the first
    # step), or zeros with zero_output_for_mask (Bidirectional sets it when
    # returning sequences); the last output is the last step's, masked or
    # not. In processing order, a right-padded row's masked steps come after
    # its steps (before them with go_backwards, where they output zeros
    # either way).
    def _fills(self) -> bool:
        return not (self.zero_output_for_mask or self.go_backwards)

    def _masked_outputs(self, seq, hT, lengths):
        T = seq.shape[1]
        if self._fills():
            pad = np.arange(T)[None, :] >= lengths[:, None]
            seq = np.where(pad[:, :, None], np.where((lengths > 0)[:, None], hT, 0)[:, None, :], seq)
        last = seq[:, -1] if T > 0 else np.zeros_like(hT)
        return seq.astype(self.dtype, copy=False), np.array(last, dtype=self.dtype)

    def backward(self, dy):
        """dy: the gradient of the output, or with return_state the list
        [d output, d h_T(, d c_T)] (None entries mean zero)."""
        ctx = self._ctx
        if not ctx:
            raise RuntimeError(f"{self.name}.backward() called before forward()")
        if ctx["cache"] is None:
            raise RuntimeError(f"{self.name}.backward() after an inference forward, which keeps no cache")
        N, T, H = ctx["N"], ctx["T"], self.units
        dstates: List[Optional[np.ndarray]] = [None] * self._n_states
        if self.return_state:
            dy, dstates = dy[0], list(dy[1:])
        lengths = ctx["lengths"]
        if lengths is not None:
            return self._masked_backward(dy, dstates, lengths, N, T, H)
        last = 0 if self.go_backwards else T - 1  # kernel time index of the final state
        if self.return_sequences:
            # The kernel only reads dh: dy itself, unless a state's gradient is added below.
            dh = dy[:, ::-1] if self.go_backwards else dy
            dh = np.asarray(dh, dtype=self.dtype) if dstates[0] is None else np.array(dh, dtype=self.dtype)
        else:
            dh = np.zeros((N, T, H), self.dtype)
            if dy is not None:
                dh[:, last] = dy
        if dstates[0] is not None:
            dh[:, last] += dstates[0]
        return self._finish_backward(dh, dstates)

    def _masked_backward(self, dy, dstates, lengths, N, T, H):
        """backward after a masked forward, through _masked_outputs: the
        gradients of the copies of a row's output go to the step they copy."""
        dseq = np.array(dy, dtype=self.dtype) if self.return_sequences else np.zeros((N, T, H), self.dtype)
        if not self.return_sequences and dy is not None and T > 0:
            dseq[:, -1] += dy
        ran = lengths > 0
        rows = np.arange(N)[ran]
        if self._fills():
            pad = np.arange(T)[None, :] >= lengths[:, None]
            dseq[rows, lengths[ran] - 1] += np.where(pad[:, :, None], dseq, 0).sum(axis=1)[ran]
        dh = dseq[:, ::-1].copy() if self.go_backwards else dseq  # the kernel's time order
        dh0_direct = None
        if dstates[0] is not None:
            final = np.zeros_like(lengths) if self.go_backwards else lengths - 1  # the final state's time
            dh[rows, final[ran]] += np.asarray(dstates[0], self.dtype)[ran]
            dh0_direct = np.where(ran[:, None], 0, dstates[0])  # a row of length 0: h_T is h0
        dx = self._finish_backward(dh, dstates)
        if dh0_direct is not None:
            self.state_grads[0] = self.state_grads[0] + dh0_direct
        return dx

    def _finish_backward(self, dh, dstates):
        ctx = self._ctx
        if self._probe is not None:  # the gradient of every step's h (kernel time order) and of c_T
            self._probe.update(dh=np.array(dh), dc=None if len(dstates) < 2 or dstates[1] is None
                               else np.array(dstates[1]))
        if isinstance(ctx["cache"], dict):  # the general path's
            dx, dinit, dWx, dWh, db = general.backward(np.asarray(dh, self.dtype), ctx["cache"], dstates[1:])
        else:
            dx, dinit, dWx, dWh, db = self._grad(dh, ctx["cache"], dstates[1:])
        for g, kernel_g in zip(self.grads, (dWx, dWh, db)):  # no db without a bias
            g[...] = kernel_g
        self.state_grads = dinit
        if ctx["mask"] is not None:
            dx *= ctx["mask"]
        return dx

    def _bias(self) -> np.ndarray:
        return self.weights[2] if self.use_bias else np.zeros(self._gates * self.units, self.dtype)

    # While frozen (a predict or evaluate pass), inference forwards run on the
    # weights packed once (an LSTMInference, GRUInference or RNNInference), not packed anew
    # by every batch's kernel call; the packing is dropped when the pass ends.
    _frozen = False
    _packed = None

    def _freeze(self, frozen: bool) -> None:
        self._frozen = frozen
        self._packed = None

    def _inference(self):
        """The packed weights for this inference forward, or None (training,
        or not frozen)."""
        if self._keep_cache or not self._frozen:
            return None
        if self._packed is None:
            self._packed = self._pack()
        return self._packed

    def _pack(self):
        raise NotImplementedError


class SimpleRNN(_Recurrent):
    """keras.layers.SimpleRNN: h_t = activation(x_t kernel + h_{t-1} recurrent_kernel + bias).
    'tanh' (default) and 'relu' run on the fused kernels, other activations
    and recurrent_dropout on the general path (general.py)."""

    base_name = "simple_rnn"

    def _fused(self) -> bool:
        return self.activation in ("tanh", "relu")

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        cfg["activation"] = self.activation
        return cfg

    def _pack(self):
        return _core.RNNInference(self.weights[0], self.weights[1], self._bias(), activation=self.activation)

    def _run(self, x, states, keep_cache, lengths):
        packed = self._inference()
        if packed is not None:
            h, hT = packed(x, states[0], reverse=self.go_backwards, return_state=True, lengths=lengths)
            return h, [hT], None
        h, hT, cache = _core.rnn_forward(x, states[0], self.weights[0], self.weights[1], self._bias(),
                                         activation=self.activation, reverse=self.go_backwards, return_state=True,
                                         cache=keep_cache, _borrow=self._borrow, lengths=lengths)
        return h, [hT], cache

    def _grad(self, dh, cache, dstates):
        dx, dh0, dWx, dWh, db = _core.rnn_backward(dh, cache)
        return dx, [dh0], dWx, dWh, db


class LSTM(_Recurrent):
    """keras.layers.LSTM (tanh, sigmoid gates, unit forget bias by default:
    the fused kernels; other activations and recurrent_dropout run on the
    general path, general.py). Weights in Keras's layout: kernel (D, 4H),
    recurrent_kernel (H, 4H), bias (4H,), gates ordered i, f, c, o."""

    base_name = "lstm"

    _n_states = 2
    _gates = 4

    def __init__(self, units: int, activation: str = "tanh", recurrent_activation: str = "sigmoid",
                 unit_forget_bias: bool = True, **kwargs):
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)

    def _fused(self) -> bool:
        return self.activation == "tanh" and self.recurrent_activation == "sigmoid"

    def _init_bias(self, b: np.ndarray) -> None:
        if self.unit_forget_bias:
            b[self.units:2 * self.units] = 1

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        cfg.update(activation=self.activation, recurrent_activation=self.recurrent_activation,
                   unit_forget_bias=self.unit_forget_bias)
        return cfg

    def _pack(self):
        # Keras's gate order i, f, c (= g), o is the kernels' gate_order 'ifgo'.
        return _core.LSTMInference(self.weights[0], self.weights[1], self._bias(), gate_order="ifgo")

    def _run(self, x, states, keep_cache, lengths):
        packed = self._inference()
        if packed is not None:
            h, hT, cT = packed(x, states[0], c0=states[1], reverse=self.go_backwards, return_state=True,
                               lengths=lengths)
            return h, [hT, cT], None
        h, hT, cT, cache = _core.lstm_forward(x, states[0], self.weights[0], self.weights[1], self._bias(),
                                              c0=states[1], reverse=self.go_backwards, return_state=True,
                                              cache=keep_cache, _borrow=self._borrow, gate_order="ifgo",
                                              lengths=lengths)
        return h, [hT, cT], cache

    def _grad(self, dh, cache, dstates):
        dcT = dstates[0] if dstates and dstates[0] is not None else None
        dx, dh0, dWx, dWh, db, dc0 = _core.lstm_backward(dh, cache, dcT=dcT, return_dc0=True)
        return dx, [dh0, dc0], dWx, dWh, db


class GRU(_Recurrent):
    """keras.layers.GRU with its defaults (tanh, sigmoid gates, reset_after=True:
    the reset gate applied to the recurrent product, as in PyTorch). Weights
    in Keras's layout: kernel (D, 3U), recurrent_kernel (U, 3U), bias (2, 3U)
    (the input's bias, then the recurrent product's), gates ordered z, r, h."""

    base_name = "gru"

    _gates = 3

    def __init__(self, units: int, activation: str = "tanh", recurrent_activation: str = "sigmoid",
                 reset_after: bool = True, **kwargs):
        if activation != "tanh" or recurrent_activation != "sigmoid":
            raise ValueError(f"GRU: only activation='tanh' with recurrent_activation='sigmoid' is supported (the "
                             f"fused kernels'; SimpleRNN and LSTM also run others), got {activation!r} and "
                             f"{recurrent_activation!r}")
        if kwargs.get("recurrent_dropout", 0.0):
            raise ValueError(f"GRU: recurrent_dropout is not supported (SimpleRNN and LSTM run it), got "
                             f"{kwargs['recurrent_dropout']!r}; use dropout= on the inputs or a Dropout layer")
        if not reset_after:
            raise ValueError("GRU: only reset_after=True (Keras 3's default; the reset gate applied to the "
                             "recurrent product, as in PyTorch and cuDNN) runs on the fused kernels; "
                             "reset_after=False (Keras 1's GRU) is not supported")
        super().__init__(units, **kwargs)
        self.reset_after = True

    def _bias_shape(self) -> Tuple[int, ...]:
        return (2, self._gates * self.units)

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        cfg["reset_after"] = self.reset_after
        return cfg

    def _biases(self):
        """(b, bh): the input's and the recurrent product's biases (3U,) each."""
        if self.use_bias:
            return self.weights[2][0], self.weights[2][1]
        zeros = np.zeros(self._gates * self.units, self.dtype)
        return zeros, zeros

    def _pack(self):
        # Keras's gate order z, r, h is the kernels' gate_order 'zrn'.
        return _core.GRUInference(self.weights[0], self.weights[1], *self._biases(), gate_order="zrn")

    def _run(self, x, states, keep_cache, lengths):
        packed = self._inference()
        if packed is not None:
            h, hT = packed(x, states[0], reverse=self.go_backwards, return_state=True, lengths=lengths)
            return h, [hT], None
        h, hT, cache = _core.gru_forward(x, states[0], self.weights[0], self.weights[1], *self._biases(),
                                         reverse=self.go_backwards, return_state=True, cache=keep_cache,
                                         _borrow=self._borrow, gate_order="zrn", lengths=lengths)
        return h, [hT], cache

    def _grad(self, dh, cache, dstates):
        dx, dh0, dWx, dWh, db, dbh = _core.gru_backward(dh, cache)
        return dx, [dh0], dWx, dWh, np.stack([db, dbh])


def _reg_config(r: Optional[regularizers.Regularizer]):
    return None if r is None else r.get_config()


class Bidirectional(Layer):
    """keras.layers.Bidirectional: a copy of `layer` runs the sequence
    backwards; the two outputs are merged by merge_mode ('concat', 'sum',
    'mul', 'ave', or None for a list of both). Weights: forward's, then backward's."""

    base_name = "bidirectional"

    MODES = ("concat", "sum", "mul", "ave", None)

    def __init__(self, layer: _Recurrent, merge_mode: Optional[str] = "concat", backward_layer=None, **kwargs):
        if not isinstance(layer, _Recurrent):
            raise TypeError(f"Bidirectional(): layer must be a SimpleRNN, LSTM or GRU, got {type(layer).__name__}")
        if merge_mode not in self.MODES:
            raise ValueError(f"Bidirectional(): merge_mode must be one of {self.MODES}, got {merge_mode!r}")
        if layer.return_state:
            raise ValueError("Bidirectional(): a wrapped layer with return_state=True is not supported")
        kwargs.setdefault("input_shape", layer.input_shape)
        kwargs.setdefault("dtype", layer.dtype.name)
        super().__init__(**kwargs)
        self.merge_mode = merge_mode
        self.forward_layer = layer
        if backward_layer is None:
            cfg = layer.get_config()
            cfg.update(name="backward_" + layer.name, go_backwards=not layer.go_backwards)
            backward_layer = type(layer).from_config(cfg)
        self.backward_layer = backward_layer
        self.return_sequences = layer.return_sequences
        # Keras: the wrapped layers output zeros at masked steps when returning sequences.
        for sub in (self.forward_layer, self.backward_layer):
            sub.zero_output_for_mask = sub.return_sequences

    def build(self, input_shape: Shape) -> None:
        self.forward_layer.build(input_shape)
        self.backward_layer.build(input_shape)
        self.weight_names = [f"forward_{n}" for n in self.forward_layer.weight_names] + \
                            [f"backward_{n}" for n in self.backward_layer.weight_names]
        self.weights = self.forward_layer.weights + self.backward_layer.weights
        self.grads = self.forward_layer.grads + self.backward_layer.grads
        self._regularizers = self.forward_layer._regularizers + self.backward_layer._regularizers
        super().build(input_shape)

    def output_shape_for(self, input_shape: Shape):
        out = self.forward_layer.output_shape_for(input_shape)
        if self.merge_mode == "concat":
            return out[:-1] + (2 * out[-1],)
        return out if self.merge_mode is not None else [out, out]

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        cfg.update(merge_mode=self.merge_mode,
                   layer={"class_name": type(self.forward_layer).__name__, "config": self.forward_layer.get_config()},
                   backward_layer={"class_name": type(self.backward_layer).__name__,
                                   "config": self.backward_layer.get_config()})
        return cfg

    def reset_states(self) -> None:
        self.forward_layer.reset_states()
        self.backward_layer.reset_states()

    def _set_keep_cache(self, keep: bool, borrow: bool = False) -> None:
        super()._set_keep_cache(keep, borrow)
        self.forward_layer._set_keep_cache(keep, borrow)
        self.backward_layer._set_keep_cache(keep, borrow)

    def _freeze(self, frozen: bool) -> None:
        self.forward_layer._freeze(frozen)
        self.backward_layer._freeze(frozen)

    supports_masking = True
    _takes_mask = True

    def compute_mask(self, x, mask):
        return mask if self.return_sequences and self.merge_mode is not None else None

    def forward(self, x: np.ndarray, training: bool = False, mask=None):
        yf = self.forward_layer.forward(x, training, mask=mask)
        yb = self.backward_layer.forward(x, training, mask=mask)
        if self.return_sequences:
            yb = yb[:, ::-1]  # back in input time order, as Keras does
        self._ctx = (yf, yb)
        if self.merge_mode == "concat":
            return np.concatenate([yf, yb], axis=-1)
        if self.merge_mode == "sum":
            return yf + yb
        if self.merge_mode == "mul":
            return yf * yb
        if self.merge_mode == "ave":
            return (yf + yb) / 2
        return [yf, yb]

    def _call_state(self):
        return self._ctx, self.forward_layer._call_state(), self.backward_layer._call_state()

    def _restore_call_state(self, state) -> None:
        self._ctx, f, b = state
        self.forward_layer._restore_call_state(f)
        self.backward_layer._restore_call_state(b)

    def backward(self, dy):
        yf, yb = self._ctx
        if self.merge_mode == "concat":
            H = yf.shape[-1]
            dyf, dyb = dy[..., :H], dy[..., H:]
        elif self.merge_mode == "sum":
            dyf, dyb = dy, dy
        elif self.merge_mode == "mul":
            dyf, dyb = dy * yb, dy * yf
        elif self.merge_mode == "ave":
            dyf = dyb = dy / 2
        else:
            dyf, dyb = dy
        if self.return_sequences:
            dyb = dyb[:, ::-1]
        return self.forward_layer.backward(dyf) + self.backward_layer.backward(dyb)


# ---------------------------------------------------------------------------
# Feed-forward layers
# ---------------------------------------------------------------------------
class Dense(Layer):
    """keras.layers.Dense: activation(x kernel + bias) on the last axis, so a
    3-D input (batch, time, features) gets the same layer at every step. The
    product runs on rnn_fast's temporal affine kernel."""

    base_name = "dense"
    supports_masking = True

    def __init__(self, units: int, activation: Optional[str] = None, use_bias: bool = True,
                 kernel_initializer: str = "glorot_uniform", bias_initializer: str = "zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.units = positive_int(units, f"{self.name}: units")
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def build(self, input_shape: Shape) -> None:
        if len(input_shape) not in (1, 2):
            raise ValueError(f"{self.name} (Dense): expects input of shape (batch, features) or "
                             f"(batch, timesteps, features), got {(None,) + tuple(input_shape)}")
        self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer, self.kernel_regularizer)
        if self.use_bias:
            self.add_weight("bias", (self.units,), self.bias_initializer, self.bias_regularizer)
        super().build(input_shape)

    def output_shape_for(self, input_shape: Shape) -> Shape:
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        cfg.update(units=self.units, activation=self.activation, use_bias=self.use_bias,
                   kernel_initializer=self.kernel_initializer, bias_initializer=self.bias_initializer,
                   kernel_regularizer=_reg_config(self.kernel_regularizer),
                   bias_regularizer=_reg_config(self.bias_regularizer))
        return cfg

    def forward(self, x: np.ndarray, training: bool = False):
        x = _as_float(x, self.dtype, self.name)
        self._check_rank(x, (2, 3))
        self._check_features(x)
        x3 = x if x.ndim == 3 else x[:, None, :]
        b = self.weights[1] if self.use_bias else np.zeros(self.units, self.dtype)
        z, cache = _core.temporal_affine_forward(x3, self.weights[0], b)
        z = z if x.ndim == 3 else z[:, 0, :]
        y = activations.forward(self.activation, z)
        self._ctx = (z, y, cache, x.ndim)
        return y

    def backward(self, dy):
        z, y, cache, ndim = self._ctx
        dz = activations.backward(self.activation, z, y, np.asarray(dy, self.dtype))
        dx, dw, db = _core.temporal_affine_backward(dz if ndim == 3 else dz[:, None, :], cache)
        self.grads[0][...] = dw
        if self.use_bias:
            self.grads[1][...] = db
        return dx if ndim == 3 else dx[:, 0, :]


class Activation(Layer):
    """keras.layers.Activation: 'linear', 'relu', 'tanh', 'sigmoid' or 'softmax'."""

    base_name = "activation"
    supports_masking = True

    def __init__(self, activation: str, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        cfg["activation"] = self.activation
        return cfg

    def forward(self, x, training: bool = False):
        x = _as_float(x, self.dtype, self.name)
        y = activations.forward(self.activation, x)
        self._ctx = (x, y)
        return y

    def backward(self, dy):
        x, y = self._ctx
        return activations.backward(self.activation, x, y, dy)


class Dropout(Layer):
    """keras.layers.Dropout: during training, zeroes each input with
    probability rate and scales the rest by 1 / (1 - rate); identity otherwise."""

    base_name = "dropout"
    supports_masking = True

    def __init__(self, rate: float, noise_shape=None, seed: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"{self.name}: rate must be in [0, 1), got {rate!r}")
        if noise_shape is not None:
            raise ValueError(f"{self.name}: noise_shape is not supported (got {noise_shape!r})")
        self.rate = float(rate)
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        cfg["rate"] = self.rate
        return cfg

    def forward(self, x, training: bool = False):
        x = _as_float(x, self.dtype, self.name)
        if not training or self.rate == 0:
            self._ctx = None
            return x
        rng = self._rng if self._rng is not None else backend.rng()
        # One draw from the layer's generator seeds the kernel's counter-based
        # mask (y and the scaled mask in one pass; NumPy's uniforms, compare
        # and two products took ~4x as long on the seed model's batches).
        seed = int(rng.integers(0, 2**63))
        part = backend.batch_part_now()
        if part is not None and x.dtype in (np.float32, np.float64):
            # Data-parallel: this process's rows of the global batch's mask.
            start, stop, n = part
            self._ctx = _core.dropout_forward(np.ones((n,) + x.shape[1:], x.dtype), self.rate, seed)[0][start:stop]
            return x * self._ctx
        if x.dtype in (np.float32, np.float64):
            y, self._ctx = _core.dropout_forward(x, self.rate, seed)
            return y
        keep = 1.0 - self.rate
        self._ctx = (backend.batch_random(rng, x.shape) < keep).astype(x.dtype) / x.dtype.type(keep)
        return x * self._ctx

    def backward(self, dy):
        if self._ctx is None:
            return dy
        if self._ctx.dtype in (np.float32, np.float64) and np.asarray(dy).dtype in (np.float32, np.float64):
            return _core.dropout_backward(dy, self._ctx)
        return dy * self._ctx


class Embedding(Layer):
    """keras.layers.Embedding: integer indices (batch, T) -> vectors
    (batch, T, output_dim), on rnn_fast's word-embedding kernel."""

    base_name = "embedding"

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer: str = "uniform",
                 embeddings_regularizer=None, mask_zero: bool = False, input_length: Optional[int] = None,
                 **kwargs):
        if input_length is not None and "input_shape" not in kwargs:
            kwargs["input_shape"] = (input_length,)
        super().__init__(**kwargs)
        self.mask_zero = bool(mask_zero)
        self.input_dim = positive_int(input_dim, f"{self.name}: input_dim")
        self.output_dim = positive_int(output_dim, f"{self.name}: output_dim")
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)

    def build(self, input_shape: Shape) -> None:
        self.add_weight("embeddings", (self.input_dim, self.output_dim), self.embeddings_initializer,
                        self.embeddings_regularizer)
        super().build(input_shape)

    def output_shape_for(self, input_shape: Shape) -> Shape:
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        cfg.update(input_dim=self.input_dim, output_dim=self.output_dim, mask_zero=self.mask_zero,
                   embeddings_initializer=self.embeddings_initializer,
                   embeddings_regularizer=_reg_config(self.embeddings_regularizer))
        return cfg

    def forward(self, x, training: bool = False):
        x = np.asarray(x)
        if x.dtype.kind == "f":
            if not np.all(np.isfinite(x)) or np.any(x != np.round(x)):
                raise ValueError(f"{self.name} (Embedding): input must hold integer indices, got non-integer values")
            x = x.astype(np.int64)
        elif x.dtype.kind not in "iu":
            raise TypeError(f"{self.name} (Embedding): input must hold integer indices, got dtype {x.dtype}")
        squeeze = x.ndim == 1
        if x.ndim not in (1, 2):
            raise ValueError(f"{self.name} (Embedding): input must be (batch, timesteps), got shape {x.shape}")
        out, cache = _core.word_embedding_forward(x[:, None] if squeeze else x, self.weights[0])
        self._ctx = (cache, squeeze)
        return out[:, 0] if squeeze else out

    def backward(self, dy):
        cache, squeeze = self._ctx
        self.grads[0][...] = _core.word_embedding_backward(dy[:, None] if squeeze else dy, cache)
        return None  # indices have no gradient

    def compute_mask(self, x, mask):
        """mask_zero=True: index 0 is padding (Keras's mask x != 0)."""
        return np.asarray(x) != 0 if self.mask_zero else None


class Masking(Layer):
    """keras.layers.Masking: the steps whose features all equal mask_value are
    masked (set to 0, and skipped by the recurrent layers after it)."""

    base_name = "masking"
    supports_masking = True

    def __init__(self, mask_value: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = float(mask_value)

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        cfg["mask_value"] = self.mask_value
        return cfg

    def _keep(self, x) -> np.ndarray:
        return np.any(np.asarray(x) != self.mask_value, axis=-1)

    def forward(self, x, training: bool = False):
        x = _as_float(x, self.dtype, self.name)
        self._check_rank(x, (3,))
        self._ctx = self._keep(x)[..., None]
        return np.where(self._ctx, x, 0).astype(self.dtype, copy=False)

    def backward(self, dy):
        return np.where(self._ctx, dy, 0)

    def compute_mask(self, x, mask):
        return self._keep(x)


class RepeatVector(Layer):
    """keras.layers.RepeatVector: (batch, features) -> (batch, n, features),
    for one-to-many models."""

    base_name = "repeat_vector"

    def __init__(self, n: int, **kwargs):
        super().__init__(**kwargs)
        self.n = positive_int(n, f"{self.name}: n")

    def output_shape_for(self, input_shape: Shape) -> Shape:
        return (self.n,) + tuple(input_shape)

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        cfg["n"] = self.n
        return cfg

    def forward(self, x, training: bool = False):
        x = _as_float(x, self.dtype, self.name)
        self._check_rank(x, (2,))
        return np.repeat(x[:, None, :], self.n, axis=1)

    def backward(self, dy):
        return dy.sum(axis=1)


class Flatten(Layer):
    """keras.layers.Flatten: (batch, ...) -> (batch, product of the rest)."""

    base_name = "flatten"

    def output_shape_for(self, input_shape: Shape) -> Shape:
        dims = tuple(input_shape)
        return (None,) if any(d is None for d in dims) else (int(np.prod(dims, dtype=np.int64)),)

    def forward(self, x, training: bool = False):
        x = _as_float(x, self.dtype, self.name)
        self._ctx = x.shape
        return x.reshape(x.shape[0], -1) if x.ndim != 2 else x

    def backward(self, dy):
        return np.asarray(dy).reshape(self._ctx)


class TimeDistributed(Layer):
    """keras.layers.TimeDistributed(layer): the layer applied to every time
    step of a (batch, time, ...) input, as one call on (batch * time, ...)
    rows; its weights are the inner layer's (Keras's layout). Masks pass
    through."""

    base_name = "time_distributed"
    supports_masking = True

    def __init__(self, layer: Layer, **kwargs):
        if not isinstance(layer, Layer):
            raise TypeError(f"TimeDistributed: layer must be an rnn_fast.nn layer, got {type(layer).__name__}")
        if isinstance(layer, (_Recurrent, Bidirectional)):
            raise ValueError(f"TimeDistributed: a recurrent layer ({type(layer).__name__}) over time steps is not "
                             f"supported; give it the sequence directly")
        super().__init__(**kwargs)
        self.layer = layer
        # The inner layer's lists themselves: its backward fills the gradients the model reads here.
        self.weight_names, self.weights, self.grads = layer.weight_names, layer.weights, layer.grads
        self._regularizers = layer._regularizers

    def build(self, input_shape: Shape) -> None:
        if len(input_shape) < 2:
            raise ValueError(f"{self.name}: input must be (batch, time, ...), got input shape "
                             f"{(None,) + tuple(input_shape)}")
        if not self.layer.built:
            self.layer.build(tuple(input_shape[1:]))
        self.weight_names, self.weights, self.grads = self.layer.weight_names, self.layer.weights, self.layer.grads
        self._regularizers = self.layer._regularizers
        super().build(input_shape)

    def output_shape_for(self, input_shape: Shape) -> Shape:
        return (input_shape[0],) + tuple(self.layer.output_shape_for(tuple(input_shape[1:])))

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        cfg["layer"] = {"class_name": type(self.layer).__name__, "config": self.layer.get_config()}
        return cfg

    def _checked(self, weights: Sequence[np.ndarray]) -> List[np.ndarray]:
        return self.layer._checked(weights)

    def forward(self, x, training: bool = False):
        x = np.asarray(x)
        self._check_rank(x, tuple(range(3, 8)))
        N, T = x.shape[:2]
        y = self.layer.forward(x.reshape((N * T,) + x.shape[2:]), training=training)
        self._ctx = (N, T)
        return y.reshape((N, T) + y.shape[1:])

    def _call_state(self):
        return self._ctx, self.layer._call_state()

    def _restore_call_state(self, state) -> None:
        self._ctx, inner = state
        self.layer._restore_call_state(inner)

    def backward(self, dy):
        N, T = self._ctx
        dy = np.asarray(dy)
        dx = self.layer.backward(dy.reshape((N * T,) + dy.shape[2:]))
        return None if dx is None else dx.reshape((N, T) + dx.shape[1:])

    def _set_keep_cache(self, keep: bool, borrow: bool = False) -> None:
        super()._set_keep_cache(keep, borrow)
        self.layer._set_keep_cache(keep, borrow)

    def _freeze(self, frozen: bool) -> None:
        self.layer._freeze(frozen)


# ---------------------------------------------------------------------------
# Merge layers: a list of tensors in, one out (the functional API's
# concatenate / add / ...)
# ---------------------------------------------------------------------------
class _Merge(Layer):
    """What the merge layers share: a list of at least two inputs of one
    shape (Concatenate: equal but for its axis), one output, and Keras's
    mask: a step is kept where every input's mask keeps it."""

    _takes_list = True
    supports_masking = True

    def build(self, input_shape) -> None:
        shapes = [tuple(s) for s in input_shape]
        if len(shapes) < 2:
            raise ValueError(f"{self.name} ({type(self).__name__}): expects a list of at least 2 inputs, "
                             f"got {len(shapes)}")
        self._check_shapes(shapes)
        self.input_shape = shapes
        self.built = True

    def _check_call_shape(self, input_shape) -> None:
        self._check_shapes([tuple(s) for s in input_shape])

    def _check_shapes(self, shapes) -> None:
        first = shapes[0]
        for s in shapes[1:]:
            if len(s) != len(first) or any(a is not None and b is not None and a != b for a, b in zip(s, first)):
                raise ValueError(f"{self.name} ({type(self).__name__}): inputs must have the same shape, got "
                                 f"{[(None,) + s for s in shapes]}")

    def output_shape_for(self, input_shape) -> Shape:
        shapes = [tuple(s) for s in input_shape]
        return tuple(next((d for d in dims if d is not None), None) for dims in zip(*shapes))

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        cfg.pop("input_shape", None)
        return cfg

    def compute_mask(self, x, mask):
        """Keras's Merge.compute_mask: None unless every input has a mask,
        else their union (a step is kept if any input keeps it)."""
        if mask is None or any(m is None for m in mask):
            return None
        return np.logical_or.reduce([np.asarray(m, bool) for m in mask])

    def _inputs(self, xs) -> List[np.ndarray]:
        if not isinstance(xs, (list, tuple)) or len(xs) < 2:
            raise ValueError(f"{self.name} ({type(self).__name__}): expects a list of at least 2 arrays")
        xs = [_as_float(x, self.dtype, self.name) for x in xs]
        if len({x.shape[0] for x in xs}) > 1:
            raise ValueError(f"{self.name} ({type(self).__name__}): inputs must hold the same number of samples, "
                             f"got shapes {[x.shape for x in xs]}")
        self._check_shapes([x.shape[1:] for x in xs])
        return xs


class Add(_Merge):
    """keras.layers.Add: the sum of the inputs."""

    base_name = "add"

    def forward(self, xs, training: bool = False):
        xs = self._inputs(xs)
        self._ctx = len(xs)
        return np.sum(xs, axis=0, dtype=self.dtype) if len(xs) > 2 else xs[0] + xs[1]

    def backward(self, dy):
        return [dy] * self._ctx


class Subtract(_Merge):
    """keras.layers.Subtract: inputs[0] - inputs[1]."""

    base_name = "subtract"

    def build(self, input_shape) -> None:
        if len(input_shape) != 2:
            raise ValueError(f"{self.name} (Subtract): expects exactly 2 inputs, got {len(input_shape)}")
        super().build(input_shape)

    def forward(self, xs, training: bool = False):
        a, b = self._inputs(xs)
        return a - b

    def backward(self, dy):
        return [dy, -dy]


class Multiply(_Merge):
    """keras.layers.Multiply: the element-wise product of the inputs."""

    base_name = "multiply"

    def forward(self, xs, training: bool = False):
        xs = self._inputs(xs)
        self._ctx = xs
        y = xs[0]
        for x in xs[1:]:
            y = y * x
        return y

    def backward(self, dy):
        xs = self._ctx
        out = []
        for i in range(len(xs)):
            g = dy
            for j, x in enumerate(xs):
                if j != i:
                    g = g * x
            out.append(g)
        return out


class Average(Add):
    """keras.layers.Average: the mean of the inputs."""

    base_name = "average"

    def forward(self, xs, training: bool = False):
        total = super().forward(xs)
        return (total / self.dtype.type(self._ctx)).astype(self.dtype, copy=False)

    def backward(self, dy):
        return super().backward(dy / self.dtype.type(self._ctx))


class Concatenate(_Merge):
    """keras.layers.Concatenate(axis=-1): the inputs joined along axis (the
    batch axis counts, as in Keras: -1 is the features)."""

    base_name = "concatenate"

    def __init__(self, axis: int = -1, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
            raise ValueError(f"{self.name}: axis must be an integer, got {axis!r}")
        self.axis = int(axis)

    def _axis(self, ndim: int) -> int:
        """The axis within a sample's shape (without the batch axis)."""
        axis = self.axis + 1 + ndim if self.axis < 0 else self.axis
        if not 1 <= axis <= ndim:
            raise ValueError(f"{self.name} (Concatenate): axis={self.axis} is out of range for inputs of "
                             f"{ndim + 1} dimensions (the batch axis, 0, cannot be joined)")
        return axis - 1

    def _check_shapes(self, shapes) -> None:
        ndim = len(shapes[0])
        axis = self._axis(ndim)
        for s in shapes[1:]:
            if len(s) != ndim or any(a is not None and b is not None and a != b
                                     for k, (a, b) in enumerate(zip(s, shapes[0])) if k != axis):
                raise ValueError(f"{self.name} (Concatenate): inputs must have the same shape except on axis "
                                 f"{self.axis}, got {[(None,) + tuple(s) for s in shapes]}")

    def output_shape_for(self, input_shape) -> Shape:
        shapes = [tuple(s) for s in input_shape]
        axis = self._axis(len(shapes[0]))
        out = list(super().output_shape_for([s[:axis] + (0,) + s[axis + 1:] for s in shapes]))
        sizes = [s[axis] for s in shapes]
        out[axis] = None if any(d is None for d in sizes) else sum(sizes)
        return tuple(out)

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        cfg["axis"] = self.axis
        return cfg

    def compute_mask(self, x, mask):
        """Keras's Concatenate.compute_mask: each input's mask broadcast to
        its shape (all True for an input without one), joined along axis,
        then any() over the last axis."""
        if mask is None or all(m is None for m in mask):
            return None
        full = []
        for a, m in zip(x, mask):
            shape = np.shape(a)
            if m is None:
                full.append(np.ones(shape, bool))
            else:
                m = np.asarray(m, bool)
                full.append(np.broadcast_to(m[..., None], shape) if m.ndim < len(shape) else m)
        return np.concatenate(full, axis=self._axis(len(np.shape(x[0])) - 1) + 1).any(axis=-1)

    def forward(self, xs, training: bool = False):
        xs = self._inputs(xs)
        axis = self._axis(xs[0].ndim - 1) + 1
        self._ctx = (axis, np.cumsum([x.shape[axis] for x in xs])[:-1])
        return np.concatenate(xs, axis=axis)

    def backward(self, dy):
        axis, cuts = self._ctx
        return np.split(np.asarray(dy), cuts, axis=axis)


def concatenate(inputs, axis: int = -1, **kwargs):
    """keras.layers.concatenate: Concatenate(axis)(inputs)."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def add(inputs, **kwargs):
    """keras.layers.add: Add()(inputs)."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    return Average(**kwargs)(inputs)


LAYERS = {cls.__name__: cls for cls in (SimpleRNN, LSTM, GRU, Bidirectional, Dense, Activation, Dropout, Embedding,
                                        RepeatVector, Masking, Flatten, TimeDistributed, Concatenate, Add,
                                        Subtract, Multiply, Average)}


def _from_config(cls, config: Dict[str, Any]):
    config = dict(config)
    for key in [k for k in config if k.endswith("regularizer")]:
        config[key] = regularizers.from_config(config[key])
    if cls is Bidirectional:
        layer = layer_from_config(config.pop("layer"))
        back = layer_from_config(config.pop("backward_layer"))
        return cls(layer, backward_layer=back, **config)
    if cls is TimeDistributed:
        return cls(layer_from_config(config.pop("layer")), **config)
    return cls(**config)


for _cls in LAYERS.values():
    _cls.from_config = classmethod(_from_config)


def layer_from_config(spec: Dict[str, Any]) -> Layer:
    """{'class_name': ..., 'config': {...}} -> a new, unbuilt layer."""
    name = spec.get("class_name")
    if name not in LAYERS:
        raise ValueError(f"unknown layer class {name!r}; known: {sorted(LAYERS)}")
    return LAYERS[name].from_config(spec["config"])


def Input(shape=None, batch_size=None, dtype=None, name=None, batch_shape=None, **kwargs):
    """keras.layers.Input: rnn_fast.nn.Input (functional.py), here too so
    that ``from keras.layers import Input, LSTM`` ports by its import."""
    from .functional import Input as make
    return make(shape, batch_size, dtype, name, batch_shape, **kwargs)
