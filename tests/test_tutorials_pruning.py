"""tutorials/06_pruning.py runs as a script (small settings) and its closing assertions pass."""
import pytest

from conftest import needs_fashion_mnist, run_tutorial


@pytest.mark.slow
@needs_fashion_mnist
def test_pruning_tutorial_runs(tmp_path):
    result = run_tutorial("06_pruning.py", tmp_path, timeout=900)
    assert "all checks passed" in result.stdout
    out = tmp_path / "06_pruning"
    for name in ("sensitivity.png", "agp_schedule.png", "lenet300_compressed.npz"):
        assert (out / name).stat().st_size > 1000
