"""Mixed precision: number formats, bfloat16 gradients, autocast's op lists against torch's CPU autocast,
16-bit linear/conv against a by-hand rounded reference and torch, GradScaler against torch.amp.GradScaler."""
import ml_dtypes
import numpy as np
import pytest

import tinyopt as to
import tinyopt.nn.functional as F
from tinyopt import nn, optim
from tinyopt.amp import GradScaler, autocast, formats
from tinyopt.autograd import autocast_mode
from tinyopt.autograd.function import Function
from tinyopt.ops import conv_pool, elementwise, linalg, reduce, shape
from tinyopt.ops import nn as NN
from tinyopt.ops.precision import AutocastFloat32

LOW = [to.float16, to.bfloat16]
# GradScaler tests overflow on purpose (that is what the scaler detects)
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")

# ----------------------------------------------------------------------------- formats


def _probe_values(rng):
    """float64 values across every binade of float16/bfloat16, subnormals, ties and overflow."""
    exps = rng.integers(-140, 130, size=4000)
    v = rng.uniform(1, 2, size=4000) * 2.0 ** exps * rng.choice([-1, 1], size=4000)
    ties = (1 + (2 * np.arange(1, 50) + 1) / 2 ** 11) * 2.0 ** rng.integers(-24, 15, size=49)  # fp16 halfway points
    edges = np.array([0.0, -0.0, 65504, 65519.99, 65520, 65536, 2 ** -24, 2 ** -25, 2 ** -25 * 1.0001, 2 ** -14,
                      np.inf, -np.inf, 1e39, 3.4e38])
    return np.concatenate([v, ties, edges])


@pytest.mark.parametrize("name", ["float16", "float32"])
def test_round_to_matches_numpy_cast(name, rng):
    x = _probe_values(rng)
    with np.errstate(over="ignore"):
        expected = x.astype(name).astype(np.float64)
    np.testing.assert_array_equal(formats.round_to(x, name), expected)


def test_round_to_bfloat16_matches_ml_dtypes(rng):
    with np.errstate(over="ignore"):
        x = _probe_values(rng).astype(np.float32).astype(np.float64)   # ml_dtypes rounds from float32
    expected = x.astype(np.float32).astype(ml_dtypes.bfloat16).astype(np.float64)
    np.testing.assert_array_equal(formats.round_to(x, "bfloat16"), expected)


def test_format_table_and_bits():
    rows = {r["format"]: r for r in formats.table()}
    assert rows["float16"]["max"] == 65504 and rows["float16"]["smallest_normal"] == 2 ** -14
    assert rows["float16"]["smallest_subnormal"] == 2 ** -24
    assert rows["bfloat16"]["max"] == float(ml_dtypes.finfo(ml_dtypes.bfloat16).max)
    assert float(ml_dtypes.finfo(ml_dtypes.bfloat16).smallest_subnormal) == rows["bfloat16"]["smallest_subnormal"]
    assert formats.bit_string(1.0, "float16") == "0 01111 0000000000"
    assert formats.bit_string(-2.0, "bfloat16") == "1 10000000 0000000"
    assert formats.bit_string(2 ** -24, "float16") == "0 00000 0000000001"
    for v in (0.1, -3.75, 2 ** -20, 65504.0, 1e-30):
        for name in ("float16", "bfloat16", "float32"):
            with np.errstate(over="ignore", under="ignore"):
                assert formats.decode(v, name) == float(np.asarray(v).astype(formats.format_of(name).dtype))
    assert np.all(formats.spacing([1.0, 1.5, 1024.0], "float16") == [2 ** -10, 2 ** -10, 1.0])
    assert formats.spacing(1e-7, "float16") == 2 ** -24


def test_fixed_point_is_not_half_precision():
    q = formats.FixedPoint(fraction_bits=10, total_bits=16)
    x = np.array([1e-4, 3e-4, 0.1, 1.0, 30.0, 40.0, 1000.0])
    assert q.quantize(1e-4) == 0.0 and formats.round_to(1e-4, "float16") != 0   # fp16 keeps small numbers
    assert q.quantize(40.0) == q.max < 32 and formats.round_to(40.0, "float16") == 40.0
    err = np.abs(q.quantize(x[:5]) - x[:5])
    assert np.all(err <= 2 ** -11)                                  # constant absolute error
    rel16 = formats.relative_error(x, "float16")
    assert np.all(rel16 <= 2 ** -11)                                # constant relative error
    assert formats.FixedPoint(overflow="wrap").quantize(40.0) < 0   # an unchecked int16 cast wraps


# ----------------------------------------------------------------------------- bfloat16 gradients


def test_bfloat16_results_keep_their_gradients():
    w = to.randn(3, 4).bfloat16().requires_grad_()
    x = to.randn(2, 4).bfloat16()
    y = F.relu(x @ w.T).sum() * 2
    assert y.dtype == to.bfloat16 and y.requires_grad
    y.backward()
    assert w.grad is not None and w.grad.dtype == to.bfloat16
    model = nn.Linear(4, 2).bfloat16()
    opt = optim.Adam(model.parameters(), lr=0.1)
    before = model.weight.data.astype(np.float32).copy()
    F.mse_loss(model(x), to.zeros(2, 2).bfloat16()).backward()
    opt.step()
    assert model.weight.dtype == to.bfloat16 and not np.array_equal(model.weight.data.astype(np.float32), before)


def test_first_non_finite_sees_bfloat16():
    from tinyopt.loop import first_non_finite

    model = nn.Linear(2, 2).bfloat16()
    assert first_non_finite(model) is None
    model.weight.data[0, 0] = np.nan
    assert first_non_finite(model) == "weight"


# ----------------------------------------------------------------------------- autocast: the op lists


def test_op_classes_declare_torch_cpu_lists():
    lower = {linalg.MatMul, NN.Linear, conv_pool.Conv2dFunction}
    fp32 = {NN.CrossEntropy, reduce.Prod, AutocastFloat32}
    promote = {shape.Concatenate}
    import inspect
    from tinyopt import ops
    classes = {c for mod in (conv_pool, elementwise, linalg, reduce, shape, NN, ops.resample)
               for _, c in inspect.getmembers(mod, inspect.isclass) if issubclass(c, Function) and c is not Function}
    for c in classes | {AutocastFloat32}:
        expected = ("lower_precision_fp" if c in lower else "fp32" if c in fp32 else "promote" if c in promote else None)
        assert c.autocast_policy == expected, c.__name__
    assert autocast_mode.state.dtype is None and autocast_mode.active == 0   # off unless a region is open


def _dtype_cases(torch, TF):
    """(name, tinyopt fn, torch fn) over inputs x (4, 8) float32, img (2, 3, 8, 8), labels."""
    return [
        ("linear", lambda m, x, w, img, cw, lab: m.linear(x, w)),
        ("matmul", lambda m, x, w, img, cw, lab: x @ w.T),
        ("conv2d", lambda m, x, w, img, cw, lab: m.conv2d(img, cw)),
        ("linear_then_softmax", lambda m, x, w, img, cw, lab: m.softmax(m.linear(x, w), dim=-1)),
        ("linear_then_log_softmax", lambda m, x, w, img, cw, lab: m.log_softmax(m.linear(x, w), dim=-1)),
        ("cross_entropy", lambda m, x, w, img, cw, lab: m.cross_entropy(m.linear(x, w), lab)),
        ("cross_entropy_smoothing", lambda m, x, w, img, cw, lab: m.cross_entropy(m.linear(x, w), lab, label_smoothing=0.1)),
        ("nll_loss", lambda m, x, w, img, cw, lab: m.nll_loss(m.log_softmax(m.linear(x, w), dim=1), lab)),
        ("mse_loss", lambda m, x, w, img, cw, lab: m.mse_loss(m.linear(x, w), m.linear(x, w).detach())),
        ("l1_loss", lambda m, x, w, img, cw, lab: m.l1_loss(m.linear(x, w), m.linear(x, w).detach())),
        ("smooth_l1_loss", lambda m, x, w, img, cw, lab: m.smooth_l1_loss(m.linear(x, w), m.linear(x, w).detach())),
        ("bce_with_logits", lambda m, x, w, img, cw, lab: m.binary_cross_entropy_with_logits(
            m.linear(x, w), m.sigmoid(m.linear(x, w)).detach())),
        ("bce", lambda m, x, w, img, cw, lab: m.binary_cross_entropy(
            m.sigmoid(m.linear(x, w)), m.sigmoid(m.linear(x, w)).detach())),
        ("sum", lambda m, x, w, img, cw, lab: m.linear(x, w).sum()),
        ("mean", lambda m, x, w, img, cw, lab: m.linear(x, w).mean()),
        ("prod", lambda m, x, w, img, cw, lab: m.linear(x, w).prod()),
        ("exp", lambda m, x, w, img, cw, lab: m.linear(x, w).exp()),
        ("relu", lambda m, x, w, img, cw, lab: m.relu(m.linear(x, w))),
        ("gelu", lambda m, x, w, img, cw, lab: m.gelu(m.linear(x, w))),
        ("add_mixed", lambda m, x, w, img, cw, lab: m.linear(x, w) + x[:, :3]),
        ("max_pool2d", lambda m, x, w, img, cw, lab: m.max_pool2d(m.conv2d(img, cw), 2)),
        ("avg_pool2d", lambda m, x, w, img, cw, lab: m.avg_pool2d(m.conv2d(img, cw), 2)),
        ("float64_linear", lambda m, x, w, img, cw, lab: m.linear(x.double(), w.double())),
    ]


@pytest.mark.parametrize("low", LOW, ids=["float16", "bfloat16"])
def test_autocast_output_dtypes_equal_torch_cpu_autocast(low):
    torch = pytest.importorskip("torch")
    TF = torch.nn.functional
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in [(4, 8), (3, 8), (2, 3, 8, 8), (4, 3, 3, 3)]]
    lab = np.array([0, 1, 2, 1])
    torch_low = {to.float16: torch.float16, to.bfloat16: torch.bfloat16}[low]
    for name, fn in _dtype_cases(torch, TF):
        with autocast("cpu", dtype=low):
            got = fn(F, *[to.tensor(a) for a in arrays], to.tensor(lab))
        with torch.autocast("cpu", dtype=torch_low):
            ref = fn(TF, *[torch.tensor(a) for a in arrays], torch.tensor(lab))
        assert str(got.dtype) == str(ref.dtype).removeprefix("torch."), name
    with autocast("cpu", dtype=low):
        assert to.cat([to.ones(2).to(low), to.ones(2)]).dtype == to.float32            # promote
        assert to.cat([to.ones(2).to(low), to.ones(2).to(low)]).dtype == low


def test_autocast_regions_nest_disable_and_decorate():
    m = nn.Linear(4, 2)
    x = to.randn(3, 4)
    assert not to.amp.is_autocast_enabled("cpu")
    with autocast("cpu", dtype=to.float16):
        assert to.amp.is_autocast_enabled() and to.amp.get_autocast_dtype("cpu") == to.float16
        assert m(x).dtype == to.float16
        with autocast("cpu", enabled=False):
            assert m(x).dtype == to.float32 and not to.amp.is_autocast_enabled()
            with autocast("cpu", dtype=to.bfloat16):
                assert m(x).dtype == to.bfloat16
            assert m(x).dtype == to.float32
        assert m(x).dtype == to.float16
    assert m(x).dtype == to.float32 and autocast_mode.state.cache is None and autocast_mode.active == 0
    try:
        with autocast("cpu", dtype=to.float16):
            raise KeyError("inside")
    except KeyError:
        pass
    assert autocast_mode.active == 0 and autocast_mode.state.dtype is None   # an exception leaves it off

    @autocast("cpu", dtype=to.bfloat16)
    def forward(inp):
        return m(inp)

    assert forward(x).dtype == to.bfloat16 and m(x).dtype == to.float32
    assert autocast("cpu").fast_dtype == to.bfloat16          # torch's CPU default
    with autocast("cpu", dtype=to.float16, op_lists="cuda"):  # CUDA's lists keep softmax in float32
        assert F.softmax(m(x), dim=1).dtype == to.float32 and m(x).sum().dtype == to.float32
    with pytest.raises(RuntimeError, match="float16 and to.bfloat16"):
        autocast("cpu", dtype=to.float32)
    with pytest.raises(RuntimeError, match="CPU only"):
        autocast("cuda", dtype=to.float16)
    with pytest.raises(ValueError, match="op_lists"):
        autocast("cpu", op_lists="tpu")


def test_autocast_gradients_reach_float32_parameters():
    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x = to.randn(5, 4)
    with autocast("cpu", dtype=to.float16):
        loss = F.cross_entropy(m(x), to.tensor([0, 1, 2, 0, 1]))
    loss.backward()
    for p in m.parameters():
        assert p.dtype == to.float32 and p.grad.dtype == to.float32 and np.any(p.grad.data != 0)


def test_cast_cache_rounds_a_parameter_once_and_sees_updates():
    m = nn.Linear(4, 2)
    x = to.randn(3, 4)
    with autocast("cpu", dtype=to.float16):
        m(x)
        (entry,) = [v for v in autocast_mode.state.cache.values() if v[0] is m.weight]
        first = entry[3]
        m(x)
        assert [v for v in autocast_mode.state.cache.values() if v[0] is m.weight][0][3] is first
        with to.no_grad():
            m.weight.mul_(2.0)                        # an in-place change bumps the version: recast
        y = m(x)
    np.testing.assert_allclose(y.data.astype(np.float32),
                               (x.data.astype(np.float16).astype(np.float32) @ m.weight.data.astype(np.float16).astype(np.float32).T
                                + m.bias.data.astype(np.float16).astype(np.float32)), rtol=2e-3, atol=2e-3)


# ----------------------------------------------------------------------------- values against references


def _round16(a, low):
    return np.asarray(a, np.float32).astype(low).astype(np.float32)


@pytest.mark.parametrize("low", LOW, ids=["float16", "bfloat16"])
def test_linear_under_autocast_equals_rounded_reference_and_torch(low):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in [(16, 32), (8, 32), (8,)])
    g = rng.standard_normal((16, 8)).astype(np.float32)
    tx, tw, tb = (to.tensor(a, requires_grad=True) for a in (x, w, b))
    with autocast("cpu", dtype=low):
        y = F.linear(tx, tw, tb)
    (y.float() * to.tensor(g)).sum().backward()
    # by hand: round the inputs, multiply in float32, round once
    ref = (_round16(x, low) @ _round16(w, low).T + _round16(b, low)).astype(low)
    np.testing.assert_array_equal(y.data, ref)
    g16 = _round16(g, low)
    np.testing.assert_array_equal(tw.grad.data, (g16.T @ _round16(x, low)).astype(low).astype(np.float32))
    np.testing.assert_array_equal(tx.grad.data, (g16 @ _round16(w, low)).astype(low).astype(np.float32))
    # torch's CPU autocast: equal within the format's rounding (the order of float32 additions differs)
    px, pw, pb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    with torch.autocast("cpu", dtype={to.float16: torch.float16, to.bfloat16: torch.bfloat16}[low]):
        py = torch.nn.functional.linear(px, pw, pb)
    (py.float() * torch.tensor(g)).sum().backward()
    eps = float(ml_dtypes.finfo(low).eps)
    np.testing.assert_allclose(y.data.astype(np.float32), py.detach().float().numpy(), rtol=eps, atol=eps * 4)
    np.testing.assert_allclose(tw.grad.data, pw.grad.numpy(), rtol=eps, atol=eps * 16)
    np.testing.assert_allclose(tx.grad.data, px.grad.numpy(), rtol=eps, atol=eps * 16)
    np.testing.assert_allclose(tb.grad.data, pb.grad.numpy(), rtol=eps, atol=eps * 16)


@pytest.mark.parametrize("low", LOW, ids=["float16", "bfloat16"])
def test_conv2d_under_autocast_equals_rounded_reference_and_torch(low):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in [(2, 3, 9, 9), (4, 3, 3, 3), (4,)])
    tx, tw, tb = (to.tensor(a, requires_grad=True) for a in (x, w, b))
    with autocast("cpu", dtype=low):
        y = F.conv2d(tx, tw, tb, padding=1)
    g = rng.standard_normal(y.shape).astype(np.float32)
    (y.float() * to.tensor(g)).sum().backward()
    # by hand: the float64 conv of the rounded inputs, rounded once; float32 accumulation may land
    # on the other side of a rounding boundary, so at most one unit in the last place apart
    ref = torch.nn.functional.conv2d(*(torch.tensor(_round16(a, low), dtype=torch.float64) for a in (x, w, b)),
                                     padding=1).numpy()
    diff = np.abs(y.data.astype(np.float64) - ref.astype(low).astype(np.float64))
    assert np.all(diff <= formats.spacing(ref, low)) and np.mean(diff == 0) > 0.95
    px, pw, pb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    with torch.autocast("cpu", dtype={to.float16: torch.float16, to.bfloat16: torch.bfloat16}[low]):
        py = torch.nn.functional.conv2d(px, pw, pb, padding=1)
    (py.float() * torch.tensor(g)).sum().backward()
    eps = float(ml_dtypes.finfo(low).eps)
    np.testing.assert_allclose(y.data.astype(np.float32), py.detach().float().numpy(), rtol=eps, atol=eps * 4)
    for mine, theirs in ((tx, px), (tw, pw), (tb, pb)):
        scale = np.abs(theirs.grad.numpy()).max()
        np.testing.assert_allclose(mine.grad.data, theirs.grad.numpy(), rtol=2 * eps, atol=2 * eps * scale)


# ----------------------------------------------------------------------------- GradScaler against torch


def _coefficients(rng, steps, n):
    """Per-step d(loss)/d(param): mostly finite, with inf, NaN and float32 overflow (1e35 · S) injected."""
    out = []
    for t in range(steps):
        c = rng.standard_normal(n)
        if t in (0, 1, 9):
            c[t % n] = np.inf
        if t == 5:
            c[2] = np.nan
        if t == 13:
            c[0] = 3e38          # finite, but overflows once multiplied by the scale
        out.append(c.astype(np.float32))
    return out


def _run_pair(steps=30, clip=None, state_at=None, growth_interval=3):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    p0 = rng.standard_normal(4).astype(np.float32)
    coeffs = _coefficients(rng, steps, 4)
    mine = to.tensor(p0.copy(), requires_grad=True)
    theirs = torch.tensor(p0.copy(), requires_grad=True)
    opt_m = optim.SGD([mine], lr=0.1, momentum=0.9)
    opt_t = torch.optim.SGD([theirs], lr=0.1, momentum=0.9)
    kw = dict(init_scale=2.0 ** 10, growth_factor=2.0, backoff_factor=0.5, growth_interval=growth_interval)
    sc_m, sc_t = GradScaler("cpu", **kw), torch.amp.GradScaler("cpu", **kw)
    log = []
    for t, c in enumerate(coeffs):
        opt_m.zero_grad()
        opt_t.zero_grad()
        sc_m.scale((mine * to.tensor(c)).sum()).backward()
        sc_t.scale((theirs * torch.tensor(c)).sum()).backward()
        if clip is not None:
            sc_m.unscale_(opt_m)
            sc_t.unscale_(opt_t)
            with np.errstate(invalid="ignore"):
                nn.utils.clip_grad_norm_([mine], clip)
            torch.nn.utils.clip_grad_norm_([theirs], clip)
            np.testing.assert_allclose(mine.grad.data, theirs.grad.numpy(), rtol=1e-6)
        sc_m.step(opt_m)
        sc_t.step(opt_t)
        sc_m.update()
        sc_t.update()
        log.append((sc_m.get_scale(), sc_t.get_scale(), mine.data.copy(), theirs.detach().numpy().copy()))
        if state_at == t:   # continue with fresh scalers loaded from the state dicts
            sd_m, sd_t = sc_m.state_dict(), sc_t.state_dict()
            assert sd_m == sd_t
            sc_m, sc_t = GradScaler("cpu"), torch.amp.GradScaler("cpu")
            sc_m.load_state_dict(sd_m)
            sc_t.load_state_dict(sd_t)
    return log, sc_m


@pytest.mark.parametrize("clip, state_at", [(None, None), (1.0, None), (None, 11)])
def test_grad_scaler_matches_torch(clip, state_at):
    log, scaler = _run_pair(clip=clip, state_at=state_at)
    for t, (s_m, s_t, p_m, p_t) in enumerate(log):
        assert s_m == s_t, f"step {t}: scale {s_m} vs torch {s_t}"
        np.testing.assert_allclose(p_m, p_t, rtol=1e-6, atol=1e-6, err_msg=f"step {t}")
    scales = [s for s, *_ in log]
    assert min(scales) < 2 ** 10 < max(scales)               # backed off and grew
    skipped = [h["step"] for h in scaler.history if h["skipped"]]
    if state_at is None:
        torch_backoffs = [t for t in range(len(log)) if log[t][1] < (log[t - 1][1] if t else 2.0 ** 10)]
        assert skipped == torch_backoffs and skipped[:4] == [0, 1, 5, 9] and len(skipped) >= 5
        assert scaler.history[0]["first_nonfinite"] == "group 0 param 0"


def test_grad_scaler_growth_stops_at_float32_overflow():
    torch = pytest.importorskip("torch")
    ours, theirs = GradScaler("cpu", init_scale=2.0 ** 126, growth_interval=1), \
        torch.amp.GradScaler("cpu", init_scale=2.0 ** 126, growth_interval=1)
    pm, pt = to.tensor([1.0], requires_grad=True), torch.tensor([1.0], requires_grad=True)
    om, ot = optim.SGD([pm], lr=0.0), torch.optim.SGD([pt], lr=0.0)
    for _ in range(3):
        ours.scale(pm.sum() * 1e-38).backward()
        theirs.scale(pt.sum() * 1e-38).backward()
        ours.step(om), theirs.step(ot)
        ours.update(), theirs.update()
        assert ours.get_scale() == theirs.get_scale() and ours._get_growth_tracker() == theirs._get_growth_tracker()
    ours.update(new_scale=8.0)
    assert ours.get_scale() == 8.0


def test_grad_scaler_errors_and_disabled():
    torch = pytest.importorskip("torch")
    p = to.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    scaler = GradScaler("cpu")
    assert scaler.get_scale() == 2.0 ** 16 and scaler.is_enabled()
    with pytest.raises(AssertionError, match="_scale is None"):
        scaler.update()
    scaler.scale(p.sum()).backward()
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="already been called"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match="after step"):
        scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        scaler.step(opt)
    with pytest.raises(RuntimeError, match="Closure"):
        scaler.step(opt, closure=lambda: 0)
    scaler.update()
    h = to.tensor(np.array([1.0], np.float16), requires_grad=True)
    h_opt = optim.SGD([h], lr=0.1)
    scaler.scale(h.sum()).backward()
    with pytest.raises(ValueError, match="FP16 gradients"):
        scaler.unscale_(h_opt)
    with pytest.raises(ValueError, match="growth factor"):
        GradScaler("cpu", growth_factor=1.0)
    with pytest.raises(ValueError, match="backoff factor"):
        GradScaler("cpu", backoff_factor=1.0)
    with pytest.raises(RuntimeError, match="empty"):
        GradScaler("cpu").load_state_dict({})
    fresh = GradScaler("cpu")
    with pytest.raises(KeyError):
        fresh.load_state_dict({"scale": 4.0})
    assert fresh.get_scale() == 2.0 ** 16                 # a bad dict changed nothing
    off = GradScaler("cpu", enabled=False)
    loss = p.sum()
    assert off.scale(loss) is loss and off.get_scale() == 1.0 and off.state_dict() == {} == \
        torch.amp.GradScaler("cpu", enabled=False).state_dict()
    assert GradScaler("cpu").state_dict().keys() == torch.amp.GradScaler("cpu").state_dict().keys()
    assert GradScaler("cpu").scale(to.tensor(2.0).half()).dtype == to.float32   # 0-d: promoted, no fp16 overflow
    assert GradScaler("cpu").scale([to.ones(2).half()])[0].dtype == to.float16


# ----------------------------------------------------------------------------- training


def test_float16_autocast_training_converges_like_float32():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((256, 10)).astype(np.float32)
    y = (x[:, :3].sum(1) > 0).astype(np.int64) + (x[:, 3] > 1).astype(np.int64)

    def train(amp):
        to.manual_seed(0)
        model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
        opt = optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
        scaler = GradScaler("cpu", enabled=amp, growth_interval=20)
        for _ in range(60):
            opt.zero_grad()
            with autocast("cpu", dtype=to.float16, enabled=amp):
                loss = F.cross_entropy(model(to.tensor(x)), to.tensor(y))
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        with to.no_grad():
            return float(F.cross_entropy(model(to.tensor(x)), to.tensor(y)).item()), model

    loss32, _ = train(False)
    loss16, model = train(True)
    assert loss32 < 0.3 and abs(loss16 - loss32) < 0.05
    assert all(p.dtype == to.float32 for p in model.parameters())


# ----------------------------------------------------------------------------- master weights


def _fp16_regression(use_master, steps=500):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((128, 4)).astype(np.float32)
    y = x @ np.full((4, 1), 1.05, np.float32)          # the weights must move from 1.0 to 1.05
    model = nn.Linear(4, 1, bias=False).half()
    with to.no_grad():
        model.weight.fill_(1.0)
    opt = optim.SGD(model.parameters(), lr=4e-3)        # lr·g ≈ 4e-4 < ½ ulp(1) = 2⁻¹¹ in float16
    if use_master:
        opt = to.amp.master_weights(opt)
    scaler = GradScaler("cpu", init_scale=2.0 ** 8, enabled=use_master)   # (it refuses float16 gradients)
    for _ in range(steps):
        opt.zero_grad()
        loss = F.mse_loss(model(to.tensor(x).half()).float(), to.tensor(y))
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    return model.weight.data.astype(np.float32)


def test_master_weights_keep_small_updates_that_float16_rounds_away():
    assert np.all(_fp16_regression(False) == 1.0)                         # every update vanished
    w = _fp16_regression(True)
    assert np.all(np.abs(w - 1.05) < 0.005)
    with pytest.raises(ValueError, match="no float16/bfloat16"):
        to.amp.master_weights(optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1))
