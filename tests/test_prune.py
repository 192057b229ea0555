"""tinyopt.prune: criteria formulas, AGP schedule, sensitivity analysis, shrink (same outputs as the
masked model, fewer parameters, original unchanged)."""
import copy

import numpy as np
import pytest

import tinyopt as to
from tinyopt import nn
from tinyopt import prune as P
from tinyopt.models.cnn import LeNet5
from tinyopt.nn.utils import prune


def batches(rng, n=3, shape=(8, 6), classes=3):
    return [(rng.standard_normal(shape), rng.integers(0, classes, shape[0])) for _ in range(n)]


def mlp(seed=0):
    return nn.Sequential(nn.Linear(6, 8, dtype=np.float64, rng=seed), nn.ReLU(), nn.Linear(8, 8, dtype=np.float64, rng=seed + 1),
                         nn.ReLU(), nn.Linear(8, 3, dtype=np.float64, rng=seed + 2))


def test_threshold_rule_drops_small_weights(rng):
    m = nn.Linear(20, 10, dtype=np.float64, rng=0)
    w = m.weight.data.copy()
    P.threshold_prune(m, s=0.5)
    theta = 0.5 * np.std(w)
    assert P.han_threshold(w, 0.5) == pytest.approx(theta)
    np.testing.assert_array_equal(m.weight_mask, (np.abs(w) >= theta))
    assert np.all(np.abs(m.weight.data[m.weight.data != 0]) >= theta)
    with pytest.raises(ValueError):
        P.threshold_prune(m, s=1, threshold=0.1)


def test_gradient_and_taylor_scores_match_their_formulas(rng):
    model = mlp()
    data = batches(rng)
    loss_fn = nn.CrossEntropyLoss()
    scores_g = P.gradient_scores(model, data, loss_fn, kind="gradient")
    scores_t = P.gradient_scores(model, data, loss_fn, kind="taylor")
    G = 0
    for x, y in data:
        model.zero_grad()
        loss_fn(model(to.tensor(x)), y).backward()
        G = G + model[0].weight.grad.data
    key = (model[0], "weight")
    np.testing.assert_allclose(scores_g[key], np.abs(G) / 3, rtol=1e-12)
    np.testing.assert_allclose(scores_t[key], np.abs(G * model[0].weight.data) / 3, rtol=1e-12)
    # plugs into torch's API
    prune.l1_unstructured(model[0], "weight", 0.5, importance_scores=scores_t[key])
    kept = scores_t[key][model[0].weight_mask == 1]
    assert kept.min() >= scores_t[key][model[0].weight_mask == 0].max()


def test_entropy_apoz_bn_scale(rng):
    model = mlp()
    data = batches(rng, n=4)
    a = P.apoz(model, model[1], data)
    outs = []
    h = model[1].register_forward_hook(lambda m, args, out: outs.append(out.data))
    for x, _ in data:
        model(to.tensor(x))
    h.remove()
    acts = np.concatenate(outs)
    np.testing.assert_allclose(a, np.mean(acts == 0, axis=0))
    e = P.activation_entropy(model, model[1], data, bins=8)
    c = 0 if acts[:, 0].max() > acts[:, 0].min() else 1
    counts, _ = np.histogram(acts[:, c], bins=8, range=(acts[:, c].min(), acts[:, c].max()))
    p = counts[counts > 0] / counts.sum()
    assert e[c] == pytest.approx(-np.sum(p * np.log(p)))
    assert e.shape == (8,) and np.all(e >= 0)
    bn = nn.BatchNorm1d(4)
    bn.weight.data[...] = [0.5, -2, 0.1, 1]
    np.testing.assert_allclose(P.bn_scale(bn), [0.5, 2, 0.1, 1], rtol=1e-6)
    conv = nn.Conv2d(2, 4, 3)
    P.prune_channels(conv, P.bn_scale(bn), 2)
    np.testing.assert_array_equal(P.dead_channels(conv), [True, False, True, False])  # |γ| = 0.5 and 0.1


def test_bypass_scores_and_remove_blocks(rng):
    model = mlp()
    x, y = batches(rng, 1)[0]
    loss_fn = nn.CrossEntropyLoss()

    def evaluate(m):
        with to.no_grad():
            return loss_fn(m(to.tensor(x)), y).item()

    base = evaluate(model)
    scores = P.bypass_scores(model, {"2": model[2]}, evaluate)
    smaller = P.remove_blocks(model, ["2", "3"])
    assert isinstance(smaller[2], nn.Identity) and isinstance(model[2], nn.Linear)
    assert scores["2"] == pytest.approx(evaluate(nn.Sequential(model[0], model[1], model[3], model[4])) - base)
    with pytest.raises(nn.ShapeError):
        P.bypass_scores(model, {"0": model[0]}, evaluate)


def test_agp_formula_and_hooks(rng):
    s = [P.agp_sparsity(t, 0.9, 0.0, begin_step=2, n_steps=4, frequency=3) for t in range(20)]
    assert s[0] == s[1] == 0.0 and s[-1] == pytest.approx(0.9)
    for t in range(2, 15):
        k = (t - 2) // 3
        assert s[t] == pytest.approx(0.9 + (0.0 - 0.9) * (1 - min(k, 4) / 4) ** 3)
    assert all(b >= a for a, b in zip(s, s[1:]))
    model = mlp()
    agp = P.AGP(model, final_sparsity=0.8, n_steps=5, frequency=2)
    opt = to.optim.SGD(model.parameters(), lr=0.05)
    data = batches(rng, n=12)
    to.loop.train_epoch(model, opt, data, nn.CrossEntropyLoss(), hooks=agp)
    for m, n in P.default_targets(model):
        assert P.sparsity(m, n) == pytest.approx(0.8, abs=0.02)
    assert [t for t, _ in agp.history] == [0, 2, 4, 6, 8, 10]
    with pytest.raises(ValueError):
        P.AGP(model, final_sparsity=1.2)


def test_agp_keras_callback(rng):
    from tinyopt import keras
    model = keras.Sequential([keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = rng.standard_normal((64, 5)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    cb = P.AGPCallback(final_sparsity=0.75, n_steps=3, frequency=1)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[cb])
    targets = P.default_targets(model)
    assert len(targets) == 2 and all(P.sparsity(m, n) == pytest.approx(0.75, abs=0.02) for m, n in targets)
    assert [t for t, _ in cb.agp.history] == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        P.AGPCallback(final_sparsity=0.5, n_steps=0)


def test_iterative_and_global_prune_to(rng):
    model = mlp()
    targets = P.default_targets(model)
    seen = P.iterative_pruning(targets, [0.3, 0.6, 0.9], finetune=lambda: None,
                               callback=lambda s: [P.sparsity(m, n) for m, n in targets])
    assert all(v == pytest.approx(s, abs=0.02) for s, row in zip([0.3, 0.6, 0.9], seen) for v in row)
    m2 = mlp(5)
    P.prune_to(P.default_targets(m2), 0.7, scope="global")
    zeros = sum(np.sum(m.weight_mask == 0) for m, _ in P.default_targets(m2))
    total = sum(m.weight_mask.numel() for m, _ in P.default_targets(m2))
    assert zeros == round(0.7 * total)


def test_sensitivity_analysis_leaves_model_unchanged(rng, tmp_path):
    model = mlp()
    x, y = batches(rng, 1, shape=(40, 6))[0]
    before = copy.deepcopy(model.state_dict())

    def acc(m):
        with to.no_grad():
            return float(np.mean(m(to.tensor(x)).data.argmax(1) == y))

    table = P.sensitivity_analysis(model, acc, sparsities=[0.0, 0.5, 0.9])
    assert list(table) == ["0", "2", "4"] and all(len(r) == 3 for r in table.values())
    assert all(r[0.0] == acc(model) for r in table.values())
    assert not prune.is_pruned(model)
    for k, v in before.items():
        np.testing.assert_array_equal(model.state_dict()[k], v)
    chosen = P.choose_sparsities(table, acc(model), max_drop=1.0)
    assert all(v == 0.9 for v in chosen.values())
    assert "0.50" in P.format_table(table)
    P.plot_sensitivity(table, tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 0


def _lenet_pruned(seed=0):
    m = LeNet5(rng=seed).double()
    for mod in [m.features[0], m.features[3], m.classifier[1], m.classifier[3]]:
        prune.ln_structured(mod, "weight", 0.5, n=1, dim=0)
    prune.l1_unstructured(m.classifier[1], "weight", 0.3)
    return m.eval()


def test_shrink_lenet_same_outputs_fewer_parameters(rng):
    m = _lenet_pruned()
    x = to.tensor(rng.standard_normal((5, 1, 28, 28)))
    y = m(x).data
    state = copy.deepcopy(m.state_dict())
    small = P.shrink(m, x)
    np.testing.assert_allclose(small(x).data, y, rtol=1e-10, atol=1e-12)
    assert small.features[0].out_channels == 3 and small.features[3].in_channels == 3
    assert small.classifier[1].in_features == 8 * 25 and small.classifier[3].out_features == 42
    assert P.count_parameters(small) < 0.3 * P.count_parameters(m)
    assert prune.is_pruned(m) and not prune.is_pruned(small)
    for k, v in state.items():
        np.testing.assert_array_equal(m.state_dict()[k], v)
    # the shrunk model trains (its parameters are Parameters)
    loss = small(x).sum()
    loss.backward()
    assert small.features[0].weight.grad.shape == (3, 1, 5, 5)


def test_shrink_batchnorm_and_padding_border_note(rng):
    net = nn.Sequential(nn.Conv2d(2, 6, 3, dtype=np.float64, rng=0), nn.BatchNorm2d(6, dtype=np.float64), nn.ReLU(),
                        nn.Conv2d(6, 4, 3, dtype=np.float64, rng=1), nn.Tanh(), nn.Flatten(),
                        nn.Linear(4 * 4 * 4, 3, dtype=np.float64, rng=2))
    bn = net[1]
    bn.running_mean[...] = rng.standard_normal(6)
    bn.running_var[...] = rng.uniform(0.5, 2, 6)
    bn.weight.data[...] = rng.standard_normal(6)
    bn.bias.data[...] = rng.standard_normal(6)
    prune.ln_structured(net[0], "weight", 3, n=2, dim=0)
    prune.ln_structured(net[3], "weight", 2, n=2, dim=0)
    net.eval()
    x = to.tensor(rng.standard_normal((3, 2, 8, 8)))
    small = P.shrink(net, x)
    np.testing.assert_allclose(small(x).data, net(x).data, rtol=1e-10, atol=1e-12)
    assert small[1].num_features == 3 and small[1].running_mean.shape == (3,) and small[6].in_features == 2 * 16
    # with a zero-padded consumer the fold is exact only in the interior
    pad = nn.Sequential(nn.Conv2d(2, 4, 3, dtype=np.float64, rng=0), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1, dtype=np.float64, rng=1))
    prune.ln_structured(pad[0], "weight", 2, n=1, dim=0)
    small = P.shrink(pad, x)
    diff = np.abs(small(x).data - pad(x).data)
    assert diff[:, :, 1:-1, 1:-1].max() < 1e-12 and diff.max() > 0
    # pruning the bias with its channel makes it exact everywhere (ReLU maps 0 to 0)
    P.prune_bias_with_channels(pad[0])
    exact = P.shrink(pad, x, fold_bias=False)
    np.testing.assert_allclose(exact(x).data, pad(x).data, rtol=1e-10, atol=1e-12)
    assert exact[0].out_channels == 2 and exact[2].in_channels == 2


def test_shrink_refuses_non_chains(rng):
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 4)

        def forward(self, x):
            return self.b(self.a(x) + x)

    with pytest.raises(ValueError, match="not a chain"):
        P.shrink(Residual(), to.tensor(np.ones((2, 4), dtype=np.float32)))
