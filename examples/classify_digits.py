"""Many-to-one sequence classification: scikit-learn's 8x8 handwritten
digits read row by row, as 8 time steps of 8 features, by a Bidirectional
LSTM whose final states feed a softmax over the 10 classes.

Quality checked: at least 95% accuracy on a held-out quarter of the digits.

    pip install -e ".[examples]" && python examples/classify_digits.py
"""
import argparse
import sys
import time

import numpy as np

from rnn_fast.nn import set_random_seed
from rnn_fast.nn.layers import LSTM, Bidirectional, Dense
from rnn_fast.nn.models import Sequential

TARGET = 0.95


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args()
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    set_random_seed(0)
    t0 = time.perf_counter()
    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)  # (1797, 8, 8): 8 rows = 8 steps of 8 pixels
    X_train, X_test, y_train, y_test = train_test_split(X, digits.target, test_size=0.25, random_state=0,
                                                        stratify=digits.target)
    model = Sequential([
        Bidirectional(LSTM(64), input_shape=(8, 8)),
        Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()
    model.fit(X_train, y_train, epochs=args.epochs, batch_size=32, validation_split=0.1, verbose=2)
    loss, accuracy = model.evaluate(X_test, y_test, verbose=0)
    print(f"test loss {loss:.4f}, test accuracy {accuracy:.4f} on {len(y_test)} digits "
          f"({time.perf_counter() - t0:.0f} s)")
    if accuracy >= TARGET:
        print(f"PASS: test accuracy {accuracy:.4f} >= {TARGET}")
        return 0
    print(f"FAIL: test accuracy {accuracy:.4f} < {TARGET}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
