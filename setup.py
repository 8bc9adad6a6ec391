"""Build of rnn_fast's C++ core as the extension module rnn_fast._core."""
from glob import glob

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

ext = Pybind11Extension(
    "rnn_fast._core",
    sorted(glob("csrc/*.cpp")),
    include_dirs=["csrc"],
    cxx_std=17,
    extra_compile_args=["-O3", "-fopenmp", "-ffp-contract=fast", "-Wno-psabi"],
    extra_link_args=["-fopenmp"],
    depends=sorted(glob("csrc/*.h")),
)

setup(ext_modules=[ext], cmdclass={"build_ext": build_ext})
