"""tutorials/01_optimizers.py runs as a script (small settings) and its closing assertions pass."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorials" / "01_optimizers.py"


def test_optimizers_tutorial_runs(tmp_path):
    env = dict(os.environ, TINYOPT_FAST="1", MPLBACKEND="Agg", TINYOPT_OUTPUT_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, str(TUTORIAL)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"tutorial failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "all checks passed" in result.stdout
    # one trace table per optimizer, each with its step blocks
    for name in ("GD", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW"):
        assert f"{name} · parameter 0 · shape (2,)" in result.stdout, name
    assert result.stdout.count("── t = 1 ──") == 6
    out = tmp_path / "01_optimizers"
    pngs = {p.name for p in out.glob("*.png")}
    assert {"quadratic.png", "rosenbrock.png", "beale.png", "adam_variants.png", "momentum_styles.png"} <= pngs
