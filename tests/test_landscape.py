"""tinyopt.landscape on tiny models with known answers: Hessian-vector products and sharpness of
quadratics and logistic regression, filter-normalised directions, surfaces, PCA planes; the plots."""
from __future__ import annotations

import numpy as np
import pytest

import tinyopt as to
from conftest import needs_fashion_mnist, run_tutorial
from tinyopt import landscape, nn, plot


def quadratic(rng, eigenvalues):
    """f(w) = ½ wᵀAw for a symmetric A with the given eigenvalues; returns (w, f, A)."""
    n = len(eigenvalues)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    a = (q * np.asarray(eigenvalues, dtype=float)) @ q.T
    a = (a + a.T) / 2
    w = nn.Parameter(rng.standard_normal(n), dtype=np.float64)
    a_t = to.tensor(a)

    def f():
        v = w.reshape(n, 1)
        return 0.5 * (v * (a_t @ v)).sum()

    return w, f, a


def logistic(rng, n=40, d=5):
    """Mean logistic loss of a linear model; its Hessian is Xᵀ diag(σ(1 − σ)) X / n."""
    x = rng.standard_normal((n, d))
    y = (rng.random(n) < 0.5).astype(float)
    w = nn.Parameter(0.3 * rng.standard_normal(d), dtype=np.float64)
    x_t, y_t = to.tensor(x), to.tensor(y)

    def f():
        z = (x_t * w).sum(axis=1)
        return to.nn.functional.binary_cross_entropy_with_logits(z, y_t)

    def hessian():
        s = 1 / (1 + np.exp(-(x @ w.data)))
        return (x.T * (s * (1 - s))) @ x / n

    return w, f, hessian


def tiny_net(rng):
    return nn.Sequential(nn.Conv2d(2, 3, 3, rng=rng), nn.ReLU(), nn.Flatten(), nn.Linear(12, 4, rng=rng),
                         nn.BatchNorm1d(4), nn.Linear(4, 2, rng=rng))


# ---------------------------------------------------------------------------- Hessian-vector products
def test_hvp_of_a_quadratic_is_a_times_v(rng):
    w, f, a = quadratic(rng, [0.5, 1.0, 2.0, 4.0])
    v = rng.standard_normal(4)
    (hv,) = landscape.hessian_vector_product(f, [w], [v])
    np.testing.assert_allclose(hv, a @ v, rtol=1e-8, atol=1e-10)


def test_hvp_matches_the_analytic_hessian_of_logistic_regression(rng):
    w, f, hessian = logistic(rng)
    v = rng.standard_normal(5)
    (hv,) = landscape.hessian_vector_product(f, [w], [v])
    np.testing.assert_allclose(hv, hessian() @ v, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("eigenvalues", [[0.1, 0.5, 2.0, 3.0, 7.5], [-9.0, 0.5, 1.0, 2.0, 7.5], [-4.0, -1.0, -0.5]])
def test_sharpness_of_a_quadratic_is_its_largest_eigenvalue(rng, eigenvalues):
    w, f, _ = quadratic(rng, eigenvalues)
    top = landscape.top_hessian_eigenvalue(f, [w], rng=np.random.default_rng(0), iters=1000, tol=1e-12)
    assert top.value == pytest.approx(max(eigenvalues), rel=1e-6)
    assert top.converged
    # the eigenvector: H v = λ v
    (hv,) = landscape.hessian_vector_product(f, [w], top.vector)
    np.testing.assert_allclose(hv, top.value * top.vector[0], atol=1e-4)


def test_sharpness_of_logistic_regression_and_along_its_eigenvector(rng):
    w, f, hessian = logistic(rng)
    expected = np.linalg.eigvalsh(hessian()).max()
    top = landscape.top_hessian_eigenvalue(f, [w], rng=np.random.default_rng(1), iters=500, tol=1e-10)
    assert top.value == pytest.approx(expected, rel=1e-6)
    assert landscape.sharpness(f, [w], rng=np.random.default_rng(1), iters=500, tol=1e-10) == pytest.approx(top.value)
    # the 1-D slice along the unit eigenvector curves by λ_max: second difference / α²
    alphas = np.array([-1e-3, 0.0, 1e-3])
    f_minus, f_0, f_plus = landscape.surface_1d(f, [w], top.vector, alphas)
    assert (f_plus - 2 * f_0 + f_minus) / 1e-6 == pytest.approx(expected, rel=1e-4)


def test_a_warm_start_converges_at_once(rng):
    w, f, _ = quadratic(rng, [0.1, 0.2, 5.0])
    first = landscape.top_hessian_eigenvalue(f, [w], rng=np.random.default_rng(0), iters=500, tol=1e-12)
    again = landscape.top_hessian_eigenvalue(f, [w], v0=first.vector, iters=500, tol=1e-9)
    assert again.iterations <= 3 and again.value == pytest.approx(5.0, rel=1e-8)


def test_gradient_and_sharpness_leave_parameters_and_grads_alone(rng):
    w, f, _ = quadratic(rng, [1.0, 2.0, 3.0])
    before = w.data.copy()
    w.grad = np.full(3, 7.0)
    loss, (g,) = landscape.gradient(f, [w])
    assert loss == pytest.approx(float(f().data))
    landscape.sharpness(f, [w], rng=np.random.default_rng(0))
    np.testing.assert_array_equal(w.data, before)
    np.testing.assert_array_equal(np.asarray(w.grad), np.full(3, 7.0))


def test_sharpness_needs_an_explicit_generator_or_start(rng):
    w, f, _ = quadratic(rng, [1.0, 2.0])
    with pytest.raises(TypeError, match="Generator"):
        landscape.top_hessian_eigenvalue(f, [w])
    with pytest.raises(ValueError, match="shape"):
        landscape.top_hessian_eigenvalue(f, [w], v0=[np.ones(3)])


# ---------------------------------------------------------------------------- directions
def filter_norms(a):
    return np.sqrt((a.reshape(a.shape[0], -1) ** 2).sum(axis=1))


def test_filter_normalised_directions_have_the_weights_filter_and_layer_norms(rng):
    model = tiny_net(rng)
    d = landscape.random_direction(model, np.random.default_rng(3))
    for (name, p), di in zip(model.named_parameters(), d):
        assert di.shape == p.shape
        if p.ndim <= 1:  # biases and BatchNorm: not perturbed
            assert not di.any(), name
        else:
            np.testing.assert_allclose(filter_norms(di), filter_norms(p.data), rtol=1e-6, err_msg=name)
            assert np.linalg.norm(di) == pytest.approx(np.linalg.norm(p.data), rel=1e-6)
            assert not np.allclose(di, p.data)  # a random direction, not the weights


def test_direction_options(rng):
    model = tiny_net(rng)
    params = list(model.parameters())
    layer = landscape.random_direction(model, np.random.default_rng(3), norm="layer", ignore=None)
    for p, di in zip(params, layer):
        if p.ndim <= 1:
            np.testing.assert_array_equal(di, p.data)  # ignore=None: δ = θ for 1-D parameters
        else:
            assert np.linalg.norm(di) == pytest.approx(np.linalg.norm(p.data), rel=1e-6)
    raw = landscape.random_direction(model, np.random.default_rng(3), norm=None)
    again = landscape.random_direction(model, np.random.default_rng(3), norm=None)
    for a, b in zip(raw, again):
        np.testing.assert_array_equal(a, b)  # same seed, same direction
    with pytest.raises(ValueError, match="norm"):
        landscape.random_direction(model, np.random.default_rng(3), norm="weights")
    with pytest.raises(TypeError, match="Generator"):
        landscape.random_direction(model, 3)


# ---------------------------------------------------------------------------- surfaces
def test_surfaces_of_a_quadratic_in_closed_form(rng):
    w, f, a = quadratic(rng, [1.0, 2.0, 3.0])
    center = w.data.copy()
    d1, d2 = rng.standard_normal(3), rng.standard_normal(3)
    alphas, betas = np.linspace(-1, 1, 5), np.linspace(-0.5, 0.5, 3)

    def closed(x):
        return 0.5 * x @ a @ x

    line = landscape.surface_1d(f, [w], [d1], alphas)
    np.testing.assert_allclose(line, [closed(center + s * d1) for s in alphas], rtol=1e-12)
    z = landscape.surface_2d(f, [w], [d1], [d2], alphas, betas)
    assert z.shape == (3, 5)
    np.testing.assert_allclose(z, [[closed(center + s * d1 + t * d2) for s in alphas] for t in betas], rtol=1e-12)
    np.testing.assert_array_equal(w.data, center)


def test_a_failing_loss_changes_nothing(rng):
    w, f, _ = quadratic(rng, [1.0, 2.0])
    before = w.data.copy()
    calls = []

    def broken():
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return f()

    with pytest.raises(RuntimeError):
        landscape.surface_1d(broken, [w], [np.ones(2)], [0.5, 1.0, 2.0])
    np.testing.assert_array_equal(w.data, before)
    with pytest.raises(ValueError, match="shape"):
        landscape.surface_1d(f, [w], [np.ones(3)], [0.0])


# ---------------------------------------------------------------------------- trajectories
def test_pca_plane_recovers_a_planar_trajectory(rng):
    u, v = np.linalg.qr(rng.standard_normal((6, 2)))[0].T
    center = rng.standard_normal(6)
    coords = np.stack([np.linspace(2, 0, 12), np.sin(np.linspace(0, 3, 12))], axis=1)
    coords[-1] = 0.0  # the run ends at the center
    checkpoints = [[(center + a * u + b * v).reshape(2, 3)] for a, b in coords]
    plane = landscape.pca_directions(checkpoints)
    assert plane.explained_variance_ratio.sum() == pytest.approx(1.0)
    basis = np.stack([plane.d1[0].ravel(), plane.d2[0].ravel()])
    np.testing.assert_allclose(basis @ basis.T, np.eye(2), atol=1e-12)  # orthonormal
    projected = plane.coordinates(checkpoints)
    rebuilt = [center.reshape(2, 3) + a * plane.d1[0] + b * plane.d2[0] for a, b in projected]
    for ck, r in zip(checkpoints, rebuilt):
        np.testing.assert_allclose(r, ck[0], atol=1e-12)
    with pytest.raises(ValueError, match="at least 3"):
        landscape.pca_directions(checkpoints[:2])


def test_a_gd_run_on_the_plane_of_its_own_pca(rng):
    w, f, _ = quadratic(rng, [0.2, 1.0, 3.0, 4.0])
    start = w.data.copy()
    opt = to.optim.SGD([w], lr=0.2)
    checkpoints = [landscape.snapshot([w])]
    for _ in range(30):
        opt.zero_grad()
        f().backward()
        opt.step()
        checkpoints.append(landscape.snapshot([w]))
    plane = landscape.pca_directions(checkpoints)
    xy = plane.coordinates(checkpoints)
    assert xy.shape == (31, 2) and np.allclose(xy[-1], 0.0)
    assert plane.explained_variance_ratio.sum() > 0.95
    z = plane.surface(f, [w], np.linspace(xy[:, 0].min(), xy[:, 0].max(), 4), np.linspace(-1, 1, 3))
    assert z.shape == (3, 4) and np.isfinite(z).all()
    np.testing.assert_array_equal(w.data, checkpoints[-1][0])
    assert not np.allclose(start, w.data)


# ---------------------------------------------------------------------------- plots
def test_landscape_plots_return_figures_and_save_pngs(tmp_path):
    alphas = np.linspace(-1, 1, 9)
    fig = plot.loss_surface_1d(alphas, {"d1": alphas**2, "d2": 2 * alphas**2}, save=tmp_path / "a.png", close=True)
    assert fig is not None and (tmp_path / "a.png").stat().st_size > 0
    betas = np.linspace(-1, 1, 7)
    z = alphas[None, :] ** 2 + 3 * betas[:, None] ** 2
    paths = {"GD": np.stack([np.linspace(0.9, 0, 5), np.linspace(0.8, 0, 5)], axis=1)}
    fig = plot.loss_surface_2d(alphas, betas, z, paths, save=tmp_path / "b.png", close=True)
    assert (tmp_path / "b.png").stat().st_size > 0
    with pytest.raises(ValueError, match="shape"):
        plot.loss_surface_2d(alphas, betas, z.T)
    with pytest.raises(ValueError, match=r"\(T, 2\)"):
        plot.loss_surface_2d(alphas, betas, z, {"bad": np.zeros((3, 3))})
    steps = np.arange(0, 50, 10)
    fig = plot.sharpness_history(steps, {"η=0.1": [1, 5, 19, 21, 20]}, {"η=0.1": 0.1},
                                 losses={"η=0.1": np.linspace(1, 0.1, 50)}, save=tmp_path / "c.png", close=True)
    assert (tmp_path / "c.png").stat().st_size > 0


# ---------------------------------------------------------------------------- the lesson
@needs_fashion_mnist
def test_loss_landscape_lesson_runs(tmp_path):
    result = run_tutorial("12_loss_landscape.py", tmp_path)
    assert "all checks passed" in result.stdout
    assert "η = 0.4: 2/η = 5.00" in result.stdout and "η = 0.6: 2/η = 3.33" in result.stdout
    compared = [line for line in result.stdout.splitlines() if line.startswith("optimizers compared:")]
    names = compared[0].split(":", 1)[1].replace(" ", "").split(",")
    assert names == ["SGD", "momentum", "Adam", "Lion", "LBFGS"]
    pngs = {p.name for p in (tmp_path / "12_loss_landscape").glob("*.png")}
    assert {"surface_1d.png", "surface_2d.png", "edge_of_stability.png", "optimizer_paths.png"} <= pngs
