"""Build of rnn_fast's C++ core as the extension module rnn_fast._core, and
of rnn_fast.cython_kernels, the Cython interface to it (which calls the core
through the C table rnn_fast._core hands out: csrc/capi.h).

RNN_FAST_SANITIZE=1 in the environment builds it instead with
AddressSanitizer and UndefinedBehaviorSanitizer (-O1, frame pointers, and
any undefined behaviour aborts); .ci/sanitize shows how to run the tests
against such a build (libasan must be preloaded into Python).
"""
import os
from glob import glob

from Cython.Build import cythonize
from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import Extension, setup

# Compile the sources in parallel (one job per core unless NPY_NUM_BUILD_JOBS says otherwise).
ParallelCompile("NPY_NUM_BUILD_JOBS").install()

SANITIZE = os.environ.get("RNN_FAST_SANITIZE", "") not in ("", "0")
SANITIZER_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", "-g"]

# -falign-loops=64: the GEMM micro-kernel's inner loop (~116 bytes) starts on
# a cache line whatever code precedes it; placed 32 bytes in, it spans three
# lines and small layers ran 5-8% slower (alternated builds, in one process)
# after an unrelated change had moved it.
# -fno-math-errno: no errno from sqrt and friends (nothing here reads errno),
# so that loops over them vectorize; values are unchanged (sqrt is correctly
# rounded either way). The fused Adam step ran 3x faster with it.
ext = Pybind11Extension(
    "rnn_fast._core",
    sorted(glob("csrc/*.cpp") + glob("csrc/bindings/*.cpp")),
    include_dirs=["csrc"],
    cxx_std=17,
    extra_compile_args=["-O1" if SANITIZE else "-O3", "-fopenmp", "-ffp-contract=fast", "-falign-loops=64",
                        "-fno-math-errno", "-Wno-psabi"]
    + (SANITIZER_FLAGS if SANITIZE else []),
    extra_link_args=["-fopenmp"] + (SANITIZER_FLAGS if SANITIZE else []),
    depends=sorted(glob("csrc/**/*.h", recursive=True)),
)

# Only the shape checks and calls through the core's C table: no OpenMP, no core sources.
cython_ext = Extension(
    "rnn_fast.cython_kernels",
    ["rnn_fast/cython_kernels.pyx"],
    include_dirs=["csrc"],
    extra_compile_args=(["-O1"] + SANITIZER_FLAGS) if SANITIZE else ["-O2"],
    extra_link_args=SANITIZER_FLAGS if SANITIZE else [],
    depends=["csrc/capi.h", "rnn_fast/cython_kernels.pxd"],
)

setup(ext_modules=[ext] + cythonize([cython_ext], language_level=3), cmdclass={"build_ext": build_ext})
