"""tinyopt.verify.check_optimizer: passes a correct re-implementation, catches each classic mistake at
the right step and formula term, and `tinyopt verify --candidate module:Class` says the same."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

import tinyopt as to
from conftest import run_tutorial
from tinyopt import cli, optim
from tinyopt.optim import Optimizer
from tinyopt.optimizer_check import PROBLEMS, _to_array, make_problems
from tinyopt.verify import check_optimizer


# ---------------------------------------------------------------------------- re-implementations
# Written here from the formulas (not by subclassing tinyopt's classes), with switches that plant
# the classic mistakes one at a time.
class MyAdam(Optimizer):
    mistake = None

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, decoupled=decoupled))

    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = np.asarray(p.grad)
                state = self.state.setdefault(p, {"step": 0})
                if self.mistake == "t starts at 0":
                    t = state["step"]
                    state["step"] += 1
                elif self.mistake == "t never increments":
                    state["step"] = t = 1
                else:
                    state["step"] += 1
                    t = state["step"]
                if group["decoupled"] and self.mistake != "L2 instead of decoupled":
                    p.data -= lr * wd * p.data
                elif wd:
                    g = g + wd * p.data
                if "m" not in state:
                    if self.mistake == "m initialised with g":
                        state["m"], state["v"] = g.copy(), g * g
                    else:
                        state["m"], state["v"] = np.zeros_like(p.data), np.zeros_like(p.data)
                m = state["m"] = b1 * state["m"] + (1 - b1) * g
                v = state["v"] = b2 * state["v"] + (1 - b2) * g * g
                if self.mistake == "no bias correction":
                    m_hat, v_hat = m, v
                else:
                    m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
                if self.mistake == "eps inside the square root":
                    lr_eff = lr / np.sqrt(v_hat + eps)
                else:
                    lr_eff = lr / (np.sqrt(v_hat) + eps)
                update = -lr_eff * m_hat
                p.data += update
                self._record(p, group, dict(g=g, m=m, v=v, m_hat=m_hat, v_hat=v_hat, lr_eff=lr_eff, update=update,
                                            theta=p.data), dict(t=t))
        return loss


def adam_with(mistake: str):
    return type(f"Adam_{mistake.replace(' ', '_')}", (MyAdam,), {"mistake": mistake})


class MySGD(Optimizer):
    """SGD with momentum and dampening: b₁ = g₁, b_t = μ b_{t−1} + (1 − τ) g_t."""

    zero_buffer = False  # the mistake: b₀ = 0, so b₁ = (1 − τ) g₁

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening))

    def step(self, closure=None):
        for group in self.param_groups:
            lr, mu, tau = group["lr"], group["momentum"], group["dampening"]
            for p in group["params"]:
                g = np.asarray(p.grad)
                state = self.state.setdefault(p, {})
                if "buf" not in state:
                    buf = state["buf"] = (1 - tau) * g if self.zero_buffer else g.copy()
                else:
                    buf = state["buf"] = mu * state["buf"] + (1 - tau) * g
                update = -lr * buf
                p.data += update
                self._record(p, group, dict(g=g, buf=buf, d=buf, update=update, theta=p.data))


class ZeroBufferSGD(MySGD):
    zero_buffer = True


class PlainGD:
    """Not a tinyopt Optimizer at all: torch's interface only, a step() without a closure argument."""

    def __init__(self, params, lr=1e-3):
        self.params, self.lr = list(params), lr

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        for p in self.params:
            p.data -= self.lr * np.asarray(p.grad)


class ClosureGD(PlainGD):
    """Uses only the gradients its closure computes (like LBFGS, which re-evaluates)."""

    def step(self, closure):
        for p in self.params:
            p.grad = None
        closure()
        super().step()


class TensorRecordingAdam(MyAdam):
    """Records Tensors instead of arrays (as a student might once gradients are Tensors)."""

    def _record(self, p, group, quantities, scalars=None):
        super()._record(p, group, {k: to.tensor(np.array(v)) for k, v in quantities.items()}, scalars)


# ---------------------------------------------------------------------------- passing
def test_a_correct_reimplementation_passes_every_problem():
    report = check_optimizer(MyAdam, reference=optim.Adam, steps=50, lr=1e-2)
    assert report.ok and bool(report)
    assert [r.problem for r in report.results] == list(PROBLEMS)
    assert all(r.steps == 50 and r.term is None and not r.scalar_differences for r in report.results)
    assert report.step is None and report.term is None
    text = str(report)
    assert "3 of 3 problems agree: OK" in text and "FAIL" not in text


def test_options_reach_both_and_reference_kwargs_replace_them():
    assert check_optimizer(MyAdam, steps=30, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05).ok
    report = check_optimizer(MyAdam, reference=optim.AdamW, steps=30, weight_decay=0.1, decoupled=True,
                             reference_kwargs=dict(weight_decay=0.1))
    assert report.ok, report
    assert "AdamW(lr=0.01, weight_decay=0.1)" in str(report)
    assert check_optimizer(MySGD, reference=optim.SGD, steps=40, lr=1e-3, momentum=0.9, dampening=0.3).ok


def test_classes_outside_tinyopt_and_closures():
    report = check_optimizer(PlainGD, reference=optim.GD, steps=20, lr=1e-3)
    assert report.ok, report
    assert check_optimizer(ClosureGD, reference=optim.GD, steps=20, lr=1e-3).ok


def test_recorded_tensors_are_compared_like_arrays():
    ok = check_optimizer(TensorRecordingAdam, steps=10)
    assert ok.ok
    bad = check_optimizer(type("T", (TensorRecordingAdam,), {"mistake": "no bias correction"}), steps=10)
    assert bad.term.name == "m_hat" and bad.step == 1


def test_to_array_takes_every_form():
    x = np.arange(3.0)
    for value in (x, to.tensor(x), list(x)):
        np.testing.assert_array_equal(_to_array(value), x)
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(_to_array(torch.tensor(x, requires_grad=True)), x)


# ---------------------------------------------------------------------------- the classic mistakes
@pytest.mark.parametrize("mistake, reference, options, step, term", [
    ("no bias correction", optim.Adam, {}, 1, "m_hat"),
    ("eps inside the square root", optim.Adam, {}, 1, "lr_eff"),
    ("L2 instead of decoupled", optim.AdamW, dict(weight_decay=0.1, decoupled=True), 1, "g"),
    ("t starts at 0", optim.Adam, {}, 1, "m_hat"),
    ("m initialised with g", optim.Adam, {}, 1, "m"),
    ("t never increments", optim.Adam, {}, 2, "m_hat"),
])
def test_each_planted_mistake_is_found_at_its_step_and_term(mistake, reference, options, step, term):
    reference_kwargs = {k: v for k, v in options.items() if k != "decoupled"} if "decoupled" in options else None
    report = check_optimizer(adam_with(mistake), reference=reference, steps=20, reference_kwargs=reference_kwargs,
                             **options)
    assert not report.ok
    assert report.step == step and report.term.name == term and report.term.step == step
    assert report.param is not None and report.element is not None and report.abs_error > 0
    text = str(report)
    assert f"differs at step {step}" in text and report.term.symbol in text


def test_the_sentence_names_the_formula_and_both_values():
    report = check_optimizer(adam_with("no bias correction"), steps=5, problems=["quadratic"])
    term = report.term
    assert term.symbol == "m̂_t" and "1 − β₁ᵗ" in term.meaning
    assert term.expected == pytest.approx(10 * term.got)  # m / (1 − β₁) with β₁ = 0.9, at t = 1
    assert term.sentence().startswith("m̂_t (m_hat) differs at step 1 of quadratic")
    assert "expected bias-corrected m_t / (1 − β₁ᵗ) = " in term.sentence()
    # the parameter difference: the element with the largest error at the first differing step
    d = report.results[0].difference
    assert d.problem == "quadratic" and d.step == 1 and d.param == 0 and d.param_name == "Θ" and len(d.element) == 2
    assert d.abs_error == abs(d.got - d.expected) > 0
    assert d.element == term.element  # the term's largest error is at the same element here


def test_a_step_counter_starting_at_zero_is_named():
    report = check_optimizer(adam_with("t starts at 0"), steps=5, problems=["rosenbrock"])
    t = [s for s in report.results[0].scalar_differences if s.name == "t"]
    assert t and t[0].expected == 1 and t[0].got == 0 and t[0].step == 1
    assert report.term.got in (np.inf, -np.inf) or np.isnan(report.term.got)  # m / (1 − β₁⁰) = m / 0


def test_momentum_buffer_initialised_with_zero_matters_only_with_dampening():
    assert check_optimizer(ZeroBufferSGD, reference=optim.SGD, steps=30, lr=1e-3, momentum=0.9).ok
    report = check_optimizer(ZeroBufferSGD, reference=optim.SGD, steps=30, lr=1e-3, momentum=0.9, dampening=0.5)
    assert report.step == 1 and report.term.name == "buf"


def test_an_untraced_candidate_still_gets_the_parameter_difference():
    class WrongGD(PlainGD):
        def step(self):
            for p in self.params:
                p.data -= 2 * self.lr * np.asarray(p.grad)

    report = check_optimizer(WrongGD, reference=optim.GD, steps=5, lr=1e-3)
    assert report.step == 1 and report.term is None
    assert "no formula terms compared" in str(report)
    d = report.results[0].difference
    start = dict(zip(PROBLEMS, make_problems()))["quadratic"].init[0][d.element]
    assert d.got - start == pytest.approx(2 * (d.expected - start))  # twice the reference's step


def test_divergence_of_the_reference_is_reported_not_compared_further():
    report = check_optimizer(optim.SGD, reference=optim.SGD, steps=50, lr=1e-2, problems=["rosenbrock"])
    r = report.results[0]
    assert r.ok and r.steps < 50 and "diverged" in r.note


def test_against_torch_directly():
    torch = pytest.importorskip("torch")
    report = check_optimizer(MyAdam, reference=torch.optim.Adam, steps=200, weight_decay=0.01)
    assert report.ok, report
    bad = check_optimizer(adam_with("no bias correction"), reference=torch.optim.Adam, steps=5)
    assert bad.step == 1 and bad.term is None


def test_invalid_arguments_raise_before_running():
    with pytest.raises(ValueError, match="steps"):
        check_optimizer(MyAdam, steps=0)
    with pytest.raises(ValueError, match="learning rate"):
        check_optimizer(MyAdam, lr=-1.0)
    with pytest.raises(ValueError, match="unknown problem"):
        check_optimizer(MyAdam, problems=["nope"])
    with pytest.raises(TypeError, match="optimizer class"):
        check_optimizer(3)


def test_problems_are_reproducible_from_the_seed():
    a, b, c = make_problems(seed=1), make_problems(seed=1), make_problems(seed=2)
    for pa, pb in zip(a, b):
        for x, y in zip(pa.init, pb.init):
            np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0].init[0], c[0].init[0])


# ---------------------------------------------------------------------------- the command line
MODULE = textwrap.dedent('''
    import numpy as np
    from tinyopt.optim import Optimizer

    class GoodGD(Optimizer):
        def __init__(self, params, lr=1e-3):
            super().__init__(params, dict(lr=lr))

        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    update = -group["lr"] * np.asarray(p.grad)
                    p.data += update
                    self._record(p, group, dict(g=np.asarray(p.grad), update=update, theta=p.data))

    class HalfGD(GoodGD):
        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    update = -0.5 * group["lr"] * np.asarray(p.grad)
                    p.data += update
                    self._record(p, group, dict(g=np.asarray(p.grad), update=update, theta=p.data))
''')


@pytest.fixture
def student_module(tmp_path, monkeypatch):
    (tmp_path / "student_opt.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def test_cli_candidate_passes_and_fails(student_module, capsys):
    assert cli.main(["verify", "--candidate", "student_opt:GoodGD", "--reference", "gd", "--lr", "1e-3",
                     "--steps", "20"]) == 0
    assert "3 of 3 problems agree: OK" in capsys.readouterr().out
    assert cli.main(["verify", "--candidate", f"{student_module / 'student_opt.py'}:HalfGD", "--reference", "GD",
                     "--lr", "1e-3", "--problem", "mlp"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "Δθ_t (update) differs at step 1 of mlp" in out


def test_cli_options_are_python_literals(student_module, capsys):
    code = cli.main(["verify", "--candidate", "student_opt:GoodGD", "--reference", "sgd", "--lr", "1e-3",
                     "--steps", "5", "--reference-option", "momentum=0.0", "--reference-option", "nesterov=False"])
    assert code == 0, capsys.readouterr()
    assert "vs SGD(lr=0.001, momentum=0.0, nesterov=False)" in capsys.readouterr().out


@pytest.mark.parametrize("argv, fix", [
    (["--candidate", "student_opt"], "must be MODULE:CLASS"),
    (["--candidate", "no_such_module:X"], "run from the folder that contains it"),
    (["--candidate", "student_opt:Missing"], "its classes: GoodGD, HalfGD"),
    (["--candidate", "missing.py:X"], "no file 'missing.py'"),
    (["--candidate", "student_opt:GoodGD", "--reference", "adm"], "choose one of"),
    (["--candidate", "student_opt:GoodGD", "--option", "momentum"], "must be NAME=VALUE"),
    (["--candidate", "student_opt:GoodGD", "--option", "lr=0.1"], "use --lr instead"),
    (["--candidate", "student_opt:GoodGD", "--option", "bogus=1"], "check --option names"),
    (["--candidate", "student_opt:GoodGD", "--steps", "0"], "expected a number >= 1"),
    (["--candidate", "student_opt:GoodGD", "--problem", "nope"], "invalid choice"),
])
def test_cli_mistakes_are_one_line_with_the_fix(student_module, capsys, argv, fix):
    assert cli.main(["verify", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fix in err, err


def test_cli_plain_verify_is_still_delegated(monkeypatch):
    import tinyopt.verify

    seen = []
    monkeypatch.setattr(tinyopt.verify, "main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["verify", "--no-torch"]) == 0 and seen == [["--no-torch"]]


# ---------------------------------------------------------------------------- the lesson
def test_write_your_own_optimizer_lesson_runs(tmp_path):
    result = run_tutorial("11_write_your_own_optimizer.py", tmp_path)
    assert "all checks passed" in result.stdout
    for sentence in ("m̂_t (m_hat) differs at step 1", "γ_eff (lr_eff) differs at step 1", "g_t (g) differs at step 1",
                     "m_t (m) differs at step 1", "b_t (buf) differs at step 1",
                     "scalar t at step 1: expected 1, got 0"):
        assert sentence in result.stdout, sentence
    assert (tmp_path / "11_write_your_own_optimizer" / "seed_adam.py").exists()
