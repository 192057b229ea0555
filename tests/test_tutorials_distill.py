"""tutorials/07_distillation_transfer.py runs as a script (small settings) and its closing assertions pass."""
import pytest

from conftest import needs_fashion_mnist, run_tutorial


@pytest.mark.slow
@needs_fashion_mnist
def test_distillation_transfer_tutorial_runs(tmp_path):
    result = run_tutorial("07_distillation_transfer.py", tmp_path, timeout=900)
    assert "all checks passed" in result.stdout
    out = tmp_path / "07_distillation_transfer"
    for name in ("dark_knowledge.png", "t_squared.png", "temperature_sweep.png", "transfer.png"):
        assert (out / name).stat().st_size > 1000
