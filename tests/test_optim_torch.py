"""Same gradients in, same trajectory out: tinyopt.optim vs torch.optim, float64, hundreds of steps.

The objective is a convex quadratic plus a fixed noise sequence (g_t = θ H + ξ_t): a trajectory
that does not amplify rounding differences, so any disagreement beyond 1e-9 relative is a
formula difference, not chaos. Two parameters in two param groups (different lr) exercise groups.
Every optimizer runs through its NumPy formula (`fused=False`) and, where it has one, its fused
kernel on both kernel backends.
"""
import numpy as np
import pytest

import tinyopt as to
from tinyopt import optim
from tinyopt.kernels import backend

torch = pytest.importorskip("torch")

STEPS = 300
RTOL, ATOL = 1e-9, 1e-12

CASES = [
    ("SGD", dict(lr=0.02)),
    ("SGD", dict(lr=0.02, weight_decay=0.05)),
    ("SGD", dict(lr=0.02, momentum=0.9)),
    ("SGD", dict(lr=0.02, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.02, momentum=0.8, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.02, momentum=0.9, maximize=True)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.05, initial_accumulator_value=0.3, eps=1e-6)),
    ("Adagrad", dict(lr=0.1, maximize=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.005, alpha=0.9, eps=1e-6, weight_decay=0.05)),
    ("RMSprop", dict(lr=0.005, momentum=0.7)),
    ("RMSprop", dict(lr=0.005, centered=True)),
    ("RMSprop", dict(lr=0.005, momentum=0.5, centered=True, weight_decay=0.02, maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.05, maximize=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("Adam", dict(lr=0.01, betas=(0.0, 0.0))),
    ("AdamW", dict()),
    ("AdamW", dict(lr=0.01, weight_decay=0.2, amsgrad=True)),
    ("AdamW", dict(lr=0.01, betas=(0.5, 0.9), eps=1e-5, maximize=True)),
]

FUSABLE = {"SGD", "Adam", "AdamW"}


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((6, 6))
    hess = a @ a.T / 6 + 0.2 * np.eye(6)  # SPD
    theta0 = [rng.standard_normal((4, 6)), rng.standard_normal(6)]
    noise = [[rng.standard_normal(t.shape) for t in theta0] for _ in range(STEPS)]
    return hess, theta0, noise


def _gradients(thetas, hess, noise_t):
    w, b = thetas
    return [w @ hess + noise_t[0], 0.5 * b + noise_t[1]]


def _run_tinyopt(name, kwargs, hess, theta0, noise, **extra):
    params = [to.Tensor(t.copy(), requires_grad=True, dtype=np.float64) for t in theta0]
    groups = [{"params": [params[0]]}, {"params": [params[1]], "lr": kwargs.get("lr", 0.01) * 0.5}]
    opt = getattr(optim, name)(groups, **kwargs, **extra)
    path = []
    for t in range(STEPS):
        for p, g in zip(params, _gradients([p.data for p in params], hess, noise[t])):
            p.grad = g
        opt.step()
        path.append([p.data.copy() for p in params])
    return path


def _run_torch(name, kwargs, hess, theta0, noise):
    params = [torch.tensor(t.copy(), requires_grad=True) for t in theta0]
    groups = [{"params": [params[0]]}, {"params": [params[1]], "lr": kwargs.get("lr", 0.01) * 0.5}]
    opt = getattr(torch.optim, name)(groups, **kwargs)
    path = []
    for t in range(STEPS):
        with torch.no_grad():
            grads = _gradients([p.detach().numpy() for p in params], hess, noise[t])
        for p, g in zip(params, grads):
            p.grad = torch.from_numpy(np.ascontiguousarray(g))
        opt.step()
        path.append([p.detach().numpy().copy() for p in params])
    return path


def _assert_same_path(ours, theirs):
    for t, (a, b) in enumerate(zip(ours, theirs)):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=RTOL, atol=ATOL, err_msg=f"diverged at step {t + 1}")


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_formula_path_matches_torch(name, kwargs):
    hess, theta0, noise = _problem()
    extra = {"fused": False} if name in FUSABLE else {}
    ours = _run_tinyopt(name, kwargs, hess, theta0, noise, **extra)
    _assert_same_path(ours, _run_torch(name, kwargs, hess, theta0, noise))


@pytest.mark.parametrize("kernels", ["numba", "reference"])
@pytest.mark.parametrize("name,kwargs", [c for c in CASES if c[0] in FUSABLE], ids=lambda c: str(c))
def test_fused_kernel_matches_torch(name, kwargs, kernels):
    hess, theta0, noise = _problem(1)
    with backend(kernels):
        ours = _run_tinyopt(name, kwargs, hess, theta0, noise, fused=True)
    _assert_same_path(ours, _run_torch(name, kwargs, hess, theta0, noise))


def test_lr_changed_between_steps_matches_torch():
    """A scheduler edits param_groups[i]['lr'] between steps; the next step must use it."""
    hess, theta0, noise = _problem(2)
    w = to.Tensor(theta0[0].copy(), requires_grad=True, dtype=np.float64)
    tw = torch.tensor(theta0[0].copy(), requires_grad=True)
    ours, theirs = optim.SGD([w], lr=0.1, momentum=0.9), torch.optim.SGD([tw], lr=0.1, momentum=0.9)
    for t in range(50):
        for opt in (ours, theirs):
            opt.param_groups[0]["lr"] = 0.1 * 0.95**t
        w.grad = w.data @ hess + noise[t][0]
        tw.grad = torch.from_numpy(tw.detach().numpy() @ hess + noise[t][0])
        ours.step()
        theirs.step()
    np.testing.assert_allclose(w.data, tw.detach().numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.01, momentum=0.9)), ("Adam", dict(lr=0.01)),
                                         ("AdamW", dict(lr=0.01)), ("RMSprop", dict()), ("Adagrad", dict())])
def test_state_dict_keys_and_values_match_torch(name, kwargs):
    """The state uses torch's keys, and after some steps holds torch's values."""
    hess, theta0, noise = _problem(3)
    w = to.Tensor(theta0[0].copy(), requires_grad=True, dtype=np.float64)
    tw = torch.tensor(theta0[0].copy(), requires_grad=True)
    ours, theirs = getattr(optim, name)([w], **kwargs), getattr(torch.optim, name)([tw], **kwargs)
    for t in range(20):
        w.grad = w.data @ hess + noise[t][0]
        tw.grad = torch.from_numpy(tw.detach().numpy() @ hess + noise[t][0])
        ours.step()
        theirs.step()
    s_ours, s_theirs = ours.state_dict()["state"][0], theirs.state_dict()["state"][0]
    for key, value in s_theirs.items():
        if value is None:
            continue
        assert key in s_ours, f"{name}: torch keeps state {key!r}, tinyopt does not"
        np.testing.assert_allclose(np.asarray(s_ours[key], dtype=np.float64), value.detach().numpy(),
                                   rtol=RTOL, atol=ATOL)


def test_float32_fused_adam_close_to_torch():
    rng = np.random.default_rng(4)
    x0 = rng.standard_normal(10_000).astype(np.float32)
    grads = [rng.standard_normal(10_000).astype(np.float32) for _ in range(30)]
    w = to.Tensor(x0.copy(), requires_grad=True)
    tw = torch.tensor(x0.copy(), requires_grad=True)
    ours, theirs = optim.Adam([w], lr=1e-3, weight_decay=0.01), torch.optim.Adam([tw], lr=1e-3, weight_decay=0.01)
    for g in grads:
        w.grad = g.copy()
        tw.grad = torch.from_numpy(g.copy())
        ours.step()
        theirs.step()
    assert w.data.dtype == np.float32 and ours.state[w]["exp_avg"].dtype == np.float32
    np.testing.assert_allclose(w.data, tw.detach().numpy(), rtol=1e-5, atol=1e-6)
