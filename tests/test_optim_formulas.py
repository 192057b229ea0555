"""Each optimizer's first steps, computed by hand from its docstring formula.

The objective is f(θ) = θ² (so g = 2θ) on a single parameter starting at θ₀ = 1; the expected
values are written out as arithmetic on plain Python floats, independent of the code under test.
Then: invalid hyperparameters raise ValueError under torch's conditions, Rosenbrock converges,
and the trace records the docstring's quantities.
"""
import math

import numpy as np
import pytest

import tinyopt as to
from tinyopt import optim


def _path(opt_cls, steps=3, theta0=1.0, lr_schedule=None, **kwargs):
    """θ_1..θ_steps of `opt_cls` on f(θ) = θ², gradients from autograd."""
    p = to.Tensor(np.array([theta0]), requires_grad=True, dtype=np.float64)
    opt = opt_cls([p], **kwargs)
    out = []
    for t in range(steps):
        if lr_schedule is not None:
            opt.param_groups[0]["lr"] = lr_schedule[t]
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        opt.step()
        out.append(float(p.data[0]))
    return out


def approx(values):
    return pytest.approx(values, rel=1e-12, abs=1e-15)


def test_gd():
    # θ_t = θ_{t-1} − 0.1 · 2θ_{t-1} = 0.8 θ_{t-1}
    assert _path(optim.GD, lr=0.1) == approx([0.8, 0.64, 0.512])


def test_sgd_plain_and_weight_decay():
    assert _path(optim.SGD, lr=0.1) == approx([0.8, 0.64, 0.512])
    # g = 2θ + 0.5θ = 2.5θ  →  θ ← 0.75 θ
    assert _path(optim.SGD, lr=0.1, weight_decay=0.5) == approx([0.75, 0.5625, 0.421875])


def test_sgd_momentum():
    # t=1: g=2, b=2 (no dampening on the first step), θ=1−0.2=0.8
    # t=2: g=1.6, b=0.9·2+1.6=3.4, θ=0.8−0.34=0.46
    # t=3: g=0.92, b=0.9·3.4+0.92=3.98, θ=0.46−0.398=0.062
    assert _path(optim.SGD, lr=0.1, momentum=0.9) == approx([0.8, 0.46, 0.062])


def test_sgd_dampening():
    # t=1: b=g=2 (dampening ignored), θ=0.8; t=2: g=1.6, b=0.9·2+0.5·1.6=2.6, θ=0.8−0.26=0.54
    assert _path(optim.SGD, steps=2, lr=0.1, momentum=0.9, dampening=0.5) == approx([0.8, 0.54])


def test_sgd_nesterov():
    # t=1: g=2, b=2, d=g+0.9b=3.8, θ=1−0.38=0.62
    # t=2: g=1.24, b=0.9·2+1.24=3.04, d=1.24+0.9·3.04=3.976, θ=0.62−0.3976=0.2224
    assert _path(optim.SGD, steps=2, lr=0.1, momentum=0.9, nesterov=True) == approx([0.62, 0.2224])


def test_sgd_maximize_ascends():
    # g ← −2θ: θ ← θ + 0.2θ = 1.2θ
    assert _path(optim.SGD, steps=2, lr=0.1, maximize=True) == approx([1.2, 1.44])


def test_sutskever_momentum_equals_pytorch_with_constant_lr():
    for nesterov in (False, True):
        a = _path(optim.SGD, steps=6, lr=0.1, momentum=0.9, nesterov=nesterov)
        b = _path(optim.SGD, steps=6, lr=0.1, momentum=0.9, nesterov=nesterov, momentum_style="sutskever")
        assert a == pytest.approx(b, rel=1e-12)


def test_sutskever_momentum_differs_when_lr_changes():
    schedule = [0.1, 0.05]
    # pytorch: t=2: b=0.9·2+1.6=3.4, θ=0.8−0.05·3.4=0.63
    assert _path(optim.SGD, steps=2, lr=0.1, momentum=0.9, lr_schedule=schedule) == approx([0.8, 0.63])
    # sutskever: v1=0.1·2=0.2, θ=0.8; v2=0.9·0.2+0.05·1.6=0.26, θ=0.8−0.26=0.54
    assert _path(optim.SGD, steps=2, lr=0.1, momentum=0.9, lr_schedule=schedule,
                 momentum_style="sutskever") == approx([0.8, 0.54])


def test_adagrad():
    # t=1: g=2, sum=4, θ=1 − 0.1·2/(2+ε) ; t=2: g=2θ1, sum=4+g², θ2 = θ1 − 0.1 g/(√sum + ε)
    eps = 1e-10
    th1 = 1 - 0.1 * 2 / (2 + eps)
    g2 = 2 * th1
    th2 = th1 - 0.1 * g2 / (math.sqrt(4 + g2 * g2) + eps)
    assert _path(optim.Adagrad, steps=2, lr=0.1) == approx([th1, th2])


def test_adagrad_lr_decay_and_initial_accumulator():
    eps, s0, decay = 1e-10, 0.5, 0.5
    th1 = 1 - 0.1 * 2 / (math.sqrt(s0 + 4) + eps)  # clr = 0.1 / (1 + 0·0.5)
    g2 = 2 * th1
    th2 = th1 - (0.1 / (1 + 1 * decay)) * g2 / (math.sqrt(s0 + 4 + g2 * g2) + eps)
    assert _path(optim.Adagrad, steps=2, lr=0.1, lr_decay=decay, initial_accumulator_value=s0) == approx([th1, th2])


def test_rmsprop():
    eps, a = 1e-8, 0.99
    v1 = (1 - a) * 4  # 0.04
    th1 = 1 - 0.01 * 2 / (math.sqrt(v1) + eps)  # ≈ 0.9: the first RMSprop step is γ/√(1−α) = 10γ
    g2 = 2 * th1
    v2 = a * v1 + (1 - a) * g2 * g2
    th2 = th1 - 0.01 * g2 / (math.sqrt(v2) + eps)
    assert _path(optim.RMSprop, steps=2) == approx([th1, th2])


def test_rmsprop_centered_momentum():
    eps, a, mu, lr = 1e-8, 0.9, 0.5, 0.01
    v1, gbar1 = (1 - a) * 4, (1 - a) * 2
    b1 = 2 / (math.sqrt(v1 - gbar1**2) + eps)
    th1 = 1 - lr * b1
    g2 = 2 * th1
    v2, gbar2 = a * v1 + (1 - a) * g2 * g2, a * gbar1 + (1 - a) * g2
    b2 = mu * b1 + g2 / (math.sqrt(v2 - gbar2**2) + eps)
    th2 = th1 - lr * b2
    assert _path(optim.RMSprop, steps=2, lr=lr, alpha=a, momentum=mu, centered=True) == approx([th1, th2])


def _adam_by_hand(steps, lr=0.1, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, decoupled=False, amsgrad=False,
                  bias_correction=True, keras=False):
    th, m, v, vmax, out = 1.0, 0.0, 0.0, 0.0, []
    for t in range(1, steps + 1):
        g = 2 * th
        if decoupled:
            th = th * (1 - lr * wd)
        else:
            g = g + wd * th
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = max(vmax, v)
        c1, c2 = (1 - b1**t, 1 - b2**t) if bias_correction else (1.0, 1.0)
        vv = vmax if amsgrad else v
        if keras:
            th = th - lr * math.sqrt(c2) / c1 * m / (math.sqrt(vv) + eps)
        else:
            th = th - lr * (m / c1) / (math.sqrt(vv / c2) + eps)
        out.append(th)
    return out


def test_adam_first_step_is_lr_times_sign():
    # m̂₁ = g₁, v̂₁ = g₁², so θ₁ = θ₀ − γ g₁/(|g₁| + ε) ≈ θ₀ − γ sign(g₁), whatever the gradient's scale
    assert _path(optim.Adam, steps=1, lr=0.1) == approx([1 - 0.1 * 2 / (2 + 1e-8)])
    assert _path(optim.Adam, steps=1, lr=0.1, theta0=1e-3)[0] == pytest.approx(1e-3 - 0.1, rel=1e-5)


@pytest.mark.parametrize("fused", [None, False])
@pytest.mark.parametrize("options", [dict(), dict(wd=0.1), dict(amsgrad=True), dict(wd=0.1, decoupled=True),
                                     dict(bias_correction=False), dict(keras=True), dict(b1=0.5, b2=0.8, eps=1e-3)])
def test_adam_by_hand(options, fused):
    expected = _adam_by_hand(5, **options)
    kwargs = dict(lr=0.1, betas=(options.get("b1", 0.9), options.get("b2", 0.999)), eps=options.get("eps", 1e-8),
                  weight_decay=options.get("wd", 0.0), amsgrad=options.get("amsgrad", False),
                  decoupled_weight_decay=options.get("decoupled", False),
                  bias_correction=options.get("bias_correction", True),
                  eps_placement="keras" if options.get("keras") else "pytorch", fused=fused)
    assert _path(optim.Adam, steps=5, **kwargs) == approx(expected)


def test_adam_without_bias_correction_first_step():
    # m₁ = 0.1·2 = 0.2, v₁ = 0.001·4 = 0.004: θ₁ = 1 − 0.1·0.2/(√0.004 + ε) = 1 − 0.316…
    assert _path(optim.Adam, steps=1, lr=0.1, bias_correction=False) == approx([1 - 0.02 / (math.sqrt(0.004) + 1e-8)])


def test_adamw_decays_before_the_adam_step():
    # θ ← 1·(1 − 0.1·0.1) = 0.99, then the Adam step −0.1·2/(2+ε) with g computed at θ₀
    assert _path(optim.AdamW, steps=1, lr=0.1, weight_decay=0.1) == approx([0.99 - 0.1 * 2 / (2 + 1e-8)])
    assert _path(optim.AdamW, steps=4, lr=0.1, weight_decay=0.1) == approx(_adam_by_hand(4, wd=0.1, decoupled=True))


def test_adamw_default_weight_decay_is_torchs():
    p = to.Tensor(np.zeros(2), requires_grad=True)
    assert optim.AdamW([p]).defaults["weight_decay"] == 0.01
    assert optim.Adam([p]).defaults["weight_decay"] == 0


# ------------------------------------------------------------------ invalid hyperparameters
def _p():
    return [to.Tensor(np.zeros(3), requires_grad=True)]


@pytest.mark.parametrize("make,message", [
    (lambda: optim.SGD(_p(), lr=-0.1), "Invalid learning rate"),
    (lambda: optim.SGD(_p(), momentum=-0.1), "Invalid momentum"),
    (lambda: optim.SGD(_p(), weight_decay=-1), "Invalid weight_decay"),
    (lambda: optim.SGD(_p(), nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
    (lambda: optim.SGD(_p(), momentum=0.9, dampening=0.1, nesterov=True), "Nesterov"),
    (lambda: optim.SGD(_p(), momentum_style="keras"), "momentum_style"),
    (lambda: optim.GD(_p(), lr=-1), "Invalid learning rate"),
    (lambda: optim.Adam(_p(), lr=-1e-3), "Invalid learning rate"),
    (lambda: optim.Adam(_p(), eps=-1e-8), "Invalid epsilon"),
    (lambda: optim.Adam(_p(), betas=(1.0, 0.999)), "Invalid beta parameter at index 0"),
    (lambda: optim.Adam(_p(), betas=(-0.1, 0.999)), "Invalid beta parameter at index 0"),
    (lambda: optim.Adam(_p(), betas=(0.9, 1.0)), "Invalid beta parameter at index 1"),
    (lambda: optim.Adam(_p(), weight_decay=-0.1), "Invalid weight_decay"),
    (lambda: optim.Adam(_p(), eps_placement="tf"), "eps_placement"),
    (lambda: optim.AdamW(_p(), betas=(0.9, 1.5)), "index 1"),
    (lambda: optim.Adagrad(_p(), lr=-1), "Invalid learning rate"),
    (lambda: optim.Adagrad(_p(), lr_decay=-1), "Invalid lr_decay"),
    (lambda: optim.Adagrad(_p(), initial_accumulator_value=-1), "Invalid initial_accumulator_value"),
    (lambda: optim.Adagrad(_p(), eps=-1), "Invalid epsilon"),
    (lambda: optim.RMSprop(_p(), alpha=-0.5), "Invalid alpha"),
    (lambda: optim.RMSprop(_p(), momentum=-0.5), "Invalid momentum"),
    (lambda: optim.RMSprop(_p(), eps=-1), "Invalid epsilon"),
    (lambda: optim.RMSprop(_p(), lr=-1), "Invalid learning rate"),
])
def test_invalid_hyperparameters_raise_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_invalid_conditions_agree_with_torch():
    """Where torch raises ValueError, tinyopt does; where torch accepts, tinyopt accepts."""
    torch = pytest.importorskip("torch")
    cases = [
        ("SGD", dict(lr=0.0)), ("SGD", dict(lr=-1e-9)), ("SGD", dict(momentum=0.9, nesterov=True)),
        ("SGD", dict(momentum=0.0, nesterov=True)),
        ("Adam", dict(betas=(0.0, 0.0))), ("Adam", dict(betas=(0.999999, 0.9))), ("Adam", dict(eps=0.0)),
        ("AdamW", dict(weight_decay=-0.01)), ("RMSprop", dict(alpha=0.0)), ("RMSprop", dict(alpha=1.5)),
        ("Adagrad", dict(lr_decay=0.0)), ("Adagrad", dict(eps=0.0)),
    ]
    for name, kwargs in cases:
        try:
            getattr(torch.optim, name)([torch.zeros(3, requires_grad=True)], **kwargs)
            torch_raises = False
        except ValueError:
            torch_raises = True
        try:
            getattr(optim, name)(_p(), **kwargs)
            ours_raises = False
        except ValueError:
            ours_raises = True
        assert ours_raises == torch_raises, (name, kwargs)


@pytest.mark.parametrize("name,kwargs", [
    ("SGD", dict(dampening=-1.0)), ("SGD", dict(momentum=1.5)), ("SGD", dict(lr=float("inf"))),
    ("RMSprop", dict(momentum=2.0)), ("Adam", dict(eps=float("inf"))),
])
def test_tinyopt_refuses_what_breaks_the_formula_although_torch_accepts_it(name, kwargs):
    """The deliberate exceptions to the test above: torch accepts these, and they break the formula
    by construction (a negative dampening, μ > 1, non-finite values), so tinyopt refuses them."""
    torch = pytest.importorskip("torch")
    getattr(torch.optim, name)([torch.zeros(3, requires_grad=True)], **kwargs)  # torch: accepted
    with pytest.raises(ValueError):
        getattr(optim, name)(_p(), **kwargs)


def test_bad_params_argument():
    p = to.Tensor(np.zeros(3), requires_grad=True)
    with pytest.raises(TypeError, match="iterable of Tensors"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([p * 2], lr=0.1)


# ------------------------------------------------------------------ Rosenbrock
def rosenbrock(p):
    x, y = p[0], p[1]
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


@pytest.mark.parametrize("name,kwargs,steps,tol", [
    ("SGD", dict(lr=1e-3, momentum=0.9), 2000, 1e-3),
    ("SGD", dict(lr=1e-3, momentum=0.9, nesterov=True), 2000, 1e-3),
    ("Adam", dict(lr=0.02), 3000, 2e-3),
    ("AdamW", dict(lr=0.02, weight_decay=1e-4), 3000, 1e-2),
    ("RMSprop", dict(lr=1e-3, momentum=0.9), 2500, 2e-2),
    ("Adagrad", dict(lr=0.5), 3000, 0.1),
    ("GD", dict(lr=1e-3), 5000, 0.15),  # slow along the curved valley: the lesson
])
def test_rosenbrock_converges(name, kwargs, steps, tol):
    """From the classic start (−1.2, 1), every optimizer gets near the minimum (1, 1)."""
    p = to.Tensor(np.array([-1.2, 1.0]), requires_grad=True, dtype=np.float64)
    opt = getattr(optim, name)([p], **kwargs)
    start = float(rosenbrock(p).data)

    def closure():
        opt.zero_grad()
        loss = rosenbrock(p)
        loss.backward()
        return loss

    for _ in range(steps):
        opt.step(closure)
    assert float(rosenbrock(p).data) < start * 1e-2
    np.testing.assert_allclose(p.data, [1.0, 1.0], atol=tol)


# ------------------------------------------------------------------ trace
def test_trace_records_the_docstring_quantities_of_adam():
    p = to.Tensor(np.array([1.0, -2.0, 3.0, 0.5]), requires_grad=True, dtype=np.float64)
    opt = optim.Adam([p], lr=0.1, amsgrad=True)
    with opt.trace(k=3) as tr:
        for _ in range(3):
            opt.zero_grad()
            (p * p).sum().backward()
            opt.step()
    assert opt._tracer is None  # detached on exit
    steps = tr.steps(0)
    assert [r.step for r in steps] == [1, 2, 3]
    for r in steps:
        q, s = r.quantities, r.scalars
        assert set(q) == {"theta_prev", "g", "m", "v", "v_max", "m_hat", "v_hat", "lr_eff", "update", "theta"}
        assert all(len(x) == 3 for x in q.values())
        # the recorded quantities obey the docstring's formula
        np.testing.assert_allclose(q["m_hat"], q["m"] / (1 - 0.9**r.step))
        np.testing.assert_allclose(q["v_hat"], q["v_max"] / (1 - 0.999**r.step))
        np.testing.assert_allclose(q["lr_eff"], 0.1 / (np.sqrt(q["v_hat"]) + 1e-8))
        np.testing.assert_allclose(q["theta"], q["theta_prev"] + q["update"])
        np.testing.assert_allclose(q["g"], 2 * q["theta_prev"])
        assert s["bias_correction1"] == pytest.approx(1 - 0.9**r.step)
    np.testing.assert_allclose(tr.history("theta")[-1], p.data[:3])
    with pytest.raises(KeyError, match="recorded"):
        tr.history("nonexistent")


def test_trace_uses_the_formula_path_and_matches_untraced_run():
    a = to.Tensor(np.linspace(-1, 1, 10), requires_grad=True, dtype=np.float64)
    b = to.Tensor(np.linspace(-1, 1, 10), requires_grad=True, dtype=np.float64)
    oa, ob = optim.SGD([a], lr=0.1, momentum=0.9), optim.SGD([b], lr=0.1, momentum=0.9)
    tr = oa.trace(k=None)
    for _ in range(4):
        for p, o in ((a, oa), (b, ob)):
            o.zero_grad()
            (p * p * p).sum().backward()
            o.step()
    tr.detach()
    np.testing.assert_allclose(a.data, b.data, rtol=1e-14)
    assert tr.history("buf").shape == (4, 10)


@pytest.mark.parametrize("name", ["GD", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW"])
def test_trace_table_is_readable(name):
    p = to.Tensor(np.array([[0.5, -1.0, 2.0], [0.25, 0.0, 4.0]]), requires_grad=True, dtype=np.float64)
    opt = getattr(optim, name)([p], lr=0.1)
    with opt.trace(k=2) as tr:
        for _ in range(2):
            opt.zero_grad()
            (p * p).sum().backward()
            opt.step()
    text = tr.table(param=0)
    lines = text.splitlines()
    assert lines[0].startswith(f"{name} · parameter 0 · shape (2, 3) · elements [0:2] of 6")
    assert sum(line.startswith("── t = ") for line in lines) == 2
    assert "θ_t" in text and "g_t" in text and "[0]" in text and "[1]" in text and "[2]" not in text
    # θ_{t−1} of step 1 is printed: the initial values
    row = next(line for line in lines if line.strip().startswith("θ_{t−1}"))
    assert row.split()[2:4] == ["0.5", "-1"]
    # the columns line up: every row of a block has the same width up to the "meaning" column
    assert "(no steps recorded" in tr.table(param=5)
    assert tr.table(steps=[2]).count("── t = ") == 1
