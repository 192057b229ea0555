"""The exercises of each lesson and how `tinyopt check` grades them.

Each exercise is a function (or class) a lesson defines between `# BEGIN SOLUTION <name>` and
`# END SOLUTION`. Its check calls the student's version on fixed float64 inputs and compares it
with tinyopt's own implementation (which the test suite verifies against torch and central
differences), CS231n-style, by relative error. The first wrong value is reported with where it is
(step, element), and the hint names the formula term that differs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from tinyopt.course.autograder import Result

RTOL = 1e-9


@dataclass(frozen=True)
class Exercise:
    lesson: str
    name: str
    function: str               # the name the lesson defines
    what: str
    hint: str                   # shown when the check cannot tell which term is wrong
    check: Callable


def rel_error(x, y) -> float:
    """max |x − y| / max(1e-12, |x| + |y|), elementwise: CS231n's measure."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(np.max(np.abs(x - y) / np.maximum(1e-12, np.abs(x) + np.abs(y)))) if x.size else 0.0


def _first_difference(got, want, rtol: float):
    """(index, got value, wanted value) of the first element off by more than rtol, else None."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return ("shape", got.shape, want.shape)
    bad = ~np.isclose(got, want, rtol=rtol, atol=rtol * max(1.0, float(np.max(np.abs(want))) if want.size else 1.0))
    if not bad.any():
        return None
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    return (index, float(got[index]), float(want[index]))


def _compare(exercise, label, got, want, hint, rtol=RTOL):
    """A failing Result for the first wrong element of `got`, or None."""
    d = _first_difference(got, want, rtol)
    if d is None:
        return None
    if d[0] == "shape":
        return Result(exercise, False, f"{label}: shape {d[1]}, expected {d[2]}", hint)
    return Result(exercise, False, f"{label}[{', '.join(map(str, d[0]))}] = {d[1]:.10g}, expected {d[2]:.10g}", hint)


def _as_tuple(value, n, exercise):
    if not isinstance(value, tuple) or len(value) != n:
        raise TypeError(f"{exercise} should return a tuple of {n} arrays, got {type(value).__name__}")
    return value


def _grads(shape, steps, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for _ in range(steps)]


def _reference_optimizer_path(make, theta0, grads):
    """θ after each step of a tinyopt optimizer fed the gradients `grads`."""
    import tinyopt as to

    p = to.nn.Parameter(theta0.copy())
    opt = make([p])
    out = []
    for g in grads:
        p.grad = to.tensor(g.copy())
        opt.step()
        # copies: the optimizer updates its buffers in place
        state = {k: np.array(np.asarray(v), dtype=np.float64) for k, v in opt.state[p].items()
                 if isinstance(v, (np.ndarray, to.Tensor))}
        out.append((p.data.copy(), state))
    return out


# ----------------------------------------------------------------------------- lesson 01: optimizers

def check_adam_update(fn):
    from tinyopt import optim

    lr, betas, eps = 1e-2, (0.9, 0.999), 1e-8
    theta0 = np.array([1.0, -2.0, 0.5])
    grads = _grads(theta0.shape, 20)
    ref = _reference_optimizer_path(lambda ps: optim.Adam(ps, lr=lr, betas=betas, eps=eps), theta0, grads)
    theta, m, v = theta0.copy(), np.zeros(3), np.zeros(3)
    for t, (g, (want_theta, state)) in enumerate(zip(grads, ref), start=1):
        theta, m, v = _as_tuple(fn(theta, g, m, v, t, lr=lr, betas=betas, eps=eps), 3, "adam_update")
        for label, got, want, hint in (
                ("m", m, state["exp_avg"], "m_t ← β₁ m_{t−1} + (1 − β₁) g_t"),
                ("v", v, state["exp_avg_sq"], "v_t ← β₂ v_{t−1} + (1 − β₂) g_t² (the square of g, not of m)"),
                ("θ", theta, want_theta, "θ_t ← θ_{t−1} − γ m̂_t / (√v̂_t + ε) with m̂_t = m_t/(1 − β₁ᵗ), "
                                         "v̂_t = v_t/(1 − β₂ᵗ): ε outside the root, bias correction with t from 1")):
            bad = _compare("adam_update", f"step {t}: {label}", got, want, hint)
            if bad:
                bad.checks = t - 1
                return bad
    return Result("adam_update", True, f"20 steps equal optim.Adam (rel {RTOL:g})", checks=20)


def check_momentum_update(fn):
    from tinyopt import optim

    lr, mu = 0.05, 0.9
    theta0 = np.array([0.3, -1.0])
    grads = _grads(theta0.shape, 15, seed=1)
    ref = _reference_optimizer_path(lambda ps: optim.SGD(ps, lr=lr, momentum=mu), theta0, grads)
    theta, b = theta0.copy(), None
    for t, (g, (want_theta, state)) in enumerate(zip(grads, ref), start=1):
        theta, b = _as_tuple(fn(theta, g, b, lr=lr, momentum=mu), 2, "momentum_update")
        for label, got, want, hint in (
                ("b", b, state["momentum_buffer"], "b_1 = g_1 (no zero start), then b_t ← μ b_{t−1} + g_t "
                                                   "(torch's convention: γ is not inside the buffer)"),
                ("θ", theta, want_theta, "θ_t ← θ_{t−1} − γ b_t")):
            bad = _compare("momentum_update", f"step {t}: {label}", got, want, hint)
            if bad:
                return bad
    return Result("momentum_update", True, "15 steps equal optim.SGD(momentum=0.9)", checks=15)


# ----------------------------------------------------------------------------- lesson 02: schedules

def _scheduler_lrs(make, steps, lr=0.1):
    import tinyopt as to
    from tinyopt import optim

    opt = optim.SGD([to.nn.Parameter(np.zeros(1))], lr=lr)
    sched = make(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(lrs)


def check_cosine_lr(fn):
    from tinyopt.optim import lr_scheduler as L

    eta0, eta_min, T = 0.1, 0.001, 10
    want = _scheduler_lrs(lambda o: L.CosineAnnealingLR(o, T_max=T, eta_min=eta_min), 11, lr=eta0)
    got = np.array([fn(t, eta0=eta0, eta_min=eta_min, T_max=T) for t in range(11)])
    bad = _compare("cosine_lr", "η_t for t", got, want,
                   "η_t = η_min + (η₀ − η_min)(1 + cos(π t / T_max)) / 2, t counted from 0", rtol=1e-12)
    return bad or Result("cosine_lr", True, "t = 0..10 equal CosineAnnealingLR", checks=11)


def check_step_lr(fn):
    from tinyopt.optim import lr_scheduler as L

    eta0, gamma, size = 0.1, 0.5, 3
    want = _scheduler_lrs(lambda o: L.StepLR(o, step_size=size, gamma=gamma), 12, lr=eta0)
    got = np.array([fn(t, eta0=eta0, gamma=gamma, step_size=size) for t in range(12)])
    bad = _compare("step_lr", "η_t for t", got, want, "η_t = η₀ · γ^⌊t / step_size⌋ (integer division)", rtol=1e-12)
    return bad or Result("step_lr", True, "t = 0..11 equal StepLR", checks=12)


# ----------------------------------------------------------------------------- lesson 05: quantization

def check_affine_qparams(fn):
    from tinyopt.quant.affine import choose_qparams

    cases = [(-1.0, 3.0, -128, 127), (0.0, 6.0, 0, 255), (-0.5, 0.25, -128, 127), (-2.0, -1.0, 0, 255),
             (0.5, 2.0, -8, 7)]
    for lo, hi, qmin, qmax in cases:
        s, z = fn(lo, hi, qmin, qmax)
        want_s, want_z = choose_qparams(lo, hi, qmin, qmax)
        bad = (_compare("affine_qparams", f"S for [{lo}, {hi}] → [{qmin}, {qmax}]", s, want_s,
                        "S = (max(x_max, 0) − min(x_min, 0)) / (q_max − q_min): widen the range to contain 0",
                        rtol=1e-6)
               or _compare("affine_qparams", f"Z for [{lo}, {hi}] → [{qmin}, {qmax}]", z, want_z,
                           "Z = clamp(q_min − round(min(x_min, 0) / S), q_min, q_max), an integer", rtol=1e-12))
        if bad:
            return bad
    return Result("affine_qparams", True, f"{len(cases)} ranges equal quant.choose_qparams", checks=len(cases))


def check_fake_quantize(fn):
    x = np.random.default_rng(2).uniform(-3, 3, 50)
    for s, z, qmin, qmax in ((0.02, 3, -128, 127), (0.05, 128, 0, 255), (0.1, 0, -8, 7)):
        want = (np.clip(np.rint(x / s) + z, qmin, qmax) - z) * s
        bad = _compare("fake_quantize", f"x̂ (S={s}, Z={z}, [{qmin}, {qmax}])", fn(x, s, z, qmin, qmax), want,
                       "x̂ = S · (clamp(round(x / S) + Z, q_min, q_max) − Z); round half to even (np.rint)",
                       rtol=1e-6)
        if bad:
            return bad
    return Result("fake_quantize", True, "3 settings × 50 values equal the formula", checks=3)


# ----------------------------------------------------------------------------- lesson 11: own optimizer

def _check_optimizer_class(name, reference, **kw):
    def check(cls):
        from tinyopt.verify import check_optimizer

        report = check_optimizer(cls, reference=reference(), steps=30, **kw)
        if report.ok:
            return Result(name, True, "quadratic, Rosenbrock and an MLP equal tinyopt's for 30 steps", checks=3)
        term = report.term
        detail = (f"{report.problem}, step {report.step}, parameter {report.param_name} element {report.element}: "
                  f"got {report.got:.10g}, expected {report.expected:.10g}")
        if term is not None:
            return Result(name, False, detail, f"first differing term: {term.sentence()}")
        return Result(name, False, detail, "record your quantities with self._record(...) under the names "
                                           "of the reference's trace_symbols to see which term differs")
    return check


# ----------------------------------------------------------------------------- lesson 13: CNN

def _conv_case(seed=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)


def check_conv2d_forward(fn):
    import tinyopt as to
    import tinyopt.nn.functional as F

    x, w, b = _conv_case()
    for stride, padding in ((1, 0), (2, 1), (1, 2)):
        want = F.conv2d(to.tensor(x), to.tensor(w), to.tensor(b), stride=stride, padding=padding).data
        bad = _compare("conv2d_forward", f"y (stride {stride}, padding {padding})",
                       fn(x, w, b, stride=stride, padding=padding), want,
                       "y[n,o,i,j] = b[o] + Σ_c Σ_u Σ_v x_pad[n, c, i·s + u, j·s + v] · w[o, c, u, v]; "
                       "H_out = ⌊(H + 2p − k)/s⌋ + 1")
        if bad:
            return bad
    return Result("conv2d_forward", True, "3 stride/padding settings equal F.conv2d", checks=3)


def check_conv2d_backward(fn):
    import tinyopt as to
    import tinyopt.nn.functional as F

    x, w, b = _conv_case(4)
    for stride, padding in ((1, 0), (2, 1)):
        xt, wt, bt = (to.tensor(a, requires_grad=True) for a in (x, w, b))
        y = F.conv2d(xt, wt, bt, stride=stride, padding=padding)
        grad_out = np.random.default_rng(5).standard_normal(y.shape)
        (y * to.tensor(grad_out)).sum().backward()
        got = _as_tuple(fn(x, w, grad_out, stride=stride, padding=padding), 3, "conv2d_backward")
        for label, g, want, hint in (
                ("∂L/∂x", got[0], xt.grad.data, "∂L/∂x_pad[n,c,i·s+u,j·s+v] += δ[n,o,i,j] · w[o,c,u,v] (a full "
                                                 "correlation with the flipped kernel), then drop the padding"),
                ("∂L/∂w", got[1], wt.grad.data, "∂L/∂w[o,c,u,v] = Σ_n Σ_i Σ_j δ[n,o,i,j] · x_pad[n,c,i·s+u,j·s+v]"),
                ("∂L/∂b", got[2], bt.grad.data, "∂L/∂b[o] = Σ_n Σ_i Σ_j δ[n,o,i,j]")):
            bad = _compare("conv2d_backward", f"{label} (stride {stride}, padding {padding})", g, want, hint)
            if bad:
                return bad
    return Result("conv2d_backward", True, "∂x, ∂w, ∂b equal tinyopt's autograd for 2 settings", checks=6)


def check_max_pool2d(fn):
    import tinyopt as to
    import tinyopt.nn.functional as F

    x = np.random.default_rng(6).standard_normal((2, 3, 6, 8))
    for k, s in ((2, 2), (3, 1)):
        want = F.max_pool2d(to.tensor(x), k, stride=s).data
        bad = _compare("max_pool2d", f"y (kernel {k}, stride {s})", fn(x, k, s), want,
                       "y[n,c,i,j] = max over u,v < k of x[n,c,i·s+u,j·s+v]; H_out = ⌊(H − k)/s⌋ + 1")
        if bad:
            return bad
    return Result("max_pool2d", True, "2 settings equal F.max_pool2d", checks=2)


# ----------------------------------------------------------------------------- lesson 14: hardware

def check_linear_intensity(fn):
    for batch, n_in, n_out, nbytes in ((1, 784, 256, 4), (256, 784, 256, 4), (64, 1024, 1024, 1)):
        flops = 2 * batch * n_in * n_out
        moved = nbytes * (batch * n_in + n_in * n_out + batch * n_out)
        bad = _compare("linear_intensity", f"I(batch {batch}, {n_in}→{n_out}, {nbytes} B)",
                       fn(batch, n_in, n_out, nbytes), flops / moved,
                       "I = FLOPs / bytes = 2·B·n_in·n_out / (bytes per value · (B·n_in + n_in·n_out + B·n_out)): "
                       "read x and W once, write y once; a multiply-add is 2 FLOPs", rtol=1e-12)
        if bad:
            return bad
    return Result("linear_intensity", True, "3 layers' arithmetic intensity right", checks=3)


def check_roofline(fn):
    peak, bandwidth = 100e9, 20e9
    for intensity in (0.5, 2.0, 5.0, 50.0):
        bad = _compare("roofline", f"attainable FLOP/s at I = {intensity}", fn(intensity, peak, bandwidth),
                       min(peak, bandwidth * intensity),
                       "P(I) = min(P_peak, B · I): memory-bound left of the ridge I* = P_peak / B", rtol=1e-12)
        if bad:
            return bad
    return Result("roofline", True, "4 intensities on both sides of the ridge right", checks=4)


# ----------------------------------------------------------------------------- lesson 06: pruning

def check_agp_sparsity(fn):
    from tinyopt.prune import agp_sparsity

    for s_i, s_f, t0, n in ((0.0, 0.9, 0, 10), (0.2, 0.75, 5, 4)):
        for t in range(t0, t0 + n + 3):
            got = fn(t, s_i, s_f, t0, n)
            want = agp_sparsity(t, s_f, initial_sparsity=s_i, begin_step=t0, n_steps=n)
            bad = _compare("agp_sparsity", f"s_t at t={t} (s_i={s_i}, s_f={s_f}, t₀={t0}, n={n})", got, want,
                           "s_t = s_f + (s_i − s_f)(1 − (t − t₀)/n)³, and s_f after t₀ + n", rtol=1e-12)
            if bad:
                return bad
    return Result("agp_sparsity", True, "two schedules equal prune.agp_sparsity at every step", checks=2)


def check_magnitude_mask(fn):
    import tinyopt as to
    from tinyopt import nn
    from tinyopt.nn.utils import prune

    w = np.random.default_rng(7).permutation(np.linspace(-1, 1, 60)).reshape(6, 10)   # no ties
    for amount in (0.1, 0.5, 17):
        layer = nn.Linear(10, 6)
        layer.weight.data[...] = w
        prune.l1_unstructured(layer, "weight", amount=amount)
        want = np.asarray(layer.weight_mask.data if isinstance(layer.weight_mask, to.Tensor) else layer.weight_mask)
        bad = _compare("magnitude_mask", f"mask (amount={amount})", fn(w.copy(), amount), want,
                       "remove the round(amount·n) (or the int count) weights of *smallest* |w|: mask 0 there, 1 elsewhere",
                       rtol=1e-12)
        if bad:
            return bad
    return Result("magnitude_mask", True, "fractions and a count equal prune.l1_unstructured's masks", checks=3)


# ----------------------------------------------------------------------------- lesson 07: distillation

def check_kd_loss(fn):
    import tinyopt as to
    import tinyopt.nn.functional as F

    rng = np.random.default_rng(8)
    zs, zt = rng.standard_normal((5, 4)), 3 * rng.standard_normal((5, 4))
    y = rng.integers(0, 4, 5)
    for T, alpha in ((4.0, 0.9), (1.0, 0.5), (2.0, 1.0)):
        want = float(F.kd_loss(to.tensor(zs), to.tensor(zt), to.tensor(y), T=T, alpha=alpha))
        bad = _compare("kd_loss", f"loss (T={T}, α={alpha})", fn(zs, zt, y, T, alpha), want,
                       "α·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)) (batch mean) + (1 − α)·CE(z_s, y): "
                       "the T² keeps the soft gradients' scale", rtol=1e-9)
        if bad:
            return bad
    return Result("kd_loss", True, "3 (T, α) settings equal F.kd_loss", checks=3)


# ----------------------------------------------------------------------------- lesson 08: mixed precision

def check_scaler_update(fn):
    import tinyopt as to
    from tinyopt import amp, optim

    pattern = [False] * 5 + [True] + [False] * 7 + [True, True] + [False] * 4
    scaler = amp.GradScaler("cpu", init_scale=2.0**10, growth_factor=2.0, backoff_factor=0.5, growth_interval=3)
    probe = to.tensor(np.zeros(1, np.float32), requires_grad=True)
    opt = optim.SGD([probe], lr=0.0)
    scale, tracker = 2.0**10, 0
    with np.errstate(over="ignore", invalid="ignore"):
        for k, found_inf in enumerate(pattern, start=1):
            opt.zero_grad()   # the real scaler, through its public API: scale, backward, step, update
            scaler.scale((probe * (np.inf if found_inf else 1.0)).sum()).backward()
            scaler.step(opt)
            scaler.update()
            scale, tracker = _as_tuple(fn(scale, tracker, found_inf, 2.0, 0.5, 3), 2, "scaler_update")
            bad = _compare("scaler_update", f"scale after update {k} (inf: {found_inf})", scale, scaler.get_scale(),
                           "an inf/NaN: scale ← scale · backoff, tracker ← 0; else tracker += 1 and after "
                           "growth_interval clean steps in a row scale ← scale · growth, tracker ← 0", rtol=1e-12)
            if bad:
                return bad
    return Result("scaler_update", True, f"{len(pattern)} updates equal amp.GradScaler", checks=len(pattern))


# ----------------------------------------------------------------------------- lesson 09: RNN

def check_lstm_cell(fn):
    import tinyopt as to
    from tinyopt import nn

    rng = np.random.default_rng(9)
    cell = nn.LSTMCell(3, 4)
    for prm in cell.parameters():
        prm.data = rng.standard_normal(prm.data.shape)
    x, h, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    want_h, want_c = cell(to.tensor(x), (to.tensor(h), to.tensor(c)))
    got_h, got_c = _as_tuple(fn(x, h, c, cell.weight_ih.data, cell.weight_hh.data, cell.bias_ih.data,
                                cell.bias_hh.data), 2, "lstm_cell")
    hint = ("gates = W_ih x + b_ih + W_hh h + b_hh split in the order i, f, g, o; i, f, o = σ(·), g = tanh(·); "
            "c' = f ⊙ c + i ⊙ g; h' = o ⊙ tanh(c')")
    bad = (_compare("lstm_cell", "c'", got_c, want_c.data, hint) or _compare("lstm_cell", "h'", got_h, want_h.data, hint))
    return bad or Result("lstm_cell", True, "h' and c' equal nn.LSTMCell (torch's gate order)", checks=2)


# ----------------------------------------------------------------------------- lesson 10: parallel

def check_ring_all_reduce(fn):
    rng = np.random.default_rng(10)
    for world in (2, 3, 4):
        arrays = [rng.standard_normal(10) for _ in range(world)]
        result = fn([a.copy() for a in arrays])
        if not isinstance(result, tuple) or len(result) != 2:
            raise TypeError("ring_all_reduce_simulated should return (arrays, messages per rank)")
        out, messages = result
        total = np.sum(arrays, axis=0)
        for r, got in enumerate(out):
            bad = _compare("ring_all_reduce", f"rank {r} of {world}", got, total,
                           "reduce-scatter: N−1 steps, rank r sends chunk (r − s) mod N to r+1 which adds it; "
                           "all-gather: N−1 more steps passing the finished chunks on", rtol=1e-12)
            if bad:
                return bad
        if messages != 2 * (world - 1):
            return Result("ring_all_reduce", False, f"{messages} messages per rank for N = {world}, expected "
                          f"{2 * (world - 1)}", "2(N − 1) steps of 1/N of the data each")
    return Result("ring_all_reduce", True, "N = 2, 3, 4: every rank holds the sum after 2(N−1) steps", checks=3)


# ----------------------------------------------------------------------------- the second exercises

def _values(name, cases, reference, hint, rtol=1e-9):
    """A check that calls the student's function on each case (a tuple of arguments) and compares
    the result with `reference(*case)`."""
    def check(fn):
        for case in cases:
            bad = _compare(name, f"{name}{tuple(np.shape(a) if isinstance(a, np.ndarray) else a for a in case)}",
                           fn(*case), reference(*case), hint, rtol=rtol)
            if bad:
                return bad
        return Result(name, True, f"{len(cases)} cases equal the reference", checks=len(cases))
    return check


def _torch_softmax(z, T=1.0):
    import tinyopt as to
    import tinyopt.nn.functional as F
    return F.softmax(to.tensor(np.asarray(z, np.float64) / T), dim=1).data


def _cross_entropy(p, y):
    import tinyopt as to
    import tinyopt.nn.functional as F
    return float(F.nll_loss(to.tensor(np.log(p)), to.tensor(y)))


def _keras_l2(weights, lam):
    import tinyopt as to
    from tinyopt.keras.layers import L2
    return float(sum(float(L2(lam)(to.tensor(w))) for w in weights))


def _l2_grad(w, lam):
    import tinyopt as to
    from tinyopt.keras.layers import L2
    t = to.tensor(w, requires_grad=True)
    L2(lam)(t).backward()
    return t.grad.data


def _loader_steps(n, batch, drop_last=False):
    import tinyopt as to
    from tinyopt.utils.data import DataLoader, TensorDataset
    return len(DataLoader(TensorDataset(to.tensor(np.zeros((n, 1)))), batch_size=batch, drop_last=drop_last))


def _filter_normalized(direction, weights):
    from tinyopt.landscape import filter_normalize
    return [np.asarray(d) for d in filter_normalize(direction, weights)]


def check_filter_normalize(fn):
    rng = np.random.default_rng(15)
    weights = [rng.standard_normal((4, 3, 2, 2)), rng.standard_normal(4), rng.standard_normal((5, 4))]
    direction = [rng.standard_normal(w.shape) for w in weights]
    got, want = fn(direction, weights), _filter_normalized(direction, weights)
    for k, (g, w) in enumerate(zip(got, want)):
        bad = _compare("filter_normalize_direction", f"direction[{k}]", g, w,
                       "d_i ← d_i / ‖d_i‖ · ‖w_i‖ per filter (row of dim 0); 1-D parameters (biases) → 0", rtol=1e-7)
        if bad:
            return bad
    return Result("filter_normalize_direction", True, "conv, bias and linear parameters equal landscape.filter_normalize",
                  checks=3)


def check_power_iteration(fn):
    rng = np.random.default_rng(16)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    for eigenvalues in ([5.0, 1, 0.5, -0.2, 0.1, 2], [-4.0, 1, 2, 0.3, -0.5, 0.1]):
        a = q @ np.diag(eigenvalues) @ q.T
        want = max(eigenvalues, key=abs)
        bad = _compare("power_iteration", f"λ of largest |λ| (spectrum {eigenvalues})", fn(lambda v: a @ v, np.ones(6), 300),
                       want, "v ← A v / ‖A v‖; λ = vᵀ A v (the Rayleigh quotient keeps the sign)", rtol=1e-6)
        if bad:
            return bad
    return Result("power_iteration", True, "positive and negative dominant eigenvalues found", checks=2)


def check_rnn_cell(fn):
    import tinyopt as to
    from tinyopt import nn

    rng = np.random.default_rng(17)
    cell = nn.RNNCell(3, 4)
    for prm in cell.parameters():
        prm.data = rng.standard_normal(prm.data.shape)
    x, h = rng.standard_normal((2, 3)), rng.standard_normal((2, 4))
    want = cell(to.tensor(x), to.tensor(h)).data
    bad = _compare("rnn_cell", "h'", fn(x, h, cell.weight_ih.data, cell.weight_hh.data, cell.bias_ih.data,
                                         cell.bias_hh.data), want, "h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (x @ W_ih.T)")
    return bad or Result("rnn_cell", True, "h' equals nn.RNNCell", checks=1)


_Z = np.random.default_rng(18).standard_normal((4, 6)) * 5
_P = _torch_softmax(_Z)
_W = [np.random.default_rng(19).standard_normal((3, 4)), np.random.default_rng(20).standard_normal(4)]

# ----------------------------------------------------------------------------- the registry

def _optim(name):
    def get():
        from tinyopt import optim
        return getattr(optim, name)
    return get


EXERCISES = (
    Exercise("00_keras_seed_examples", "softmax", "softmax", "a numerically stable softmax", "subtract the row max",
             _values("softmax", [(_Z,), (_Z * 100,)], _torch_softmax, "p_i = exp(z_i − max z) / Σ_j exp(z_j − max z)")),
    Exercise("00_keras_seed_examples", "crossentropy_from_probs", "crossentropy_from_probs",
             "cross-entropy of probabilities", "−mean log p[n, y_n]",
             _values("crossentropy_from_probs", [(_P, np.arange(4))], _cross_entropy,
                     "L = −(1/N) Σ_n log p[n, y_n] (probabilities in: no second softmax)")),
    Exercise("01_optimizers", "adam_update", "adam_update", "one Adam step on arrays",
             "m_t, v_t, bias correction, ε outside the root", check_adam_update),
    Exercise("01_optimizers", "momentum_update", "momentum_update", "one SGD-with-momentum step (torch's form)",
             "b_1 = g_1; b_t ← μ b_{t−1} + g_t; θ ← θ − γ b", check_momentum_update),
    Exercise("02_schedules", "cosine_lr", "cosine_lr", "cosine annealing in closed form",
             "η_min + (η₀ − η_min)(1 + cos(π t / T_max)) / 2", check_cosine_lr),
    Exercise("02_schedules", "step_lr", "step_lr", "step decay in closed form", "η₀ γ^⌊t/step⌋", check_step_lr),
    Exercise("03_fitting_capacity_l2", "l2_penalty", "l2_penalty", "Keras' L2 penalty", "λ Σ w²",
             _values("l2_penalty", [(_W, 0.01), (_W, 0.5)], _keras_l2, "λ Σ w² over every weight (Keras: no ½)")),
    Exercise("03_fitting_capacity_l2", "l2_gradient", "l2_gradient", "its gradient", "2 λ w",
             _values("l2_gradient", [(_W[0], 0.01), (_W[0], 0.5)], _l2_grad, "∂(λ Σ w²)/∂w = 2 λ w")),
    Exercise("04_batch_size_and_lr", "steps_per_epoch", "steps_per_epoch", "steps in an epoch", "⌈N/B⌉ or ⌊N/B⌋",
             _values("steps_per_epoch", [(103, 10), (100, 10), (103, 10, True), (5, 10), (5, 10, True)],
                     _loader_steps, "⌈N / B⌉ steps, ⌊N / B⌋ with drop_last (len(DataLoader))", rtol=0)),
    Exercise("04_batch_size_and_lr", "linear_scaled_lr", "linear_scaled_lr", "the linear scaling rule", "η₀ B / B₀",
             _values("linear_scaled_lr", [(0.1, 256, 1024), (0.05, 64, 32)], lambda lr, b0, b: lr * b / b0,
                     "η = η₀ · B / B₀ (Goyal et al. 2017)", rtol=1e-12)),
    Exercise("05_quantization", "affine_qparams", "affine_qparams", "scale and zero point from a range",
             "s = range / (q_max − q_min), z integer", check_affine_qparams),
    Exercise("05_quantization", "fake_quantize", "fake_quantize", "quantize then dequantize",
             "(clamp(round(x/s) + z) − z) s", check_fake_quantize),
    Exercise("06_pruning", "agp_sparsity", "agp_sparsity", "the AGP schedule (Zhu & Gupta 2017)",
             "s_f + (s_i − s_f)(1 − (t − t₀)/n)³", check_agp_sparsity),
    Exercise("06_pruning", "magnitude_mask", "magnitude_mask", "the L1-unstructured mask",
             "zero the amount smallest |w|", check_magnitude_mask),
    Exercise("07_distillation_transfer", "kd_loss", "kd_loss", "the knowledge-distillation loss",
             "α T² KL(p_t^T ‖ p_s^T) + (1 − α) CE", check_kd_loss),
    Exercise("07_distillation_transfer", "softmax_T", "softmax_T", "softmax with temperature", "softmax(z / T)",
             _values("softmax_T", [(_Z, 1.0), (_Z, 4.0), (_Z, 20.0)], _torch_softmax,
                     "p_i = exp(z_i / T) / Σ_j exp(z_j / T), stable: subtract the max of z / T")),
    Exercise("08_mixed_precision", "fixed_point", "fixed_point", "the seeds' fixed point, done right",
             "round(x · 2^k) / 2^k",
             _values("fixed_point", [(_Z, 10), (_Z, 3)], lambda x, k: np.rint(x * 2.0**k) / 2.0**k,
                     "x̂ = round_half_even(x · 2^k) / 2^k", rtol=1e-15)),
    Exercise("08_mixed_precision", "scaler_update", "scaler_update", "GradScaler's scale update by hand",
             "backoff on inf, growth after growth_interval clean steps", check_scaler_update),
    Exercise("09_rnn", "rnn_cell", "rnn_cell", "one Elman RNN step", "tanh(W_ih x + b_ih + W_hh h + b_hh)",
             check_rnn_cell),
    Exercise("09_rnn", "lstm_cell", "lstm_cell", "one LSTM step (torch's gate order i, f, g, o)",
             "c' = f ⊙ c + i ⊙ g; h' = o ⊙ tanh(c')", check_lstm_cell),
    Exercise("10_parallel", "ring_all_reduce", "ring_all_reduce_simulated", "a ring all-reduce, simulated",
             "reduce-scatter then all-gather, 2(N−1) steps", check_ring_all_reduce),
    Exercise("10_parallel", "pipeline_bubble", "pipeline_bubble", "the GPipe bubble", "(K − 1)/(M + K − 1)",
             _values("pipeline_bubble", [(2, 1), (4, 8), (3, 5)], lambda k, m: (k - 1) / (m + k - 1),
                     "bubble = (K − 1) / (M + K − 1) for K stages and M micro-batches", rtol=1e-15)),
    Exercise("11_write_your_own_optimizer", "my_adam", "MyAdam", "Adam as an optimizer class",
             "see the Adam algorithm in the lesson", _check_optimizer_class("my_adam", _optim("Adam"), lr=1e-2)),
    Exercise("11_write_your_own_optimizer", "my_sgd", "MySGD", "SGD with momentum as an optimizer class",
             "see the SGD algorithm in the lesson",
             _check_optimizer_class("my_sgd", _optim("SGD"), lr=1e-2, momentum=0.9)),
    Exercise("12_loss_landscape", "filter_normalize_direction", "filter_normalize_direction",
             "Li et al.'s filter normalisation", "per-filter rescaling", check_filter_normalize),
    Exercise("12_loss_landscape", "power_iteration", "power_iteration", "power iteration", "Rayleigh quotient",
             check_power_iteration),
    Exercise("13_cnn", "conv2d_forward", "conv2d_forward", "a convolution from its formula",
             "sum over channels and the kernel window", check_conv2d_forward),
    Exercise("13_cnn", "conv2d_backward", "conv2d_backward", "its backward pass", "δ correlated back", check_conv2d_backward),
    Exercise("13_cnn", "max_pool2d", "max_pool2d", "max pooling", "max over each window", check_max_pool2d),
    Exercise("14_hardware", "linear_intensity", "linear_intensity", "a Linear layer's arithmetic intensity",
             "FLOPs / bytes moved", check_linear_intensity),
    Exercise("14_hardware", "roofline", "roofline", "the roofline model", "min(peak, bandwidth · I)", check_roofline),
)


def for_lesson(stem: str) -> list:
    return [e for e in EXERCISES if e.lesson == stem]
