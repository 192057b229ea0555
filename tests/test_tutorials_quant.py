"""tutorials/05_quantization.py runs as a script (small settings) and its closing assertions pass."""
import pytest

from conftest import needs_fashion_mnist, run_tutorial


@pytest.mark.slow
@needs_fashion_mnist
def test_quantization_tutorial_runs(tmp_path):
    result = run_tutorial("05_quantization.py", tmp_path, timeout=900)
    assert "all checks passed" in result.stdout
    out = tmp_path / "05_quantization"
    for name in ("error_vs_bits.png", "weight_histogram_grid.png", "accuracy_vs_bits.png"):
        assert (out / name).stat().st_size > 1000
