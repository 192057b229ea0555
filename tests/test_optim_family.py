"""The rest of torch.optim's family (NAdam, RAdam, Adamax, Adadelta, Rprop, ASGD, Adafactor, Muon,
LBFGS) against torch for the option combinations torch has, and Lion and LAMB against their
papers' algorithms; state dicts, bit-identical resume and the trace for all of them.

The comparison problem is test_optim_torch's: a convex quadratic plus a fixed noise sequence,
two parameters in two param groups (different lr), float64, the same gradients given to both
libraries. torch keeps NAdam's μ product and ASGD's η, μ as scalar tensors of its *default* dtype
(float32 unless changed), so those comparisons run with torch's default dtype set to float64.
"""
import copy
import itertools
import math

import numpy as np
import pytest

import tinyopt as to
from tinyopt import optim
from tinyopt.kernels import backend

STEPS = 200
RTOL, ATOL = 1e-9, 1e-12
KERNEL_BACKED = {"Adamax", "NAdam", "RAdam", "Adadelta", "Rprop", "ASGD", "Lion", "LAMB", "Adafactor"}


def _combos(**options):
    """Every combination of the given option values, as kwargs dicts."""
    names = list(options)
    return [dict(zip(names, values)) for values in itertools.product(*options.values())]


CASES = (
    [("NAdam", c) for c in _combos(weight_decay=[0.0, 0.1], decoupled_weight_decay=[False, True],
                                   maximize=[False, True], momentum_decay=[4e-3, 0.02])]
    + [("NAdam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6))]
    + [("RAdam", c) for c in _combos(weight_decay=[0.0, 0.1], decoupled_weight_decay=[False, True],
                                     maximize=[False, True])]
    + [("RAdam", dict(lr=0.01, betas=(0.5, 0.9))), ("RAdam", dict(betas=(0.9, 0.1)))]  # β₂ = 0.1: always the fallback
    + [("Adamax", c) for c in _combos(weight_decay=[0.0, 0.1], maximize=[False, True])]
    + [("Adamax", dict(lr=0.01, betas=(0.5, 0.9), eps=1e-3))]
    + [("Adadelta", c) for c in _combos(weight_decay=[0.0, 0.1], maximize=[False, True])]
    + [("Adadelta", dict(lr=0.5, rho=0.5, eps=1e-4)), ("Adadelta", dict(rho=1.0)), ("Adadelta", dict(rho=0.0))]
    + [("Rprop", c) for c in _combos(maximize=[False, True], etas=[(0.5, 1.2), (0.2, 2.0)])]
    + [("Rprop", dict(lr=0.1, step_sizes=(1e-3, 0.05)))]
    + [("ASGD", c) for c in _combos(weight_decay=[0.0, 0.1], maximize=[False, True], t0=[1e6, 10.0])]
    + [("ASGD", dict(lr=0.05, lambd=0.01, alpha=0.5, t0=0.0))]
    + [("Adafactor", c) for c in _combos(weight_decay=[0.0, 0.1], maximize=[False, True],
                                         eps=[(None, 1e-3), (1e-3, 1e-2)])]
    + [("Adafactor", dict(lr=0.05, beta2_decay=-0.5, d=2.0)), ("Adafactor", dict(beta2_decay=0.0))]
)


def _problem(seed=0, shapes=((4, 6), (6,))):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((6, 6))
    hess = a @ a.T / 6 + 0.2 * np.eye(6)  # SPD
    theta0 = [rng.standard_normal(s) for s in shapes]
    noise = [[rng.standard_normal(s) for s in shapes] for _ in range(STEPS)]
    return hess, theta0, noise


def _gradient(theta, hess, noise_t):
    """W @ H for matrices whose last dimension is 6, 0.5 θ otherwise; plus the noise."""
    return (theta @ hess if theta.shape[-1] == 6 and theta.ndim > 1 else 0.5 * theta) + noise_t


def _run(lib, name, kwargs, theta0, hess, noise, steps=STEPS):
    """The trajectory of `lib`'s optimizer (lib = tinyopt.optim or torch.optim)."""
    torch_side = lib is not optim
    if torch_side:
        import torch

        params = [torch.tensor(t.copy(), requires_grad=True) for t in theta0]
    else:
        params = [to.Tensor(t.copy(), requires_grad=True, dtype=np.float64) for t in theta0]
    lr = kwargs.get("lr", getattr(lib, name)([params[0]]).defaults["lr"])
    groups = [{"params": params[:1]}] + ([{"params": params[1:], "lr": lr * 0.5}] if len(params) > 1 else [])
    opt = getattr(lib, name)(groups, **kwargs)
    path = []
    for t in range(steps):
        for p, n in zip(params, noise[t]):
            data = p.detach().numpy() if torch_side else p.data
            g = _gradient(data, hess, n)
            p.grad = torch.from_numpy(np.ascontiguousarray(g)) if torch_side else g
        opt.step()
        path.append([(p.detach().numpy() if torch_side else p.data).copy() for p in params])
    return path, opt


def _assert_same_path(ours, theirs, rtol=RTOL, atol=ATOL):
    for t, (a, b) in enumerate(zip(ours, theirs)):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=f"diverged at step {t + 1}")


@pytest.fixture
def torch64():
    """torch with float64 as its default dtype (restored afterwards)."""
    torch = pytest.importorskip("torch")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield torch
    torch.set_default_dtype(previous)


# ------------------------------------------------------------------ against torch
TORCH_RUNS = [(n, k, b) for n, k in CASES for b in (["reference", "numba"] if n in KERNEL_BACKED else ["reference"])]


@pytest.mark.parametrize("name,kwargs,kernels", TORCH_RUNS, ids=[f"{n}-{k}-{b}" for n, k, b in TORCH_RUNS])
def test_matches_torch(name, kwargs, kernels, torch64):
    shapes = ((4, 6), (6,), (2, 3, 6)) if name == "Adafactor" else ((4, 6), (6,))  # a 3-D factored case too
    hess, theta0, noise = _problem(shapes=shapes)
    with backend(kernels):
        ours, _ = _run(optim, name, kwargs, theta0, hess, noise)
    theirs, _ = _run(torch64.optim, name, kwargs, theta0, hess, noise)
    _assert_same_path(ours, theirs)


def test_nadam_and_asgd_differ_from_torch_in_float32_scalar_state_only():
    """With torch's default dtype float32, torch's NAdam rounds its μ product and ASGD its η to
    float32; tinyopt keeps Python floats. The paths then differ at ~1e-7, not at ~1e-15."""
    torch = pytest.importorskip("torch")
    if torch.get_default_dtype() != torch.float32:
        pytest.skip("needs torch's default dtype float32")
    hess, theta0, noise = _problem()
    for name, kwargs in [("NAdam", {}), ("ASGD", dict(t0=10.0))]:
        ours, _ = _run(optim, name, kwargs, theta0, hess, noise)
        theirs, _ = _run(torch.optim, name, kwargs, theta0, hess, noise)
        err = max(np.max(np.abs(a - b)) for x, y in zip(ours, theirs) for a, b in zip(x, y))
        assert 1e-12 < err < 1e-4, (name, err)


@pytest.mark.parametrize("kwargs", _combos(nesterov=[True, False], weight_decay=[0.1, 0.0],
                                           adjust_lr_fn=[None, "original", "match_rms_adamw"]))
def test_muon_matches_torch_code_with_float64_newton_schulz(kwargs, torch64):
    """torch's own Muon, with its Newton–Schulz iteration run in float64 instead of bfloat16, and
    tinyopt's with ns_dtype=None: the formula to 1e-9. A wide (4, 6) and a tall (6, 3) matrix."""
    import torch.optim._muon as torch_muon

    from tinyopt.verify import _torch_float64_newton_schulz

    hess, theta0, noise = _problem(shapes=((4, 6), (6, 3)))
    kwargs = dict(lr=0.02, **kwargs)
    ours, _ = _run(optim, "Muon", {**kwargs, "ns_dtype": None}, theta0, hess, noise)
    original = torch_muon._zeropower_via_newtonschulz
    torch_muon._zeropower_via_newtonschulz = _torch_float64_newton_schulz(torch64)
    try:
        theirs, _ = _run(torch64.optim, "Muon", kwargs, theta0, hess, noise)
    finally:
        torch_muon._zeropower_via_newtonschulz = original
    _assert_same_path(ours, theirs)


def test_muon_bfloat16_matches_torch_to_bfloat16_precision(torch64):
    """The default (bfloat16 Newton–Schulz, as torch): the first step is torch's to the last bit
    or two (torch's θ − γ′O is a fused multiply-add); over 200 steps the paths stay within a few
    bfloat16 units of the distance travelled."""
    hess, theta0, noise = _problem(shapes=((4, 6), (6, 3)))
    ours, _ = _run(optim, "Muon", dict(lr=0.02), theta0, hess, noise)
    theirs, _ = _run(torch64.optim, "Muon", dict(lr=0.02), theta0, hess, noise)
    for a, b in zip(ours[0], theirs[0]):
        np.testing.assert_allclose(a, b, rtol=4e-16, atol=0)
    for a, b, start in zip(ours[-1], theirs[-1], theta0):
        assert np.max(np.abs(a - b)) < 2**-6 * np.max(np.abs(b - start))


@pytest.mark.parametrize("twin", ["reference", "fast"])
def test_muon_rounds_to_bfloat16_like_torch(twin):
    torch = pytest.importorskip("torch")
    from tinyopt.kernels.optim_update import round_to_bfloat16

    rng = np.random.default_rng(0)
    x = rng.standard_normal(200_000) * 10.0 ** rng.integers(-30, 30, 200_000)
    x[::997] = np.nan
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0 + 2**-8, 1.0 + 3 * 2**-8, 3.4e38, 1e-45])
    for values in (x, x.astype(np.float32), special, x.reshape(400, 500)[:, ::3]):
        ours = getattr(round_to_bfloat16, twin)(values)
        np.testing.assert_array_equal(ours, torch.from_numpy(np.ascontiguousarray(values)).bfloat16().float().numpy())
        assert ours.dtype == np.float32 and ours.shape == values.shape


def test_muon_refuses_parameters_that_are_not_matrices():
    w, b = to.Tensor(np.zeros((2, 3)), requires_grad=True), to.Tensor(np.zeros(3), requires_grad=True)
    with pytest.raises(ValueError, match="only supports 2D parameters"):
        optim.Muon([w, b])
    opt = optim.Muon([w])
    with pytest.raises(ValueError, match="only supports 2D parameters"):
        opt.add_param_group({"params": [b]})
    assert len(opt.param_groups) == 1


def _lbfgs_run(lib, kwargs, theta0, hess, b, steps):
    """L-BFGS on the deterministic f(W) = ½ tr(W H Wᵀ) + ⟨B, W⟩, the same NumPy gradient for both."""
    torch_side = lib is not optim
    if torch_side:
        import torch

        p = torch.tensor(theta0.copy(), requires_grad=True)
    else:
        p = to.Tensor(theta0.copy(), requires_grad=True, dtype=np.float64)
    opt = lib.LBFGS([p], **kwargs)

    def closure():
        w = p.detach().numpy() if torch_side else p.data
        g = w @ hess + b
        loss = 0.5 * float(np.sum((w @ hess) * w)) + float(np.sum(b * w))
        if torch_side:
            p.grad = torch.from_numpy(np.ascontiguousarray(g))
            return torch.tensor(loss)
        p.grad = g
        return loss

    path = []
    for _ in range(steps):
        opt.step(closure)
        path.append([(p.detach().numpy() if torch_side else p.data).copy()])
    return path, opt


@pytest.mark.parametrize("kwargs", _combos(line_search_fn=[None, "strong_wolfe"], history_size=[100, 2],
                                           max_iter=[20, 3])
                         + [dict(max_iter=4, line_search_fn="strong_wolfe", tolerance_grad=1e-5)])
def test_lbfgs_matches_torch(kwargs, torch64):
    hess, theta0, noise = _problem()
    ours, opt = _lbfgs_run(optim, kwargs, theta0[0], hess, noise[0][0], 30)
    theirs, topt = _lbfgs_run(torch64.optim, kwargs, theta0[0], hess, noise[0][0], 30)
    _assert_same_path(ours, theirs)
    s, ts = opt.state[opt._params[0]], topt.state[topt._params[0]]
    assert (s["func_evals"], s["n_iter"]) == (ts["func_evals"], ts["n_iter"])
    assert set(s) == set(ts)


def test_lbfgs_needs_a_closure_and_one_group():
    w = to.Tensor(np.zeros(3), requires_grad=True)
    with pytest.raises(ValueError, match="parameter groups"):
        optim.LBFGS([{"params": [w]}, {"params": [to.Tensor(np.zeros(2), requires_grad=True)]}])
    with pytest.raises(TypeError):
        optim.LBFGS([w]).step()
    with pytest.raises(ValueError, match="closure"):
        optim.LBFGS([w]).step(None)


def test_lbfgs_strong_wolfe_minimises_rosenbrock():
    p = to.Tensor(np.array([-1.2, 1.0]), requires_grad=True, dtype=np.float64)
    opt = optim.LBFGS([p], line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (1 - p[0]) ** 2 + 100 * (p[1] - p[0] * p[0]) ** 2
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    np.testing.assert_allclose(p.data, [1.0, 1.0], atol=1e-4)  # it stops when f changes by < 1e-9
    assert float(closure().data) < 1e-9


@pytest.mark.parametrize("name,kwargs", [("NAdam", {}), ("RAdam", {}), ("Adamax", {}), ("Adadelta", {}),
                                         ("Rprop", {}), ("ASGD", dict(t0=5.0)), ("Adafactor", {}),
                                         ("Muon", dict(ns_dtype=None))])
def test_state_dict_keys_and_values_match_torch(name, kwargs, torch64):
    shapes = ((4, 6), (6, 3)) if name == "Muon" else ((4, 6), (6,))
    hess, theta0, noise = _problem(3, shapes=shapes)
    _, ours = _run(optim, name, kwargs, theta0, hess, noise, steps=20)
    torch_kwargs = {k: v for k, v in kwargs.items() if k != "ns_dtype"}
    if name == "Muon":
        import torch.optim._muon as torch_muon

        from tinyopt.verify import _torch_float64_newton_schulz

        original = torch_muon._zeropower_via_newtonschulz
        torch_muon._zeropower_via_newtonschulz = _torch_float64_newton_schulz(torch64)
    try:
        _, theirs = _run(torch64.optim, name, torch_kwargs, theta0, hess, noise, steps=20)
    finally:
        if name == "Muon":
            torch_muon._zeropower_via_newtonschulz = original
    for index in (0, 1):
        s_ours, s_theirs = ours.state_dict()["state"][index], theirs.state_dict()["state"][index]
        assert set(s_theirs) == set(s_ours), name
        for key, value in s_theirs.items():
            np.testing.assert_allclose(np.asarray(s_ours[key], dtype=np.float64), value.detach().numpy(),
                                       rtol=RTOL, atol=ATOL, err_msg=f"{name} state {key!r}")


def test_constructor_signatures_match_torch():
    """torch's argument names, order and defaults; tinyopt-only options are keyword-only and come
    after torch's (`fused`, `ns_dtype`), torch-only ones it does not support are absent."""
    import inspect

    torch = pytest.importorskip("torch")
    tinyopt_only = {"fused", "ns_dtype"}
    torch_only = {"foreach", "capturable", "differentiable", "fused"}
    for name in ["NAdam", "RAdam", "Adamax", "Adadelta", "Rprop", "ASGD", "LBFGS", "Adafactor", "Muon"]:
        ours = {p.name: p.default for p in inspect.signature(getattr(optim, name).__init__).parameters.values()
                if p.name not in tinyopt_only}
        theirs = {p.name: p.default for p in inspect.signature(getattr(torch.optim, name).__init__).parameters.values()
                  if p.name not in torch_only or p.name in ours}
        assert ours == theirs, name
        order = [n for n in inspect.signature(getattr(torch.optim, name).__init__).parameters if n in ours]
        assert [n for n in inspect.signature(getattr(optim, name).__init__).parameters if n in order] == order, name


# ------------------------------------------------------------------ Lion and LAMB: the papers' algorithms
def test_lion_first_steps_by_hand():
    """Algorithm 2 of Chen et al. 2023 on f(θ) = θ² from θ₀ = 1 (g = 2θ), γ = 0.1, β = (0.9, 0.99), λ = 0.5:
    t=1: c = 0.1·2 = 0.2 > 0, θ = 1 − 0.1 (1 + 0.5) = 0.85, m = 0.01·2 = 0.02;
    t=2: g = 1.7, c = 0.9·0.02 + 0.1·1.7 = 0.188 > 0, θ = 0.85 − 0.1 (1 + 0.425) = 0.7075."""
    p = to.Tensor(np.array([1.0]), requires_grad=True, dtype=np.float64)
    opt = optim.Lion([p], lr=0.1, betas=(0.9, 0.99), weight_decay=0.5)
    out = []
    for _ in range(2):
        p.grad = 2 * p.data
        opt.step()
        out.append(float(p.data[0]))
    assert out == pytest.approx([0.85, 0.7075], rel=1e-14)
    assert opt.state[p]["exp_avg"][0] == pytest.approx(0.99 * 0.02 + 0.01 * 1.7, rel=1e-14)


def test_lion_moves_every_element_by_exactly_lr():
    rng = np.random.default_rng(0)
    p = to.Tensor(rng.standard_normal(1000), requires_grad=True, dtype=np.float64)
    before = p.data.copy()
    opt = optim.Lion([p], lr=0.01)
    p.grad = rng.standard_normal(1000) * 10.0 ** rng.integers(-5, 5, 1000)  # scale does not matter
    opt.step()
    np.testing.assert_allclose(np.abs(p.data - before), 0.01, rtol=1e-12)


def test_lamb_first_step_by_hand():
    """Algorithm 2 of You et al. 2019 on one layer θ₀ = (3, 4) (‖θ₀‖ = 5), g = (1, −2), γ = 0.1, λ = 0.1:
    t=1: m̂ = g, v̂ = g², r = g/(|g| + ε) ≈ (1, −1), u = r + λθ = (1.3, −0.6), ‖u‖ = √1.69+0.36,
    θ₁ = θ₀ − 0.1 · 5/‖u‖ · u."""
    p = to.Tensor(np.array([3.0, 4.0]), requires_grad=True, dtype=np.float64)
    opt = optim.LAMB([p], lr=0.1, weight_decay=0.1, eps=0.0)
    p.grad = np.array([1.0, -2.0])
    opt.step()
    u = np.array([1.0 + 0.3, -1.0 + 0.4])
    expected = np.array([3.0, 4.0]) - 0.1 * 5.0 / math.sqrt(1.3**2 + 0.6**2) * u
    np.testing.assert_allclose(p.data, expected, rtol=1e-14)


def test_lamb_layer_update_norm_is_lr_times_weight_norm():
    """The trust ratio makes ‖Δθ‖ = γ ‖θ‖ for every layer (φ = identity), whatever the gradient scale;
    a zero layer falls back to ratio 1; phi_bounds clamps ‖θ‖."""
    rng = np.random.default_rng(1)
    w = to.Tensor(rng.standard_normal((5, 7)) * 3, requires_grad=True, dtype=np.float64)
    b = to.Tensor(np.zeros(7), requires_grad=True, dtype=np.float64)
    w0, norm0 = w.data.copy(), np.linalg.norm(w.data)
    opt = optim.LAMB([w, b], lr=0.01, weight_decay=0.01)
    w.grad, b.grad = rng.standard_normal((5, 7)) * 1e4, rng.standard_normal(7)
    opt.step()
    assert np.linalg.norm(w.data - w0) == pytest.approx(0.01 * norm0, rel=1e-12)
    assert np.linalg.norm(b.data) == pytest.approx(0.01 * np.linalg.norm(opt.state[b]["exp_avg"] / 0.1
                                                                            / (np.sqrt(opt.state[b]["exp_avg_sq"] / 0.001) + 1e-6)), rel=1e-12)
    clamped = to.Tensor(w0.copy(), requires_grad=True, dtype=np.float64)
    opt2 = optim.LAMB([clamped], lr=0.01, phi_bounds=(0.0, 1.0))
    clamped.grad = np.ones((5, 7))
    opt2.step()
    assert np.linalg.norm(clamped.data - w0) == pytest.approx(0.01, rel=1e-12)


def test_radam_falls_back_to_momentum_sgd_while_rho_is_small():
    """With β₂ = 0.999, ρ_t ≤ 5 for t ≤ 5: θ_t = θ_{t−1} − γ m̂_t exactly; from t = 6, the rectified step."""
    from tinyopt.optim.radam import rectification

    assert [rectification(0.999, t)[1] is None for t in range(1, 8)] == [True] * 5 + [False] * 2
    p = to.Tensor(np.array([1.0]), requires_grad=True, dtype=np.float64)
    opt = optim.RAdam([p], lr=0.1)
    m, theta = 0.0, 1.0
    for t in range(1, 6):
        p.grad = 2 * p.data
        opt.step()
        m = 0.9 * m + 0.1 * 2 * theta
        theta = theta - 0.1 * m / (1 - 0.9**t)
        assert float(p.data[0]) == pytest.approx(theta, rel=1e-14)


# ------------------------------------------------------------------ state dicts and bit-identical resume
RESUME = [
    ("NAdam", dict(lr=0.01, weight_decay=0.01, decoupled_weight_decay=True)),
    ("RAdam", dict(lr=0.01)),
    ("Adamax", dict(lr=0.01)),
    ("Adadelta", dict()),
    ("Rprop", dict(lr=0.01)),
    ("ASGD", dict(lr=0.01, t0=3.0)),
    ("Lion", dict(lr=0.001, weight_decay=0.1)),
    ("LAMB", dict(lr=0.01, weight_decay=0.01)),
    ("Adafactor", dict()),
    ("Muon", dict(lr=0.02)),
    ("LBFGS", dict(history_size=3, max_iter=4)),
    ("LBFGS", dict(line_search_fn="strong_wolfe", max_iter=4)),
]


def _resume_model(name, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (4, 2)] if name == "Muon" else [(3, 4), (4,)]
    return [to.Tensor(rng.standard_normal(s), requires_grad=True, dtype=np.float64) for s in shapes]


def _resume_loss(params, t):
    x = to.Tensor(np.cos(np.arange(6 * 3) + t).reshape(6, 3), dtype=np.float64)
    out = x @ params[0]
    out = out @ params[1] if params[1].ndim == 2 else out + params[1]
    return (out**2).sum() + (params[0] * params[0] * params[0]).sum() * 0.01


def _train(opt, params, steps, start=0):
    for t in range(start, start + steps):
        def closure(t=t):
            opt.zero_grad()
            loss = _resume_loss(params, t)
            loss.backward()
            return loss

        opt.step(closure)


@pytest.mark.parametrize("name,kwargs", RESUME, ids=[f"{n}-{i}" for i, (n, _) in enumerate(RESUME)])
def test_resume_from_state_dict_is_bit_identical(name, kwargs, tmp_path):
    """Through a state_dict copy and through a checkpoint file (npz + JSON, no pickle)."""
    from tinyopt import checkpoint

    straight = _resume_model(name)
    opt = getattr(optim, name)(straight, **kwargs)
    _train(opt, straight, 12)

    first = _resume_model(name)
    opt1 = getattr(optim, name)(first, **kwargs)
    _train(opt1, first, 6)
    saved_params = [p.data.copy() for p in first]
    saved = copy.deepcopy(opt1.state_dict())
    checkpoint.save({"optimizer": opt1}, tmp_path / "ckpt.npz")
    for source in ("dict", "file"):
        resumed = [to.Tensor(a, requires_grad=True, dtype=np.float64) for a in saved_params]
        opt2 = getattr(optim, name)(resumed, **{**kwargs, "lr": 123.0})  # lr comes back from the state dict
        if source == "dict":
            opt2.load_state_dict(saved)
        else:
            checkpoint.restore(tmp_path / "ckpt.npz", optimizer=opt2)
        assert opt2.param_groups[0]["lr"] == opt1.param_groups[0]["lr"]
        _train(opt2, resumed, 6, start=6)
        for a, b in zip(straight, resumed):
            assert np.array_equal(a.data, b.data), source  # bit for bit


def test_float32_parameters_keep_their_dtype():
    for name, kwargs in RESUME:
        params = [to.Tensor(p.data.astype(np.float32), requires_grad=True) for p in _resume_model(name)]
        opt = getattr(optim, name)(params, **kwargs)
        _train(opt, params, 2)
        for p in params:
            assert p.data.dtype == np.float32, name
            arrays = [v for v in opt.state.get(p, {}).values() if isinstance(v, np.ndarray)]
            assert all(v.dtype == np.float32 for v in arrays), name


# ------------------------------------------------------------------ the trace
ALL = ["GD", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "Adadelta", "Rprop", "ASGD",
       "Lion", "LAMB", "Adafactor", "Muon", "LBFGS"]


@pytest.mark.parametrize("name", ALL)
def test_trace_records_only_documented_symbols_and_matches_the_untraced_run(name):
    """Every recorded quantity has a row in the class's `trace_symbols` (the docstring's names), θ_t
    is recorded, and tracing (the NumPy twin) gives the untraced run's numbers."""
    options = {"SGD": dict(momentum=0.9), "RMSprop": dict(momentum=0.5, centered=True), "Adam": dict(amsgrad=True),
               "RAdam": dict(betas=(0.9, 0.9)), "Muon": dict(ns_dtype=None)}.get(name, {})
    runs = []
    for traced in (True, False):
        params = [to.Tensor(np.array([[0.5, -1.0, 2.0], [0.25, 0.1, 4.0]]), requires_grad=True, dtype=np.float64)]
        opt = getattr(optim, name)(params, **options)
        tr = opt.trace(k=None) if traced else None
        for t in range(8):
            def closure(t=t):
                opt.zero_grad()
                loss = ((params[0] - float(t % 3)) ** 2).sum()
                loss.backward()
                return loss

            opt.step(closure)
        runs.append(params[0].data.copy())
        if traced:
            tr.detach()
            documented = {n for n, _, _ in type(opt).trace_symbols}
            recorded = {q for r in tr.records for q in r.quantities}
            assert recorded <= documented, recorded - documented
            assert {"theta", "theta_prev", "update"} & recorded >= {"theta", "theta_prev"}
            assert len(tr.records) >= 2
            assert "θ" in tr.table()
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-13, atol=1e-15)


def test_adafactor_trace_shows_the_factored_estimate():
    p = to.Tensor(np.arange(1.0, 7.0).reshape(2, 3), requires_grad=True, dtype=np.float64)
    opt = optim.Adafactor([p])
    g = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    with opt.trace(k=None) as tr:
        p.grad = g
        opt.step()
    q = tr.records[0].quantities
    # t = 1: β̂₂ = 0, R = row means of G², C = column means, V̂ = R C / mean(R)
    R, C = (g**2).mean(axis=1, keepdims=True), (g**2).mean(axis=0, keepdims=True)
    np.testing.assert_allclose(q["v_hat"], (R @ C / R.mean()).ravel(), rtol=1e-14)
    np.testing.assert_allclose(opt.state[p]["row_var"], R, rtol=1e-14)
    assert opt.state[p]["row_var"].shape == (2, 1) and opt.state[p]["col_var"].shape == (1, 3)
