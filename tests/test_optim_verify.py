"""`tinyopt.verify`: the user-facing pass/fail tables, and that they can fail."""
import numpy as np
import pytest

from tinyopt import verify


def test_optimizers_by_hand_all_pass_without_torch():
    checks = verify.optimizers(use_torch=False, verbose=False)
    by_hand = [c for c in checks if c.check.startswith("by hand")]
    assert len(by_hand) >= len(verify.CASES)
    assert all(c.status == "PASS" for c in by_hand), [c for c in by_hand if c.status != "PASS"]
    assert all(c.status == "skip" for c in checks if c.check.startswith("torch"))


def test_optimizers_against_torch_all_pass():
    pytest.importorskip("torch")
    checks = verify.optimizers(use_torch=True, torch_steps=50, verbose=False)
    torch_checks = [c for c in checks if c.check.startswith("torch") and c.status != "skip"]
    assert len(torch_checks) >= 15
    assert all(c.status == "PASS" for c in checks if c.status != "skip")


def test_schedulers_table_passes_or_skips():
    checks = verify.schedulers(use_torch=None, epochs=30, verbose=False)
    assert checks and not [c for c in checks if c.status == "FAIL"]


def test_a_wrong_formula_is_reported_as_fail(monkeypatch, capsys):
    """Put ε inside the square root in the by-hand Adam: the table must say FAIL and exit 1."""
    def wrong_adam(steps, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, **kwargs):
        return (np.array(verify._hand_adam(steps, lr=lr, betas=betas, eps=0.0, **kwargs)) * (1 + 1e-6)).tolist()

    monkeypatch.setitem(verify._BY_HAND, "Adam", wrong_adam)
    code = verify.main(["--no-torch", "--only", "optimizers"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL" in out and "Adam(lr=0.01)" in out


def test_main_prints_a_table_and_returns_zero(capsys):
    assert verify.main(["--no-torch", "--only", "optimizers"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("Optimizers") and "max rel err" in lines[2]
    assert "0 failed" in lines[-1]
