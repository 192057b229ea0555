"""tinyopt.nn.utils.prune against torch.nn.utils.prune (float64, the same weights): masks, compounding,
state_dict keys, gradients, remove, errors. Random weights from a continuous distribution have no
ties, so the masks must be equal element for element (tie order is the one documented difference)."""
import numpy as np
import pytest

import tinyopt as to
from tinyopt import nn
from tinyopt.nn.utils import prune

torch = pytest.importorskip("torch")
tprune = pytest.importorskip("torch.nn.utils.prune")


def pair_linear(rng, i=6, o=5):
    m = nn.Linear(i, o, dtype=np.float64)
    t = torch.nn.Linear(i, o).double()
    m.weight.data[...] = rng.standard_normal((o, i))
    m.bias.data[...] = rng.standard_normal(o)
    with torch.no_grad():
        t.weight.copy_(torch.tensor(m.weight.data))
        t.bias.copy_(torch.tensor(m.bias.data))
    return m, t


def pair_conv(rng, cin=3, cout=6):
    m = nn.Conv2d(cin, cout, 3, padding=1, dtype=np.float64)
    t = torch.nn.Conv2d(cin, cout, 3, padding=1).double()
    m.weight.data[...] = rng.standard_normal(m.weight.shape)
    m.bias.data[...] = rng.standard_normal(m.bias.shape)
    with torch.no_grad():
        t.weight.copy_(torch.tensor(m.weight.data))
        t.bias.copy_(torch.tensor(m.bias.data))
    return m, t


def same_mask(m, t, name="weight"):
    np.testing.assert_array_equal(getattr(m, name + "_mask"), getattr(t, name + "_mask").numpy())
    np.testing.assert_allclose(getattr(m, name).data, getattr(t, name).detach().numpy(), rtol=0, atol=0)


@pytest.mark.parametrize("amount", [0.0, 0.3, 0.5, 1.0, 7, 0])
def test_l1_unstructured_mask_equals_torch(rng, amount):
    m, t = pair_linear(rng)
    assert prune.l1_unstructured(m, "weight", amount=amount) is m
    tprune.l1_unstructured(t, "weight", amount=amount)
    same_mask(m, t)


def test_repeated_calls_compound_like_torch(rng):
    m, t = pair_conv(rng)
    for kind, kw in [("l1", dict(amount=0.3)), ("ln", dict(amount=2, n=2, dim=0)), ("l1", dict(amount=5)),
                     ("ln", dict(amount=0.4, n=1, dim=1)), ("l1", dict(amount=0.5))]:
        if kind == "l1":
            prune.l1_unstructured(m, "weight", **kw)
            tprune.l1_unstructured(t, "weight", **kw)
        else:
            prune.ln_structured(m, "weight", **kw)
            tprune.ln_structured(t, "weight", **kw)
        same_mask(m, t)
    assert isinstance(m._forward_pre_hooks[0], prune.PruningContainer) and len(m._forward_pre_hooks[0]) == 5
    # 0.5 then 0.5 of the survivors leaves a quarter
    a, _ = pair_linear(rng, 10, 10)
    prune.l1_unstructured(a, "weight", 0.5)
    prune.l1_unstructured(a, "weight", 0.5)
    assert a.weight_mask.sum() == 25


@pytest.mark.parametrize("n,dim", [(1, 0), (2, 0), (2, 1), (np.inf, 0), (1, -1), (-np.inf, 2)])
def test_ln_structured_mask_equals_torch(rng, n, dim):
    m, t = pair_conv(rng)
    prune.ln_structured(m, "weight", amount=0.5, n=n, dim=dim)
    tprune.ln_structured(t, "weight", amount=0.5, n=float(n), dim=dim)
    same_mask(m, t)


def test_importance_scores_replace_magnitude(rng):
    m, t = pair_linear(rng)
    scores = rng.standard_normal(m.weight.shape)
    prune.l1_unstructured(m, "weight", 0.4, importance_scores=to.tensor(scores))
    tprune.l1_unstructured(t, "weight", 0.4, importance_scores=torch.tensor(scores))
    same_mask(m, t)
    c, tc = pair_conv(rng)
    scores = rng.standard_normal(c.weight.shape)
    prune.ln_structured(c, "weight", 3, n=2, dim=0, importance_scores=scores)
    tprune.ln_structured(tc, "weight", 3, n=2, dim=0, importance_scores=torch.tensor(scores))
    same_mask(c, tc)


def test_global_unstructured_equals_torch_and_compounds(rng):
    (a, ta), (b, tb) = pair_linear(rng, 6, 5), pair_linear(rng, 5, 4)
    c, tc = pair_conv(rng)
    params = [(a, "weight"), (b, "weight"), (c, "weight"), (a, "bias")]
    tparams = [(ta, "weight"), (tb, "weight"), (tc, "weight"), (ta, "bias")]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=0.4)
    tprune.global_unstructured(tparams, pruning_method=tprune.L1Unstructured, amount=0.4)
    for (m, n), (t, tn) in zip(params, tparams):
        same_mask(m, t, n)
    scores = {(b, "weight"): rng.standard_normal(b.weight.shape)}
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, importance_scores=scores, amount=20)
    tprune.global_unstructured(tparams, pruning_method=tprune.L1Unstructured, amount=20,
                               importance_scores={(tb, "weight"): torch.tensor(scores[(b, "weight")])})
    for (m, n), (t, tn) in zip(params, tparams):
        same_mask(m, t, n)


def test_state_dict_keys_equal_torch(rng):
    m, t = pair_linear(rng)
    prune.l1_unstructured(m, "weight", 0.5)
    tprune.l1_unstructured(t, "weight", 0.5)
    assert list(m.state_dict()) == list(t.state_dict()) == ["bias", "weight_orig", "weight_mask"]
    prune.random_unstructured(m, "bias", 2, generator=0)
    tprune.random_unstructured(t, "bias", 2)
    assert list(m.state_dict()) == list(t.state_dict())
    np.testing.assert_array_equal(m.state_dict()["weight_orig"], t.state_dict()["weight_orig"].numpy())
    prune.remove(m, "weight")
    tprune.remove(t, "weight")
    assert list(m.state_dict()) == list(t.state_dict()) == ["bias_orig", "weight", "bias_mask"]
    np.testing.assert_array_equal(m.weight.data, t.weight.detach().numpy())
    # a model: the same keys (tinyopt lists parameters before buffers, torch module by module)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    tnet = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    for mod in (net[0], net[2]):
        prune.l1_unstructured(mod, "weight", 0.5)
    for mod in (tnet[0], tnet[2]):
        tprune.l1_unstructured(mod, "weight", 0.5)
    assert sorted(net.state_dict()) == sorted(tnet.state_dict())


def test_forward_and_gradient_only_reach_unpruned_weights(rng):
    m, t = pair_conv(rng)
    prune.ln_structured(m, "weight", 0.5, n=2, dim=0)
    prune.l1_unstructured(m, "weight", 0.3)
    tprune.ln_structured(t, "weight", 0.5, n=2, dim=0)
    tprune.l1_unstructured(t, "weight", 0.3)
    x = rng.standard_normal((2, 3, 5, 5))
    v = rng.standard_normal((2, 6, 5, 5))
    out = m(to.tensor(x))
    tout = t(torch.tensor(x))
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-10, atol=1e-10)
    (out * to.tensor(v)).sum().backward()
    (tout * torch.tensor(v)).sum().backward()
    g = m.weight_orig.grad.data
    np.testing.assert_allclose(g, t.weight_orig.grad.numpy(), rtol=1e-10, atol=1e-10)
    assert np.all(g[m.weight_mask == 0] == 0) and np.any(g[m.weight_mask == 1] != 0)
    # an optimizer step leaves the pruned entries of the effective weight at zero, and the hook recomputes it
    opt = to.optim.SGD(m.parameters(), lr=0.1)
    opt.step()
    m(to.tensor(x))
    assert np.all(m.weight.data[m.weight_mask == 0] == 0)


def test_custom_identity_random_is_pruned_remove(rng):
    m, t = pair_linear(rng)
    assert not prune.is_pruned(m)
    prune.identity(m, "weight")
    assert prune.is_pruned(nn.Sequential(m)) and m.weight_mask.sum() == m.weight.data.size
    mask = rng.random(m.weight.shape) > 0.5
    prune.custom_from_mask(m, "weight", mask)
    tprune.custom_from_mask(t, "weight", torch.tensor(mask))
    same_mask(m, t)
    r1, _ = pair_linear(np.random.default_rng(0), 10, 10)
    r2, _ = pair_linear(np.random.default_rng(0), 10, 10)
    prune.random_unstructured(r1, "weight", 0.3, generator=np.random.default_rng(5))
    prune.random_unstructured(r2, "weight", 0.3, generator=np.random.default_rng(5))
    np.testing.assert_array_equal(r1.weight_mask, r2.weight_mask)
    assert r1.weight_mask.sum() == 70
    c, _ = pair_conv(rng)
    prune.random_structured(c, "weight", 2, dim=0, generator=3)
    kept = c.weight_mask.reshape(6, -1).max(dim=1).values  # a Tensor, as in torch
    assert kept.sum() == 4 and np.all(c.weight_mask.reshape(6, -1).min(dim=1).values == kept)
    prune.remove(c, "weight")
    assert not prune.is_pruned(c) and isinstance(c.weight, nn.Parameter)
    assert np.count_nonzero(np.abs(c.weight.data).reshape(6, -1).sum(axis=1)) == 4
    with pytest.raises(ValueError, match="has to be pruned"):
        prune.remove(c, "weight")


def test_load_state_dict_of_pruned_model(rng):
    m, _ = pair_linear(rng)
    prune.l1_unstructured(m, "weight", 0.5)
    n, _ = pair_linear(np.random.default_rng(9))
    prune.identity(n, "weight")
    n.load_state_dict(m.state_dict())
    x = to.tensor(rng.standard_normal((3, 6)))
    np.testing.assert_array_equal(n(x).data, m(x).data)


def test_bad_calls_raise_and_change_nothing(rng):
    m, _ = pair_linear(rng)
    before = m.state_dict()
    for call, err in [(lambda: prune.l1_unstructured(m, "weight", 1.5), ValueError),
                      (lambda: prune.l1_unstructured(m, "weight", -1), ValueError),
                      (lambda: prune.l1_unstructured(m, "weight", 31), ValueError),
                      (lambda: prune.l1_unstructured(m, "weight", "0.1"), TypeError),
                      (lambda: prune.l1_unstructured(m, "wieght", 0.1), AttributeError),
                      (lambda: prune.ln_structured(m, "bias", 0.5, n=2, dim=0), ValueError),
                      (lambda: prune.ln_structured(m, "weight", 0.5, n=2, dim=2), IndexError),
                      (lambda: prune.l1_unstructured(m, "weight", 0.1, importance_scores=np.ones(3)), ValueError),
                      (lambda: prune.global_unstructured(m, pruning_method=prune.L1Unstructured, amount=0.1), TypeError)]:
        with pytest.raises(err):
            call()
        assert list(m.state_dict()) == list(before) and not prune.is_pruned(m)
    # the seed's call: l1_unstructured(net, prune_amount=0.1) is not torch's signature
    with pytest.raises(TypeError):
        prune.l1_unstructured(m, prune_amount=0.1)
    # a failing second call keeps the first pruning intact
    prune.l1_unstructured(m, "weight", 0.5)
    mask = m.weight_mask.clone()
    with pytest.raises(ValueError):
        prune.l1_unstructured(m, "weight", 100)
    np.testing.assert_array_equal(m.weight_mask, mask)
    assert len(m._forward_pre_hooks) == 1 and not isinstance(m._forward_pre_hooks[0], prune.PruningContainer)


def test_documented_tie_order_and_remove_keeps_the_parameter_object():
    m = nn.Linear(4, 2, dtype=np.float64)
    m.weight.data[...] = [[1, 1, 2, 1], [3, 1, 1, 4]]
    param = m.weight
    prune.l1_unstructured(m, "weight", 3)       # five entries tie at |w| = 1: the lowest flat indices go first
    np.testing.assert_array_equal(m.weight_mask, [[0, 0, 1, 0], [1, 1, 1, 1]])
    c = nn.Conv2d(1, 3, 1, dtype=np.float64)
    c.weight.data[...] = np.array([2.0, 1.0, 2.0]).reshape(3, 1, 1, 1)
    prune.ln_structured(c, "weight", 1, n=1, dim=0)  # channels 0 and 2 tie: the lowest index is kept first
    np.testing.assert_array_equal(c.weight_mask.reshape(-1), [1, 0, 1])
    opt = to.optim.SGD(m.parameters(), lr=1.0)
    assert m.weight_orig is param
    prune.remove(m, "weight")
    assert m.weight is param and list(m.state_dict()) == ["bias", "weight"]
    m(to.tensor(np.ones((1, 4)))).sum().backward()
    opt.step()                                        # the optimizer built while pruned still updates the weight
    assert not np.array_equal(m.weight.data, [[0, 0, 2, 0], [3, 1, 1, 4]])
