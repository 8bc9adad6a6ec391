"""Builds ensemble.pyx against the installed rnn_fast:

    python setup.py build_ext --inplace

rnn_fast.get_include() is all the include path the cimport needs (NumPy's for
the memoryviews' buffer code)."""
import numpy
import rnn_fast
from Cython.Build import cythonize
from setuptools import Extension, setup

ext = Extension("ensemble", ["ensemble.pyx"], include_dirs=[rnn_fast.get_include(), numpy.get_include()])
setup(name="rnn_fast_ensemble_example", ext_modules=cythonize([ext], include_path=[rnn_fast.get_include()]))
