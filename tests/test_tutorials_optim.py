"""tutorials/01_optimizers.py runs as a script (small settings) and its closing assertions pass."""
from conftest import run_tutorial


def test_optimizers_tutorial_runs(tmp_path):
    result = run_tutorial("01_optimizers.py", tmp_path)
    assert "all checks passed" in result.stdout
    # one trace table per optimizer, each with its step blocks
    for name in ("GD", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW"):
        assert f"{name} · parameter 0 · shape (2,)" in result.stdout, name
    assert result.stdout.count("── t = 1 ──") == 6
    out = tmp_path / "01_optimizers"
    pngs = {p.name for p in out.glob("*.png")}
    assert {"quadratic.png", "rosenbrock.png", "beale.png", "adam_variants.png", "momentum_styles.png"} <= pngs
