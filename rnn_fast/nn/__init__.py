"""rnn_fast.nn: Keras-style models on rnn_fast's C++ kernels.

Keras code runs after changing its imports::

    from rnn_fast.nn.models import Sequential          # keras.models
    from rnn_fast.nn.layers import LSTM, Dropout, Dense  # keras.layers

The functional API: Input, Model(inputs, outputs), shared layers,
initial_state=, Concatenate/Add/Subtract/Multiply/Average (functional.py).
Layers: SimpleRNN, LSTM, GRU, Bidirectional, Dense, Dropout, Embedding,
RepeatVector, Activation, Masking, TimeDistributed, Flatten (Keras's masks: Masking and
Embedding(mask_zero=True) make them, the recurrent layers run the masked
steps as the kernels' lengths=, the loss and metrics skip them).
Model and Sequential: compile / fit / evaluate / predict / summary / save, and
load_model, with Keras 3's training semantics: metrics (metrics.py), sample
and class weights, losses (losses.py, custom ones with their gradient),
callbacks (callbacks.py), learning-rate schedules (schedules.py), data from
arrays, datasets or generators (data.py), and Keras's .keras files both
ways (keras_file.py). Stateful recurrent layers carry their state across
batches for truncated backpropagation through time. from_torch / to_torch
move torch.nn.RNN/LSTM/GRU stacks in and out (exchange.py).
"""
from . import (activations, backend, callbacks, data, functional, initializers, layers, losses, metrics, models,
               optimizers, regularizers, schedules)
from .backend import floatx, set_floatx, set_random_seed
from .callbacks import (CSVLogger, Callback, EarlyStopping, History, LambdaCallback, LearningRateScheduler,
                        ModelCheckpoint, ReduceLROnPlateau, TerminateOnNaN)
from .exchange import from_torch, to_torch, torch_weights
from .functional import Input, InputLayer, KerasTensor
from .layers import (
    GRU,
    LSTM,
    Activation,
    Add,
    Average,
    Bidirectional,
    Concatenate,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    Layer,
    Masking,
    Multiply,
    RepeatVector,
    SimpleRNN,
    Subtract,
    TimeDistributed,
    add,
    average,
    concatenate,
    multiply,
    subtract,
)
from .models import Model, Sequential, load_model, model_from_json
from .optimizers import SGD, Adam, AdamW, RMSprop
from .regularizers import l1, l1_l2, l2

__all__ = [
    "activations", "backend", "callbacks", "data", "functional", "initializers", "layers", "losses", "metrics",
    "models",
    "optimizers", "regularizers", "schedules", "floatx", "set_floatx", "set_random_seed",
    "Callback", "CSVLogger", "EarlyStopping", "History", "LambdaCallback", "LearningRateScheduler",
    "ModelCheckpoint", "ReduceLROnPlateau", "TerminateOnNaN",
    "GRU", "LSTM", "Activation", "Bidirectional", "Dense", "Dropout", "Embedding", "Flatten", "Layer", "Masking",
    "RepeatVector", "SimpleRNN", "TimeDistributed", "Concatenate", "Add", "Subtract", "Multiply", "Average",
    "concatenate", "add", "subtract", "multiply", "average", "Input", "InputLayer", "KerasTensor", "Model",
    "Sequential", "load_model", "model_from_json", "SGD", "Adam",
    "AdamW", "RMSprop", "l1", "l1_l2", "l2", "from_torch", "to_torch", "torch_weights",
]
