"""Keras's names: snake_case of a class name (its weight-file paths, its
metrics' and losses' default names) and default object names numbered per
stem (lstm, lstm_1, lstm_2, ...), one counter per stem for the process."""
import itertools
import re
from typing import Dict

_counters: Dict[str, "itertools.count[int]"] = {}


def snake_case(name: str) -> str:
    """Keras's to_snake_case: 'SimpleRNN' -> 'simple_rnn', 'AUC' -> 'auc'."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def auto_name(stem: str) -> str:
    """stem the first time, then stem_1, stem_2, ..."""
    n = next(_counters.setdefault(stem, itertools.count()))
    return stem if n == 0 else f"{stem}_{n}"
