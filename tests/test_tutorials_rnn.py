"""tutorials/09_rnn.py runs as a script (small settings) and its closing assertions pass."""
from conftest import needs_fashion_mnist, run_tutorial


@needs_fashion_mnist
def test_rnn_tutorial_runs(tmp_path):
    result = run_tutorial("09_rnn.py", tmp_path)
    assert "all checks passed" in result.stdout
    out = tmp_path / "09_rnn"
    pngs = {p.name for p in out.glob("*.png")}
    assert {"activations.png", "deep_mlp_gradients.png", "gradients_through_time.png"} <= pngs
    assert all((out / p).stat().st_size > 1000 for p in pngs)
