"""The workflow lessons run as scripts (small data via TINYOPT_FAST) and end with their own checks."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
SCRIPTS = ["00_keras_seed_examples.py", "03_fitting_capacity_l2.py", "04_batch_size_and_lr.py"]


def have_fashion_mnist():
    from tinyopt.datasets import fashion_mnist

    try:
        for name in fashion_mnist.FILES:
            fashion_mnist.find_file(name)
    except fashion_mnist.DatasetError:
        return False
    return True


@pytest.mark.skipif(not have_fashion_mnist(), reason="Fashion-MNIST is not installed")
@pytest.mark.parametrize("script", SCRIPTS)
def test_tutorial_runs(script, tmp_path):
    env = dict(os.environ, TINYOPT_FAST="1", TINYOPT_TUTORIAL_OUT=str(tmp_path), MPLBACKEND="Agg")
    # Threaded OpenBLAS slows small matmuls 20-100x when the cores are shared (parallel test runs).
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    res = subprocess.run([sys.executable, str(TUTORIALS / script)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, f"{script} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"


def test_tutorials_are_jupytext_percent_scripts():
    for script in SCRIPTS:
        text = (TUTORIALS / script).read_text()
        assert "format_name: percent" in text and "# %% [markdown]" in text, script
        assert "assert " in text.split("# %%")[-1], f"{script} must end with a cell of assertions"
