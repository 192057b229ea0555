"""tutorials/08_mixed_precision.py runs as a script (small settings) and its closing assertions pass."""
from conftest import run_tutorial


def test_mixed_precision_tutorial_runs(tmp_path):
    result = run_tutorial("08_mixed_precision.py", tmp_path, timeout=900)
    assert "all checks passed" in result.stdout
    out = tmp_path / "08_mixed_precision"
    for name in ("rounding_error.png", "gradient_histogram.png", "scale_history.png"):
        assert (out / name).stat().st_size > 1000
