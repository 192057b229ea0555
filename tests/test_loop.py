"""tinyopt.loop: the one training epoch behind `tinyopt train`, Keras `fit` and QAT.

Each caller's result is compared, bit for bit, with the hand-written loop it replaced (the
algorithm its docstring states), so sharing the loop changed no number."""
import copy
import math

import numpy as np
import pytest

from tinyopt import nn
from tinyopt.loop import (
    Hooks, Meter, Step, TrainingDiverged, evaluation, minibatches, train_epoch, train_step,
)
from tinyopt.nn import functional as F
from tinyopt.optim import SGD, Adam
from tinyopt.optim.lr_scheduler import StepLR
from tinyopt.tensor import Tensor


def blobs(n=96, d=5, classes=3, seed=0):
    g = np.random.default_rng(seed)
    centers = g.normal(scale=3.0, size=(classes, d))
    y = g.integers(0, classes, size=n)
    return (centers[y] + g.normal(size=(n, d))).astype(np.float32), y.astype(np.int64)


def mlp(seed=0, d=5, classes=3):
    rng = np.random.default_rng(seed)
    return nn.Sequential(nn.Linear(d, 8, rng=rng), nn.ReLU(), nn.Linear(8, classes, rng=rng))


def weights(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


class Recorder(Hooks):
    def __init__(self):
        self.calls = []

    def on_step_begin(self, step):
        self.calls.append(("begin", step.epoch, step.index, step.global_step))

    def on_step_end(self, step):
        self.calls.append(("end", step.epoch, step.index, step.global_step, step.applied))


# ----------------------------------------------------------------------------- the step


def test_train_epoch_is_the_torch_loop_bit_for_bit():
    x, y = blobs()
    order = np.random.default_rng(3).permutation(len(x))
    ref, shared = mlp(), mlp()
    opt_ref, opt = Adam(ref.parameters(), lr=0.01), Adam(shared.parameters(), lr=0.01)
    sched_ref, sched = StepLR(opt_ref, step_size=2, gamma=0.5), StepLR(opt, step_size=2, gamma=0.5)
    losses = []
    for start in range(0, len(x), 16):  # the loop as every torch script writes it
        idx = order[start:start + 16]
        loss = F.cross_entropy(ref(Tensor(x[idx])), y[idx])
        opt_ref.zero_grad()
        loss.backward()
        opt_ref.step()
        sched_ref.step()
        losses.append(loss.item())
    hooks = Recorder()
    result = train_epoch(shared, opt, minibatches(x, y, 16, order), F.cross_entropy, scheduler=sched, hooks=hooks)
    assert_same(weights(ref), weights(shared))
    assert sched.last_epoch == sched_ref.last_epoch and opt.param_groups[0]["lr"] == opt_ref.param_groups[0]["lr"]
    assert result.steps == result.global_step == 6 and result.seen == len(x)
    assert result.loss == pytest.approx(np.mean(losses))
    assert hooks.calls[:2] == [("begin", 0, 0, 0), ("end", 0, 0, 0, True)] and hooks.calls[-1] == ("end", 0, 5, 5, True)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_loss_is_never_applied(bad):
    """Nothing changes: weights, gradients, the optimizer's state, the scheduler."""
    x, y = blobs(n=8)
    model = mlp()
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = StepLR(opt, step_size=1, gamma=0.5)
    train_step(model, opt, x, y, F.cross_entropy, sched)  # some state to keep
    before, opt_before, sched_before = weights(model), copy.deepcopy(opt.state_dict()), sched.state_dict()
    grads = [np.array(p.grad, copy=True) for p in model.parameters()]
    step = train_step(model, opt, x, y, lambda out, t: F.cross_entropy(out, t) * bad, sched, global_step=1)
    assert not step.applied and (math.isnan(step.loss) or math.isinf(step.loss))
    assert_same(before, weights(model))
    for p, g in zip(model.parameters(), grads):
        np.testing.assert_array_equal(np.asarray(p.grad), g)
    assert opt.state_dict()["param_groups"] == opt_before["param_groups"]
    for i, s in opt_before["state"].items():
        np.testing.assert_array_equal(opt.state_dict()["state"][i]["momentum_buffer"], s["momentum_buffer"])
    assert sched.state_dict() == sched_before


def test_divergence_names_epoch_step_global_step_and_lr():
    x, y = blobs(n=64)
    model = mlp()
    opt = SGD(model.parameters(), lr=0.25)
    calls = {"n": 0}

    def loss_fn(out, t):  # finite for 5 steps, then NaN
        calls["n"] += 1
        return F.cross_entropy(out, t) * (np.nan if calls["n"] == 6 else 1.0)

    train_epoch(model, opt, minibatches(x, y, 16), loss_fn, epoch=0)       # 4 steps
    before = weights(model)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 2, step 2 \(global step 6\) with "
                                               r"learning rate 0\.25; the weights are still finite.*lower the "
                                               r"learning rate, e\.g\. to 0\.025") as info:
        train_epoch(model, opt, minibatches(x, y, 16), loss_fn, epoch=1, global_step=4)
    assert (info.value.epoch, info.value.step, info.value.global_step, info.value.lr) == (2, 2, 6, 0.25)
    after_one = weights(model)  # step 1 of epoch 2 was applied, step 2 was not
    assert not all(np.array_equal(before[k], after_one[k]) for k in before)


def test_a_nan_before_any_update_blames_the_data_not_the_learning_rate():
    x, y = blobs(n=8)
    x[0, 0] = np.nan
    model = mlp()
    with pytest.raises(TrainingDiverged, match="before any update, so not the learning rate: check the inputs"):
        train_epoch(model, SGD(model.parameters(), lr=0.1), minibatches(x, y, 8), F.cross_entropy)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_divergence_says_when_the_weights_are_already_broken():
    x, y = blobs(n=8)
    model = mlp()
    model[0].weight.data[0, 0] = np.inf
    with pytest.raises(TrainingDiverged, match=r"the weights are no longer finite \(0\.weight holds NaN/inf\)"):
        train_epoch(model, SGD(model.parameters(), lr=0.1), minibatches(x, y, 8), F.cross_entropy, global_step=3)


def test_hooks_can_skip_a_non_finite_batch_and_stop_the_epoch():
    class SkipThenStop(Recorder):
        def __init__(self):
            super().__init__()
            self.bad = []

        def on_non_finite(self, step):
            self.bad.append(step.index)

        def should_stop(self):
            return len(self.bad) == 2

    x, y = blobs(n=80)
    model = mlp()
    flags = iter([1.0, np.nan, 1.0, np.inf, 1.0])
    hooks = SkipThenStop()
    result = train_epoch(model, SGD(model.parameters(), lr=0.1), minibatches(x, y, 16),
                         lambda out, t: F.cross_entropy(out, t) * next(flags), hooks=hooks)
    assert hooks.bad == [1, 3] and result.stopped and result.steps == 4 and result.skipped == 2
    assert result.global_step == 2 and result.seen == 32
    assert [c for c in hooks.calls if c[0] == "end"] == [("end", 0, 0, 0, True), ("end", 0, 2, 1, True)]


def test_max_steps_and_global_step_across_epochs():
    x, y = blobs(n=40)
    model = mlp()
    opt = SGD(model.parameters(), lr=0.1)
    first = train_epoch(model, opt, minibatches(x, y, 8), F.cross_entropy, max_steps=3)
    second = train_epoch(model, opt, minibatches(x, y, 8), F.cross_entropy, epoch=1, global_step=first.global_step,
                         max_steps=10)
    assert (first.steps, first.global_step, second.steps, second.global_step) == (3, 3, 5, 8)


def test_train_mode_and_evaluation_mode():
    model = nn.Sequential(nn.Linear(5, 3), nn.Dropout(0.5))
    model.eval()
    x, y = blobs(n=8)
    train_epoch(model, SGD(model.parameters(), lr=0.1), minibatches(x, y, 8), F.cross_entropy, train_mode=False)
    assert not model.training
    train_epoch(model, SGD(model.parameters(), lr=0.1), minibatches(x, y, 8), F.cross_entropy)
    assert model.training
    with evaluation(model):
        assert not model.training and not model(Tensor(x)).requires_grad
    assert model.training


def test_scaler_protocol_is_used_when_given():
    class Scaler:  # torch.amp.GradScaler's protocol, scale 1
        def __init__(self):
            self.calls = []

        def scale(self, loss):
            self.calls.append("scale")
            return loss

        def step(self, optimizer):
            self.calls.append("step")
            optimizer.step()

        def update(self):
            self.calls.append("update")

    x, y = blobs(n=8)
    a, b = mlp(), mlp()
    scaler = Scaler()
    train_step(a, SGD(a.parameters(), lr=0.1), x, y, F.cross_entropy, scaler=scaler)
    train_step(b, SGD(b.parameters(), lr=0.1), x, y, F.cross_entropy)
    assert scaler.calls == ["scale", "step", "update"]
    assert_same(weights(a), weights(b))


def test_meter_and_minibatches():
    m = Meter()
    m.add({"loss": 2.0 * 3, "correct": 2}, 3)
    m.add({"loss": 1.0 * 1, "correct": 1}, 1)
    assert m.means() == {"loss": 7.0 / 4, "correct": 3 / 4} and Meter().means() == {}
    x, y = np.arange(10), np.arange(10) * 2
    batches = list(minibatches(x, y, 4, order=np.array([9, 8, 7, 6, 5, 4, 3, 2, 1, 0])))
    assert [b[0].tolist() for b in batches] == [[9, 8, 7, 6], [5, 4, 3, 2], [1, 0]]
    assert [b[1].tolist() for b in minibatches(x, y, 4)] == [[0, 2, 4, 6], [8, 10, 12, 14], [16, 18]]


def test_step_fields():
    x, y = blobs(n=4)
    model = mlp()
    step = train_step(model, SGD(model.parameters(), lr=0.3), x, y, F.cross_entropy, epoch=2, index=5, global_step=9)
    assert isinstance(step, Step) and (step.epoch, step.index, step.global_step, step.lr, step.size) == (2, 5, 9, 0.3, 4)
    assert step.applied and step.output.shape == (4, 3)


# ----------------------------------------------------------------------------- the callers


def test_keras_fit_is_the_keras_loop_bit_for_bit():
    """fit's epochs through tinyopt.loop equal the loop fit had: permutation per epoch, then per
    batch zero_grad, loss(Y, Ŷ) + regularization, backward, step; epoch logs = size-weighted means."""
    from tinyopt import keras
    from tinyopt.keras import layers

    def build():
        model = keras.Sequential([layers.Dense(8, activation="relu", input_shape=(5,), rng=0,
                                               kernel_regularizer=keras.regularizers.l2(1e-3)),
                                  layers.Dropout(0.25, rng=3), layers.Dense(3, activation="softmax", rng=1)])
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    x, y = blobs(n=90)
    fitted = build()
    hist = fitted.fit(x, y, batch_size=16, epochs=3, verbose=0, rng=7)

    ref = build()
    rng = np.random.default_rng(7)
    expected = []
    for _ in range(3):
        order = rng.permutation(len(x))
        sums, seen = {}, 0
        for step in range(math.ceil(len(x) / 16)):
            idx = order[step * 16:(step + 1) * 16]
            logs = ref.train_on_batch(x[idx], y[idx])
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + v * len(idx)
            seen += len(idx)
        expected.append({k: s / seen for k, s in sums.items()})
    assert_same(dict(enumerate(fitted.get_weights())), dict(enumerate(ref.get_weights())))
    assert hist.history["loss"] == [e["loss"] for e in expected]
    assert hist.history["accuracy"] == [e["accuracy"] for e in expected]


def _qat_reference(model, train_data, epochs, lr, batch_size, rng, max_steps, freeze_observers_after):
    """train_qat's algorithm as its docstring states it (the hand-written loop it had)."""
    from tinyopt.quant import quantize as QZ
    from tinyopt.quant.fake_quantize import FakeQuantize

    x, y = train_data
    qat = QZ.prepare_qat(QZ.fuse_known(model.eval()))
    opt = Adam(qat.parameters(), lr=lr)
    total = epochs * -(-len(x) // batch_size)
    if max_steps is not None:
        total = min(total, max_steps)
    freeze_at = int(np.ceil(freeze_observers_after * total)) if freeze_observers_after < 1.0 else None
    steps = 0
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch_size):
            if steps >= total:
                break
            if steps == freeze_at and steps > 0:
                for m in qat.modules():
                    if isinstance(m, FakeQuantize):
                        m.disable_observer()
            idx = order[start:start + batch_size]
            opt.zero_grad()
            loss = F.cross_entropy(qat(Tensor(x[idx])), y[idx])
            loss.backward()
            opt.step()
            steps += 1
    qat.eval()
    return QZ.convert(qat)


@pytest.mark.parametrize("epochs,max_steps", [(2, None), (3, 7)])
def test_train_qat_is_the_documented_loop(epochs, max_steps):
    from tinyopt.quant.reporting import train_qat

    x, y = blobs(n=60, d=6)
    model = nn.Sequential(nn.Linear(6, 8, rng=np.random.default_rng(0)), nn.ReLU(),
                          nn.Linear(8, 3, rng=np.random.default_rng(1)))
    got = train_qat(copy.deepcopy(model), (x, y), epochs=epochs, lr=1e-2, batch_size=16,
                    rng=np.random.default_rng(5), max_steps=max_steps, freeze_observers_after=0.5)
    want = _qat_reference(copy.deepcopy(model), (x, y), epochs, 1e-2, 16, np.random.default_rng(5), max_steps, 0.5)
    with evaluation(got), evaluation(want):
        np.testing.assert_array_equal(got(Tensor(x)).data, want(Tensor(x)).data)
