"""nn: Module registration and state, Linear (vs torch), Sequential errors, Dropout, init."""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest

import tinyopt as to
from tinyopt import nn
from tinyopt.nn import init


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.second = nn.Linear(3, 2, rng=1)  # assigned first, whatever the name's sort order
        self.first = nn.Linear(2, 1, rng=2)
        self.scale = nn.Parameter(np.ones(1, dtype=np.float32))
        self.register_buffer("count", np.zeros(1))

    def forward(self, x):
        return self.first(self.second(x)) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(1, 2, rng=3))

    def forward(self, x):
        return self.head(self.block(x))


EXPECTED_NAMES = [
    "block.scale", "block.second.weight", "block.second.bias", "block.first.weight", "block.first.bias",
    "head.1.weight", "head.1.bias",
]


# ----------------------------------------------------------------------------- registration


def test_parameters_are_registered_in_assignment_order():
    names = [name for name, _ in Net().named_parameters()]
    # A module's own parameters come before its children's; children in assignment order.
    assert names == EXPECTED_NAMES
    assert [name for name, _ in Net().named_parameters()] == names  # stable across instances


def test_modules_children_and_buffers():
    net = Net()
    assert [n for n, _ in net.named_children()] == ["block", "head"]
    assert [n for n, _ in net.named_modules()] == ["", "block", "block.second", "block.first", "head", "head.0", "head.1"]
    assert [n for n, _ in net.named_buffers()] == ["block.count"]
    assert len(list(net.parameters())) == 7
    assert net.num_parameters() == 3 * 2 + 2 + 2 * 1 + 1 + 1 + 1 * 2 + 2


def test_shared_parameter_is_listed_once():
    net = nn.Module()
    net.a = nn.Linear(2, 2, rng=0)
    net.b = net.a
    assert len(list(net.parameters())) == 2


def test_reassigning_an_attribute_replaces_the_registration():
    m = nn.Module()
    m.w = nn.Parameter(np.ones(2))
    m.w = nn.Linear(2, 2, rng=0)
    assert [n for n, _ in m.named_parameters()] == ["w.weight", "w.bias"]
    m.w = 3
    assert list(m.named_parameters()) == []
    del m.w
    assert not hasattr(m, "w")


def test_module_without_super_init_gives_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.ones(1))

    with pytest.raises(AttributeError, match="super\\(\\).__init__"):
        Broken()


def test_buffer_reassignment_stays_a_buffer_and_is_saved():
    b = Block()
    b.count = b.count + 1
    assert "count" in dict(b.named_buffers())
    np.testing.assert_array_equal(b.state_dict()["count"], [1.0])


# ----------------------------------------------------------------------------- state_dict


def test_state_dict_round_trip_copies_values():
    a, b = Net(), Net()
    for p in b.parameters():
        p.data[...] = 0.5
    state = a.state_dict()
    assert list(state) == EXPECTED_NAMES + ["block.count"]
    b.load_state_dict(state)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(pa.data, pb.data, err_msg=name)
    state["block.scale"][0] = 99.0  # the dict holds copies: the model is not changed
    assert a.block.scale.data[0] != 99.0


def test_load_state_dict_keeps_the_parameter_arrays():
    """Optimizers hold the Parameter objects: loading must write into them, not replace them."""
    net = Net()
    weight, array = net.block.first.weight, net.block.first.weight.data
    net.load_state_dict(Net().state_dict())
    assert net.block.first.weight is weight and net.block.first.weight.data is array


def _snapshot(module):
    return {k: v.copy() for k, v in module.state_dict().items()}


def test_strict_load_names_missing_and_unexpected_keys_and_changes_nothing():
    net = Net()
    before = _snapshot(net)
    state = {k: v + 1 for k, v in Net().state_dict().items()}
    del state["head.1.bias"]
    state["head.2.weight"] = np.zeros((2, 2))
    with pytest.raises(RuntimeError) as info:
        net.load_state_dict(state)
    message = str(info.value)
    assert "missing keys: head.1.bias" in message
    assert "unexpected keys: head.2.weight" in message
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=f"{k} changed although load_state_dict raised")


def test_shape_mismatch_names_key_and_both_shapes_and_changes_nothing():
    net = Net()
    before = _snapshot(net)
    state = {k: v + 1 for k, v in Net().state_dict().items()}
    state["block.second.weight"] = np.zeros((5, 3))
    with pytest.raises(RuntimeError, match=r"block\.second\.weight: checkpoint \(5, 3\) vs model \(2, 3\)"):
        net.load_state_dict(state)
    with pytest.raises(RuntimeError, match="shape"):
        net.load_state_dict(state, strict=False)  # shapes are checked even when not strict
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_non_strict_load_reports_and_loads_the_rest():
    net = Net()
    state = Net().state_dict()
    state["block.scale"] = np.array([7.0])
    del state["head.1.bias"]
    state["extra"] = np.zeros(1)
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert missing == ["head.1.bias"] and unexpected == ["extra"]
    assert net.block.scale.data[0] == 7.0 and net.block.scale.dtype == np.float32


# ----------------------------------------------------------------------------- modes


def test_train_and_eval_reach_every_submodule():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_zero_grad_and_requires_grad():
    net = Net()
    net(to.tensor(np.ones((4, 3), dtype=np.float32))).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(np.all(p.grad == 0) for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.requires_grad_(False)
    assert net.num_parameters(trainable_only=True) == 0


# ----------------------------------------------------------------------------- Linear


def test_linear_matches_torch_with_copied_weights(rng):
    torch = pytest.importorskip("torch")
    ours = nn.Linear(5, 3, dtype=np.float64, rng=0)
    theirs = torch.nn.Linear(5, 3, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.data))
        theirs.bias.copy_(torch.tensor(ours.bias.data))
    x = rng.standard_normal((7, 5))
    v = rng.standard_normal((7, 3))
    xo, xt = to.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yo, yt = ours(xo), theirs(xt)
    np.testing.assert_allclose(yo.data, yt.detach().numpy(), rtol=1e-12)
    (yo * to.tensor(v)).sum().backward()
    (yt * torch.tensor(v)).sum().backward()
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(xo.grad, xt.grad.numpy(), rtol=1e-12)


def test_linear_formula_shapes_and_no_bias(rng):
    layer = nn.Linear(4, 2, bias=False, rng=0)
    assert layer.bias is None and [n for n, _ in layer.named_parameters()] == ["weight"]
    assert layer.weight.shape == (2, 4) and layer.weight.dtype == np.float32
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)  # extra leading axes are fine
    np.testing.assert_allclose(layer(to.tensor(x)).data, x @ layer.weight.data.T, rtol=1e-6)
    assert "in_features=4, out_features=2, bias=False" in repr(layer)
    with pytest.raises(ValueError, match="positive"):
        nn.Linear(0, 3)


def test_linear_wrong_input_names_the_layer_and_both_shapes():
    layer = nn.Linear(784, 10)
    with pytest.raises(nn.ShapeError) as info:
        layer(to.tensor(np.zeros((32, 780), dtype=np.float32)))
    message = str(info.value)
    assert "Linear(in_features=784, out_features=10" in message
    assert "(*, 784)" in message and "(32, 780)" in message
    assert isinstance(info.value, ValueError)


def test_sequential_error_is_prefixed_with_the_layer():
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(100, 10))
    with pytest.raises(nn.ShapeError, match=r"^layer \(3\) of Sequential: Linear\(in_features=100.*\(32, 128\)"):
        model(to.tensor(np.zeros((32, 28, 28), dtype=np.float32)))
    named = nn.Sequential(OrderedDict([("hidden", nn.Linear(4, 3)), ("out", nn.Linear(2, 1))]))
    with pytest.raises(nn.ShapeError, match=r"layer \(out\)"):
        named(to.tensor(np.zeros((1, 4), dtype=np.float32)))


def test_sequential_container_behaviour():
    layers = [nn.Linear(4, 3, rng=0), nn.ReLU(), nn.Linear(3, 2, rng=1)]
    model = nn.Sequential(*layers)
    assert len(model) == 3 and model[0] is layers[0] and list(model) == layers
    assert isinstance(model[1:], nn.Sequential) and len(model[1:]) == 2
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    with pytest.raises(TypeError, match="argument 1"):
        nn.Sequential(nn.ReLU(), lambda x: x)
    ml = nn.ModuleList([nn.ReLU(), nn.Tanh()])
    assert len(ml) == 2 and isinstance(ml[1], nn.Tanh)


def test_flatten_and_identity():
    x = to.tensor(np.zeros((2, 3, 4, 5)))
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 1)(x).shape == (6, 4, 5)
    assert nn.Identity()(x) is x


def test_activation_modules_match_functional(rng):
    x = to.tensor(rng.standard_normal((3, 4)))
    np.testing.assert_array_equal(nn.ReLU()(x).data, np.maximum(x.data, 0))
    np.testing.assert_array_equal(nn.Tanh()(x).data, np.tanh(x.data))
    np.testing.assert_allclose(nn.Sigmoid()(x).data, 1 / (1 + np.exp(-x.data)))
    np.testing.assert_allclose(nn.LeakyReLU(0.2)(x).data, np.where(x.data > 0, x.data, 0.2 * x.data))
    np.testing.assert_allclose(nn.Softmax(dim=0)(x).data.sum(axis=0), 1.0)
    np.testing.assert_allclose(nn.LogSoftmax(dim=1)(x).data, np.log(nn.Softmax(dim=1)(x).data))


# ----------------------------------------------------------------------------- Dropout


def test_dropout_is_reproducible_with_equal_seeds():
    x = to.tensor(np.ones((50, 40), dtype=np.float32))
    a, b = nn.Dropout(0.3, rng=7), nn.Dropout(0.3, rng=7)
    first_a, first_b = a(x).data, b(x).data
    np.testing.assert_array_equal(first_a, first_b)
    np.testing.assert_array_equal(a(x).data, b(x).data)  # the streams stay in step
    assert not np.array_equal(a(x).data, first_a), "a new mask must be drawn on every call"
    assert not np.array_equal(nn.Dropout(0.3, rng=8)(x).data, first_a)


def test_dropout_scales_kept_elements_and_zeroes_about_p():
    p = 0.25
    x = to.tensor(np.full((200, 200), 2.0, dtype=np.float32), requires_grad=True)
    y = nn.Dropout(p, rng=0)(x)
    kept = y.data != 0
    np.testing.assert_allclose(y.data[kept], 2.0 / (1 - p), rtol=1e-6)
    assert abs(1 - kept.mean() - p) < 0.01  # 40,000 draws: std of the rate is ~0.002
    y.sum().backward()
    np.testing.assert_allclose(x.grad, kept / (1 - p), rtol=1e-6)  # gradient uses the same mask
    assert y.dtype == np.float32


def test_dropout_eval_is_identity_and_edge_probabilities():
    x = to.tensor(np.arange(6.0).reshape(2, 3))
    layer = nn.Dropout(0.9, rng=0).eval()
    assert layer(x) is x
    assert nn.Dropout(0.0)(x) is x
    np.testing.assert_array_equal(nn.Dropout(1.0)(x).data, np.zeros((2, 3)))
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="between 0 and 1"):
            nn.Dropout(bad)


# ----------------------------------------------------------------------------- init


def test_linear_default_init_bounds_are_one_over_sqrt_fan_in():
    fan_in = 400
    layer = nn.Linear(fan_in, 300, rng=0)
    bound = 1 / math.sqrt(fan_in)
    for p in (layer.weight.data, layer.bias.data):
        assert np.all(np.abs(p) <= bound)
    assert np.abs(layer.weight.data).max() > 0.99 * bound  # 120,000 draws reach the bound
    np.testing.assert_allclose(layer.weight.data.std(), bound / math.sqrt(3), rtol=0.02)  # U(−b, b) has std b/√3


def test_linear_seeded_weight_and_bias_are_independent():
    layer = nn.Linear(8, 4, rng=0)
    assert not np.array_equal(layer.bias.data, layer.weight.data.reshape(-1)[:4])


def test_kaiming_uniform_with_a_sqrt5_has_bound_one_over_sqrt_fan_in():
    w = to.tensor(np.zeros((64, 50, 3, 3)))  # fan_in = 50·9
    init.kaiming_uniform_(w, a=math.sqrt(5), generator=np.random.default_rng(0))
    bound = 1 / math.sqrt(50 * 9)
    assert np.abs(w.data).max() <= bound and np.abs(w.data).max() > 0.99 * bound


@pytest.mark.parametrize(
    "fn, kwargs, expected_std",
    [
        (init.kaiming_normal_, dict(nonlinearity="relu"), math.sqrt(2 / 300)),
        (init.kaiming_normal_, dict(mode="fan_out", nonlinearity="relu"), math.sqrt(2 / 200)),
        (init.xavier_normal_, {}, math.sqrt(2 / 500)),
        (init.xavier_uniform_, {}, math.sqrt(6 / 500) / math.sqrt(3)),
        (init.kaiming_uniform_, dict(nonlinearity="relu"), math.sqrt(2) * math.sqrt(3 / 300) / math.sqrt(3)),
    ],
)
def test_init_distributions_have_the_formula_std(fn, kwargs, expected_std):
    w = to.tensor(np.zeros((200, 300)))  # fan_in 300, fan_out 200
    fn(w, generator=np.random.default_rng(0), **kwargs)
    np.testing.assert_allclose(w.data.std(), expected_std, rtol=0.02)
    assert abs(w.data.mean()) < 0.02 * expected_std  # 60,000 draws: std of the mean is 0.004·std


def test_uniform_init_bounds_match_torch():
    torch = pytest.importorskip("torch")
    for fn, kwargs in ((init.xavier_uniform_, dict(gain=2.0)), (init.kaiming_uniform_, dict(a=math.sqrt(5)))):
        w = to.tensor(np.zeros((30, 70)))
        fn(w, generator=np.random.default_rng(0), **kwargs)
        t = getattr(torch.nn.init, fn.__name__)(torch.zeros(30, 70, dtype=torch.float64), **kwargs)
        assert abs(np.abs(w.data).max() - t.abs().max().item()) < 0.02 * t.abs().max().item()


def test_calculate_gain_and_fans():
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == pytest.approx(math.sqrt(1 / 3))
    assert init.calculate_fan_in_and_fan_out(to.tensor(np.zeros((8, 4, 3, 3)))) == (36, 72)
    with pytest.raises(ValueError, match="2 dimensions"):
        init.calculate_fan_in_and_fan_out(to.tensor(np.zeros(3)))
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_uniform_(to.tensor(np.zeros((2, 2))), mode="fan_avg")
    with pytest.raises(ValueError, match="nonlinearity"):
        init.calculate_gain("swish")


def test_the_same_seed_gives_bit_identical_init():
    def build(seed):
        rng = np.random.default_rng(seed)
        return nn.Sequential(nn.Linear(20, 10, rng=rng), nn.ReLU(), nn.Linear(10, 3, rng=rng))

    a, b, c = build(42), build(42), build(43)
    for (name, pa), (_, pb), (_, pc) in zip(a.named_parameters(), b.named_parameters(), c.named_parameters()):
        assert pa.data.tobytes() == pb.data.tobytes(), name
        assert pa.data.tobytes() != pc.data.tobytes(), name
    to.manual_seed(5)
    d = nn.Linear(6, 2)
    to.manual_seed(5)
    e = nn.Linear(6, 2)
    assert d.weight.data.tobytes() == e.weight.data.tobytes() and d.bias.data.tobytes() == e.bias.data.tobytes()
