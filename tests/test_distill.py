"""tinyopt.distill: the Distiller's loss is F.kd_loss on the right logits, the teacher never
changes, a distilled student beats the same student trained from scratch on a small fixed problem,
and FitNets hints train the student through a learned regressor."""
import numpy as np
import pytest

import tinyopt as to
from tinyopt import distill, nn, optim
from tinyopt.errors import ShapeError
from tinyopt.nn import functional as F


def _blobs(n, rng, centers, noise=1.6):
    y = rng.integers(0, len(centers), n)
    return (centers[y] + rng.standard_normal((n, centers.shape[1])) * noise).astype(np.float32), y


def _mlp(hidden, seed, d_in=20, d_out=10, dropout=0.0):
    g = np.random.default_rng(seed)
    layers = [nn.Linear(d_in, hidden, rng=g), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers, nn.Linear(hidden, d_out, rng=g))


def _accuracy(model, x, y):
    with to.no_grad():
        was = model.training
        model.eval()
        out = model(to.tensor(x)).data
        model.train(was)
    return float((out.argmax(1) == y).mean())


def _train(model, x, y, epochs, seed):
    opt = optim.Adam(model.parameters(), lr=1e-2)
    g = np.random.default_rng(seed)
    for _ in range(epochs):
        for idx in np.array_split(g.permutation(len(x)), max(1, len(x) // 32)):
            loss = F.cross_entropy(model(to.tensor(x[idx])), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


@pytest.fixture(scope="module")
def problem():
    """10 Gaussian classes in 20-D; a wide teacher trained on 3000 samples; 100 labelled samples
    for the student; 2000 held out."""
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((10, 20))
    x_big, y_big = _blobs(3000, rng, centers)
    x_val, y_val = _blobs(2000, rng, centers)
    teacher = _train(_mlp(128, 1), x_big, y_big, epochs=20, seed=0)
    return teacher, (x_big[:100], y_big[:100]), (x_val, y_val)


def test_distilled_student_beats_the_same_student_from_scratch(problem):
    teacher, (x, y), (x_val, y_val) = problem
    scratch = _train(_mlp(16, 10), x, y, epochs=60, seed=0)
    student = _mlp(16, 10)  # the same initial weights as `scratch`
    d = distill.Distiller(teacher, student, T=4.0, alpha=0.9)
    d.fit(x, y, optim.Adam(d.parameters(), lr=1e-2), epochs=60, batch_size=32, rng=0)
    a_teacher, a_scratch, a_kd = (_accuracy(m, x_val, y_val) for m in (teacher, scratch, student))
    assert a_teacher > a_scratch
    assert a_kd > a_scratch + 0.03, (a_teacher, a_scratch, a_kd)


def test_loss_is_kd_loss_of_student_and_teacher_logits(rng):
    teacher, student = _mlp(8, 1, 5, 3, dropout=0.5), _mlp(4, 2, 5, 3)
    x = rng.standard_normal((6, 5)).astype(np.float32)
    y = rng.integers(0, 3, 6)
    d = distill.Distiller(teacher, student, T=2.5, alpha=0.3)
    teacher.train()  # the Distiller runs it in evaluation mode anyway (dropout off), and restores the mode
    loss = d.loss(x, y)
    assert teacher.training
    with to.no_grad():
        teacher.eval()
        z_t = teacher(to.tensor(x))
        teacher.train()
    expected = F.kd_loss(student(to.tensor(x)), z_t, y, T=2.5, alpha=0.3)
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-6)
    assert z_t.requires_grad is False
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())


def test_teacher_never_changes_and_is_not_part_of_the_distiller(rng):
    teacher = nn.Sequential(nn.Linear(5, 8, rng=1), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3, rng=1))
    student = _mlp(4, 2, 5, 3)
    before = {k: v.copy() for k, v in teacher.state_dict().items()}
    d = distill.Distiller(teacher, student)
    x = rng.standard_normal((40, 5)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    losses = d.fit(x, y, optim.SGD(d.parameters(), lr=0.1, momentum=0.9), epochs=3, batch_size=8, rng=0)
    assert len(losses) == 3 and all(np.isfinite(losses))
    for k, v in teacher.state_dict().items():  # weights and BatchNorm running statistics alike
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    assert {id(p) for p in d.parameters()} == {id(p) for p in student.parameters()}
    assert all(k.startswith("student.") for k in d.state_dict())
    assert "T=4.0, alpha=0.9" in repr(d)


def test_step_applies_one_update_and_skips_a_nan_loss(rng):
    teacher, student = _mlp(8, 1, 5, 3), _mlp(4, 2, 5, 3)
    d = distill.Distiller(teacher, student)
    opt = optim.SGD(d.parameters(), lr=0.1)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    step = d.step(x, np.array([0, 1, 2, 0]), opt)
    assert step.applied and np.isfinite(step.loss)
    before = [p.data.copy() for p in student.parameters()]
    bad = x.copy()
    bad[0, 0] = np.nan
    step = d.step(bad, np.array([0, 1, 2, 0]), opt)
    assert not step.applied
    for p, b in zip(student.parameters(), before):
        np.testing.assert_array_equal(p.data, b)


def test_soft_only_when_no_labels(rng):
    teacher, student = _mlp(8, 1, 5, 3), _mlp(4, 2, 5, 3)
    d = distill.Distiller(teacher, student, T=3.0, alpha=0.5)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    z_s = d(x)
    expected = F.kd_loss(z_s, d.teacher_logits(x), T=3.0)
    np.testing.assert_allclose(d.criterion(z_s).item(), expected.item(), rtol=1e-6)


def test_bad_arguments_raise(rng):
    teacher, student = _mlp(8, 1, 5, 3), _mlp(4, 2, 5, 3)
    with pytest.raises(ValueError, match="temperature"):
        distill.Distiller(teacher, student, T=0)
    with pytest.raises(ValueError, match="alpha"):
        distill.Distiller(teacher, student, alpha=1.1)
    with pytest.raises(ValueError, match="beta"):
        distill.Distiller(teacher, student, beta=-1)
    with pytest.raises(TypeError, match="teacher"):
        distill.Distiller(lambda x: x, student)
    with pytest.raises(ValueError, match="different"):
        distill.Distiller(student, student)
    with pytest.raises(ValueError, match="share parameters"):
        distill.Distiller(nn.Sequential(student[0], nn.ReLU(), nn.Linear(4, 3)), student)
    with pytest.raises(TypeError, match="FeatureHint"):
        distill.Distiller(teacher, student, hints=[nn.Linear(2, 2)])
    d = distill.Distiller(teacher, student)
    with pytest.raises(RuntimeError, match="distiller\\(x\\) first"):
        d.criterion(to.tensor(np.zeros((2, 3), dtype=np.float32)), np.array([0, 1]))
    with pytest.raises(ValueError, match="epochs"):
        d.fit(np.zeros((2, 5)), np.zeros(2, dtype=int), optim.SGD(d.parameters(), lr=0.1), epochs=-1)


# ----------------------------------------------------------------------------- FitNets hints


def _conv_pair():
    g = np.random.default_rng(3)
    teacher = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, rng=g), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 3, rng=g))
    student = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, rng=g), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 36, 3, rng=g))
    return teacher, student


def test_hint_loss_is_mse_through_the_regressor(rng):
    teacher, student = _conv_pair()
    hint = distill.FeatureHint.conv(teacher[1], student[1], 2, 8, rng=0)
    x = rng.standard_normal((4, 1, 6, 6)).astype(np.float32)
    d = distill.Distiller(teacher, student, hints=[hint], beta=0.5)
    loss = d.hint_loss(x)
    with to.no_grad():
        u = teacher[1](teacher[0](to.tensor(x))).data
        v = student[1](student[0](to.tensor(x)))
        expected = ((hint.regressor(v).data - u) ** 2).mean()
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-5)
    loss.backward()
    assert all(p.grad is not None for p in hint.regressor.parameters())
    assert student[0].weight.grad is not None        # below the guided layer
    assert student[3].weight.grad is None            # above it: the hint does not reach the head
    assert all(p.grad is None for p in teacher.parameters())
    # the regressor is trained with the student; the total loss adds beta * hint
    assert {id(p) for p in d.parameters()} == {id(p) for p in student.parameters()} | \
        {id(p) for p in hint.regressor.parameters()}
    y = rng.integers(0, 3, 4)
    z_s = d(x)
    total = d.criterion(z_s, y).item()
    kd = F.kd_loss(d(x), d.teacher_logits(x), y, T=4.0, alpha=0.9).item()  # d(x) records new features
    np.testing.assert_allclose(total, kd + 0.5 * hint.loss().item(), rtol=1e-5)


def test_fitnets_stage_one_reduces_the_hint_loss(rng):
    teacher, student = _conv_pair()
    hint = distill.FeatureHint.conv(teacher[1], student[1], 2, 8, rng=0)
    d = distill.Distiller(teacher, student, hints=[hint])
    x = rng.standard_normal((32, 1, 6, 6)).astype(np.float32)
    guided = list(student[0].parameters()) + list(hint.parameters())
    opt = optim.Adam(guided, lr=1e-2)
    first = None
    for _ in range(60):
        loss = d.hint_loss(x)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert d.hint_loss(x).item() < 0.5 * first


def test_hint_errors(rng):
    teacher, student = _conv_pair()
    hint = distill.FeatureHint.conv(teacher[1], student[1], 2, 4, rng=0)  # wrong teacher width
    with pytest.raises(RuntimeError, match="no teacher or student features"):
        hint.loss()
    d = distill.Distiller(teacher, student, hints=[hint])
    with pytest.raises(ShapeError, match=r"\(4, 8, 6, 6\)"):
        d.hint_loss(rng.standard_normal((4, 1, 6, 6)).astype(np.float32))
    with pytest.raises(TypeError, match="regressor"):
        distill.FeatureHint(teacher[1], student[1], "conv")
    with pytest.raises(RuntimeError, match="needs hints"):
        distill.Distiller(teacher, _conv_pair()[1]).hint_loss(np.zeros((1, 1, 6, 6), dtype=np.float32))
    hint.remove()
    assert not teacher[1]._forward_hooks and not student[1]._forward_hooks
