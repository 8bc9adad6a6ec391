import pytest

pytest.importorskip("pytest_benchmark")
