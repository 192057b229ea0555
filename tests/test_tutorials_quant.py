"""tutorials/05_quantization.py runs as a script (small settings) and its closing assertions pass."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinyopt.datasets import DatasetError, fashion_mnist

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorials" / "05_quantization.py"


def _fashion_mnist_present() -> bool:
    try:
        return all(fashion_mnist.find_file(name).is_file() for name in fashion_mnist.FILES)
    except DatasetError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _fashion_mnist_present(), reason="Fashion-MNIST files are not installed")
def test_quantization_tutorial_runs(tmp_path):
    env = dict(os.environ, TINYOPT_FAST="1", MPLBACKEND="Agg", TINYOPT_OUTPUT_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, str(TUTORIAL)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, f"tutorial failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "all checks passed" in result.stdout
    out = tmp_path / "05_quantization"
    for name in ("error_vs_bits.png", "weight_histogram_grid.png", "accuracy_vs_bits.png"):
        assert (out / name).stat().st_size > 1000
