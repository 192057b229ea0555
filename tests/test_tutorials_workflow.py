"""The workflow lessons run as scripts (small data via TINYOPT_FAST) and end with their own checks."""
import pytest

from conftest import TUTORIALS, needs_fashion_mnist, run_tutorial

SCRIPTS = ["00_keras_seed_examples.py", "03_fitting_capacity_l2.py", "04_batch_size_and_lr.py"]


@needs_fashion_mnist
@pytest.mark.parametrize("script", SCRIPTS)
def test_tutorial_runs(script, tmp_path):
    run_tutorial(script, tmp_path)


def test_tutorials_are_jupytext_percent_scripts():
    for script in SCRIPTS:
        text = (TUTORIALS / script).read_text()
        assert "format_name: percent" in text and "# %% [markdown]" in text, script
        assert "assert " in text.split("# %%")[-1], f"{script} must end with a cell of assertions"
