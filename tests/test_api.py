"""The four lists of the kernels agree: the compiled module, rnn_fast.__all__,
rnn_fast._core.pyi and rnn_fast.reference.__all__ name the same kernels, with
the same parameters (positional, then keyword-only; private ones, with a
leading underscore, left out)."""
import ast
import inspect
import pathlib

import pytest

import rnn_fast
from rnn_fast import _core, reference

STUB = pathlib.Path(rnn_fast.__file__).with_name("_core.pyi")

# Keywords the reference has and the kernels do not have yet (issue 12's
# lengths=); each leaves this set when the kernels take it.
PENDING_KEYWORDS: set = set()
# What only one side has: the reference's helper, the module's thread control.
# reservoir_forward: the twin of a class's method, LeakyReservoir.run.
REFERENCE_ONLY = {"sigmoid", "reservoir_forward"}
KERNEL_ONLY = {"set_num_threads", "get_num_threads"}


def params(node: ast.FunctionDef):
    """(positional names, keyword-only names) of a def, without self and private ones."""
    def public(args):
        return [a.arg for a in args if a.arg != "self" and not a.arg.startswith("_")]
    return public(node.args.posonlyargs + node.args.args), public(node.args.kwonlyargs)


def pybind_params(fn):
    """params() of a pybind11 function, from the signature on its docstring's first line."""
    line = fn.__doc__.splitlines()[0]
    return params(ast.parse(f"def {line}: pass").body[0])


def python_params(fn):
    sig = inspect.signature(fn).parameters.values()
    pos = [p.name for p in sig if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    kw = [p.name for p in sig if p.kind == p.KEYWORD_ONLY]
    return [n for n in pos if not n.startswith("_")], [n for n in kw if not n.startswith("_")]


def stub():
    """The stub's top-level functions and classes: name -> node."""
    tree = ast.parse(STUB.read_text())
    return {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def compiled():
    return {name for name in dir(_core) if not name.startswith("_")}


def test_module_all_and_stub_name_the_same_kernels():
    assert compiled() == set(stub())
    # The caches and the inference objects' base are types a user receives,
    # never names, and rnn_fast.reservoir's Reservoir holds a LeakyReservoir:
    # rnn_fast exports the rest.
    received = {name for name in compiled() if name.endswith("Cache")} | {"InferenceWeights", "LeakyReservoir"}
    # Python's own: the reference, get_include, and sigmoid (cs231n's module has it beside the layers)
    assert compiled() - received == set(rnn_fast.__all__) - {"reference", "get_include", "sigmoid"}


def test_reference_twins_every_kernel():
    kernels = {name for name in compiled() if inspect.isroutine(getattr(_core, name))} - KERNEL_ONLY
    assert set(reference.__all__) - REFERENCE_ONLY == kernels


@pytest.mark.parametrize("name", sorted(n for n in stub() if isinstance(stub()[n], ast.FunctionDef)))
def test_stub_signatures_match_the_module(name):
    assert params(stub()[name]) == pybind_params(getattr(_core, name))


@pytest.mark.parametrize("cls", sorted(n for n in stub() if n.endswith("Inference")))
@pytest.mark.parametrize("method", ["__init__", "__call__"])
def test_stub_signatures_of_the_inference_objects(cls, method):
    node = next(n for n in stub()[cls].body if isinstance(n, ast.FunctionDef) and n.name == method)
    assert params(node) == pybind_params(getattr(getattr(_core, cls), method))


@pytest.mark.parametrize("name", sorted(set(reference.__all__) - REFERENCE_ONLY))
def test_reference_signatures_match_the_kernels(name):
    pos, kw = python_params(getattr(reference, name))
    kernel_pos, kernel_kw = pybind_params(getattr(_core, name))
    assert not PENDING_KEYWORDS & set(kernel_kw), "a pending keyword has landed: take it off PENDING_KEYWORDS"
    assert (pos, [k for k in kw if k not in PENDING_KEYWORDS]) == (kernel_pos, kernel_kw)
