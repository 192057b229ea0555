"""The model zoo trains: a few hundred steps of LeNet-5 on a Fashion-MNIST slice lower the loss
clearly; both models match torch step by step from the same weights; shapes, init and errors."""
from __future__ import annotations

import numpy as np
import pytest

import tinyopt as to
import tinyopt.nn.functional as F
from tinyopt.models import KerasCNN, LeNet5

from conftest import have_fashion_mnist


@pytest.fixture(scope="module")
def fashion_slice():
    if not have_fashion_mnist():
        pytest.skip("Fashion-MNIST files are not installed")
    (x, y), _ = to.datasets.fashion_mnist.load_data()
    x = (x[:2048].astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return x, y[:2048].astype(np.int64)


def test_lenet5_few_hundred_steps_lower_the_loss_clearly(fashion_slice):
    x, y = fashion_slice
    rng = np.random.default_rng(0)
    model = LeNet5(rng=rng)
    opt = to.optim.Adam(model.parameters(), lr=2e-3)
    loader = to.data.DataLoader((x, y), batch_size=32, shuffle=True, rng=rng)
    losses = []
    while len(losses) < 300:
        for xb, yb in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(to.tensor(xb)), yb)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    first, last = np.mean(losses[:20]), np.mean(losses[-50:])
    assert first > 2.0  # ≈ log 10 at initialisation
    assert last < 0.45 * first, (first, last)
    with to.no_grad():
        accuracy = (model(to.tensor(x)).data.argmax(axis=1) == y).mean()
    assert accuracy > 0.75  # 10 classes: chance is 0.1


def _torch_models(torch):
    nn = torch.nn
    lenet = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )
    keras = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(), nn.Linear(576, 64), nn.ReLU(), nn.Linear(64, 10),
    )
    return {"lenet5": lenet, "keras": keras}


@pytest.mark.parametrize("name", ["lenet5", "keras"])
def test_models_match_torch_for_sgd_steps(name, fashion_slice):
    """Same weights, same batches, plain SGD: losses and final weights agree with torch."""
    torch = pytest.importorskip("torch")
    x, y = fashion_slice
    ours = LeNet5(rng=1) if name == "lenet5" else KerasCNN(rng=1)
    ref = _torch_models(torch)[name].double()
    for p in ours.parameters():
        p.data = p.data.astype(np.float64)
    with torch.no_grad():
        for p_ours, p_ref in zip(ours.parameters(), ref.parameters()):
            assert tuple(p_ours.shape) == tuple(p_ref.shape)
            p_ref.copy_(torch.from_numpy(p_ours.data))
    opt, ref_opt = to.optim.SGD(ours.parameters(), lr=0.1), torch.optim.SGD(ref.parameters(), lr=0.1)
    for step in range(4):
        xb, yb = x[step * 16:(step + 1) * 16].astype(np.float64), y[step * 16:(step + 1) * 16]
        opt.zero_grad()
        loss = F.cross_entropy(ours(to.tensor(xb)), yb)
        loss.backward()
        opt.step()
        ref_opt.zero_grad()
        ref_loss = torch.nn.functional.cross_entropy(ref(torch.from_numpy(xb)), torch.from_numpy(yb))
        ref_loss.backward()
        ref_opt.step()
        assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-9)
    for p_ours, p_ref in zip(ours.parameters(), ref.parameters()):
        np.testing.assert_allclose(p_ours.data, p_ref.detach().numpy(), rtol=1e-8, atol=1e-10)


def test_keras_cnn_layout_and_parameter_count():
    model = KerasCNN(rng=0)
    assert model.num_parameters() == 93_322  # the TensorFlow tutorial's model.summary() for 28×28×1
    out = model(to.zeros(3, 28, 28))  # Keras-style arrays without the channel axis are accepted
    assert out.shape == (3, 10)
    assert LeNet5(rng=0).num_parameters() == 61_706


def test_keras_init_is_glorot_with_zero_bias():
    model = KerasCNN(init="keras", rng=0)
    conv = model.features[0]
    fan_in, fan_out = 1 * 9, 32 * 9
    assert np.abs(conv.weight.data).max() <= np.sqrt(6 / (fan_in + fan_out))
    assert all(np.all(m.bias.data == 0) for m in model.modules() if isinstance(m, (to.nn.Conv2d, to.nn.Linear)))
    with pytest.raises(ValueError):
        KerasCNN(init="he")


def test_lenet5_original_variant_and_seeded_reproducibility():
    a, b = LeNet5(activation="tanh", pooling="avg", rng=3), LeNet5(activation="tanh", pooling="avg", rng=3)
    assert isinstance(a.features[1], to.nn.Tanh) and isinstance(a.features[2], to.nn.AvgPool2d)
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(pa.data, pb.data)
    with pytest.raises(ValueError):
        LeNet5(activation="gelu")


def test_wrong_input_shape_names_model_and_shape():
    with pytest.raises(to.nn.ShapeError, match=r"LeNet5 expects input of shape \(N, 1, 28, 28\).*\(2, 3, 28, 28\)"):
        LeNet5(rng=0)(to.zeros(2, 3, 28, 28))
