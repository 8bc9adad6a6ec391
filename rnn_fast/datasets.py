"""Time series for reservoir computing and long-memory tasks.

``mackey_glass`` and ``to_forecasting`` follow reservoirpy.datasets (0.4)
step for step: the same arguments give the same arrays, so that results
compare with reservoirpy's own. The long-memory tasks are the classic
benchmarks of the vanishing-gradient literature (Hochreiter & Schmidhuber
1997; Bengio et al. 1994).
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["mackey_glass", "to_forecasting", "adding_problem", "first_input_recall"]

# reservoirpy's default seed for the series' random history.
_DEFAULT_SEED = 5555


def _positive_int(value, name, fn, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{fn}(): {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def mackey_glass(n_timesteps: int, tau: int = 17, a: float = 0.2, b: float = 0.1, n: int = 10, x0: float = 1.2,
                 h: float = 1.0, seed=None, history=None) -> np.ndarray:
    """The Mackey-Glass delay differential equation
    dx/dt = a x(t - tau) / (1 + x(t - tau)^n) - b x(t), discretised as
    reservoirpy does, from a random history around x0 (seed: an int or a
    Generator; None: reservoirpy's default, 5555) or the given one. Returns
    (n_timesteps, 1) float64."""
    n_timesteps = _positive_int(n_timesteps, "n_timesteps", "mackey_glass", 0)
    history_length = int(np.floor(tau / h))
    if history is None:
        rng = seed if isinstance(seed, np.random.Generator) else \
            np.random.default_rng(_DEFAULT_SEED if seed is None else seed)
        past = x0 * np.ones(history_length) + 0.2 * (rng.random(history_length) - 0.5)
    else:
        history = np.asarray(history, np.float64).ravel()
        if len(history) < history_length:
            raise ValueError(f"mackey_glass(): history must have at least tau/h = {history_length} steps, "
                             f"got {len(history)}")
        past = history[len(history) - history_length:]
    X = np.empty(history_length + n_timesteps)
    X[:history_length] = past
    xt = x0
    bh = -b * h
    for i in range(history_length, history_length + n_timesteps):
        X[i] = xt
        xtau = X[i - history_length] if tau > 0 else 0.0
        # reservoirpy's update, term for term (its "RK4").
        k1 = bh * xt + a * xtau / (1 + xtau ** n)
        k2 = 2 * k1 + bh * k1
        k3 = 2 * k1 + bh * k2
        k4 = k1 + bh * k3
        xt = xt + (k1 + k2 + k3 + k4) / 6
    return X[history_length:].reshape(-1, 1)


def to_forecasting(timeseries, forecast: int = 1, test_size=None):
    """Inputs and targets forecast steps ahead: (X, y), or with test_size (a
    count of steps, or a fraction in [0, 1)) (X_train, X_test, y_train,
    y_test), the test steps the last ones. Time is the second-to-last axis;
    a list of series gives lists."""
    if isinstance(timeseries, list):
        parts = [to_forecasting(s, forecast=forecast, test_size=test_size) for s in timeseries]
        return tuple(map(list, zip(*parts)))
    forecast = _positive_int(forecast, "forecast", "to_forecasting")
    series = np.moveaxis(np.asarray(timeseries), -2, 0)
    length = series.shape[0]
    if test_size is None:
        test_len = 0
    elif isinstance(test_size, float) and 0 <= test_size < 1:
        test_len = round(length * test_size)
    elif isinstance(test_size, numbers.Integral) and not isinstance(test_size, bool) and test_size >= 0:
        test_len = int(test_size)
    else:
        raise ValueError(f"to_forecasting(): test_size must be an integer >= 0 or a fraction in [0, 1), "
                         f"got {test_size!r}")
    if forecast + test_len >= length:
        raise ValueError(f"to_forecasting(): the series has {length} steps, not more than forecast ({forecast}) "
                         f"+ test_size ({test_len})")
    X, y = series[:-forecast], series[forecast:]
    back = lambda a: np.moveaxis(a, 0, -2)  # noqa: E731
    if test_len > 0:
        return back(X[:-test_len]), back(X[-test_len:]), back(y[:-test_len]), back(y[-test_len:])
    return back(X), back(y)


def adding_problem(n_sequences: int, T: int, seed=None, dtype=np.float32):
    """The adding problem (Hochreiter & Schmidhuber 1997): x (N, T, 2), each
    step a random value in [0, 1) and a marker, 1 at two steps (one in the
    first half, one in the second), 0 elsewhere; y (N, 1) the sum of the two
    marked values. Predicting 1.0 always scores a mean squared error of ~1/6;
    solving it needs a memory of up to T steps."""
    N = _positive_int(n_sequences, "n_sequences", "adding_problem")
    T = _positive_int(T, "T", "adding_problem", 2)
    rng = np.random.default_rng(seed)
    values = rng.random((N, T))
    first = rng.integers(0, T // 2, N)
    second = rng.integers(T // 2, T, N)
    marks = np.zeros((N, T))
    marks[np.arange(N), first] = 1
    marks[np.arange(N), second] = 1
    x = np.stack([values, marks], -1).astype(dtype)
    y = (values[np.arange(N), first] + values[np.arange(N), second]).reshape(-1, 1).astype(dtype)
    return x, y


def first_input_recall(n_sequences: int, T: int, n_symbols: int = 4, distractors: bool = True, seed=None,
                       dtype=np.float32):
    """Remembering the first input: x (N, T, n_symbols), a one-hot symbol at
    the first step and, with distractors, at every later one (else zeros);
    y (N,) the index of the first step's symbol, to be given after the last
    step. Chance is 1 / n_symbols; the gradient that teaches it must cross
    all T steps."""
    N = _positive_int(n_sequences, "n_sequences", "first_input_recall")
    T = _positive_int(T, "T", "first_input_recall")
    K = _positive_int(n_symbols, "n_symbols", "first_input_recall", 2)
    rng = np.random.default_rng(seed)
    symbols = rng.integers(0, K, (N, T))
    x = np.eye(K, dtype=dtype)[symbols]
    if not distractors:
        x[:, 1:] = 0
    return x, symbols[:, 0].copy()
