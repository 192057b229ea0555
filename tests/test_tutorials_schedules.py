"""tutorials/02_schedules.py runs as a script (small settings) and its closing assertions pass."""
from conftest import needs_fashion_mnist, run_tutorial


@needs_fashion_mnist
def test_schedules_tutorial_runs(tmp_path):
    result = run_tutorial("02_schedules.py", tmp_path)
    assert "all checks passed" in result.stdout
    out = tmp_path / "02_schedules"
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert {"overview.png", "plateau.png", "fashion_mnist_lr.png", "fashion_mnist_curves.png"} <= set(pngs)
    assert len([p for p in pngs if p.startswith("lr_")]) == 11  # one plot per scheduler
    assert all((out / p).stat().st_size > 1000 for p in pngs)
