"""tutorials/10_parallel.py runs as a script (small settings) and its closing assertions pass; where
mpiexec and mpi4py are installed it also runs itself as 2 ranks (else it uses the simulation only)."""
from conftest import run_tutorial


def test_parallel_tutorial_runs(tmp_path):
    result = run_tutorial("10_parallel.py", tmp_path, timeout=300)
    assert "all checks passed" in result.stdout
    out = tmp_path / "10_parallel"
    pngs = {p.name for p in out.glob("*.png")}
    assert {"lr_scaling.png", "ring_traffic.png", "pipeline_bubble.png", "cost_model.png"} <= pngs
    assert all((out / p).stat().st_size > 1000 for p in pngs)
