"""L-BFGS with an optional strong-Wolfe line search, torch.optim.LBFGS's algorithm (itself minFunc's)."""
from __future__ import annotations

import math

import numpy as np

from tinyopt.optim import validation
from tinyopt.optim.optimizer import Optimizer, checked_grad

LINE_SEARCH_FNS = (None, "strong_wolfe")


def _loss_value(loss) -> float:
    return float(np.asarray(getattr(loss, "data", loss)))


# ------------------------------------------------------------------------------ line search
def cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None) -> float:
    """The minimiser of the cubic through (x1, f1) and (x2, f2) with slopes g1, g2, clamped to
    `bounds` (default: the interval); the interval's midpoint when the cubic has no minimum.

        d₁ = g₁ + g₂ − 3 (f₁ − f₂)/(x₁ − x₂),  d₂ = √(d₁² − g₁ g₂),
        x* = x₂ − (x₂ − x₁) (g₂ + d₂ − d₁)/(g₂ − g₁ + 2 d₂)        (for x₁ ≤ x₂)
    """
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square >= 0:
        d2 = math.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def strong_wolfe(obj_func, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """Find a step t along d satisfying the strong Wolfe conditions

        f(x + t d) ≤ f(x) + c₁ t gᵀd        (sufficient decrease, Armijo)
        |∇f(x + t d)ᵀ d| ≤ −c₂ gᵀd           (curvature)

    by bracketing (grow t until the conditions hold or an interval must contain such a t) and
    zooming (cubic interpolation inside the bracket). `obj_func(x, t, d)` returns (f, ∇f) at
    x + t d. Returns (f_new, g_new, t, evaluations). torch's `_strong_wolfe`, line for line."""
    d_norm = float(np.max(np.abs(d)))
    g = g.copy()
    f_new, g_new = obj_func(x, t, d)
    ls_func_evals = 1
    gtd_new = g_new.dot(d)

    # bracket an interval containing a point satisfying the Wolfe criteria
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new.copy()], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new.copy()], [gtd_prev, gtd_new]
            break
        # extrapolate: a cubic step within [t + 0.01 (t − t_prev), 10 t]
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new.copy(), gtd_new
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1

    if ls_iter == max_ls:  # reached the maximum number of iterations
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]

    # zoom: refine the bracket until a point satisfies the criteria
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:  # the bracket is too small
            break
        t = cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1])
        # Sufficient progress? A t too close to an end of the bracket is moved 0.1·(width) inside.
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                t = max(bracket) - eps if abs(t - max(bracket)) < abs(t - min(bracket)) else min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            # Armijo condition not satisfied or not lower than the lowest point: new high end
            bracket[high_pos], bracket_f[high_pos] = t, f_new
            bracket_g[high_pos], bracket_gtd[high_pos] = g_new.copy(), gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:  # Wolfe conditions satisfied
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:  # the old high end becomes the low end
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos], bracket_gtd[high_pos] = bracket_g[low_pos], bracket_gtd[low_pos]
            bracket[low_pos], bracket_f[low_pos] = t, f_new  # the new point becomes the low end
            bracket_g[low_pos], bracket_gtd[low_pos] = g_new.copy(), gtd_new

    t = bracket[low_pos]
    return bracket_f[low_pos], bracket_g[low_pos], t, ls_func_evals


# ------------------------------------------------------------------------------ the optimizer
class LBFGS(Optimizer):
    r"""L-BFGS: quasi-Newton steps from the last `history_size` curvature pairs, optionally with
    a strong-Wolfe line search; one `step(closure)` runs up to `max_iter` iterations.

    Algorithm (torch.optim.LBFGS's; the defaults are torch's). θ is the concatenation of all
    parameters, g_k = ∇f(θ_k) from the closure::

        input:  γ (lr, 1), K (max_iter, 20), E (max_eval, K·5/4), τ_g (tolerance_grad, 1e-7),
                τ_f (tolerance_change, 1e-9), m (history_size, 100), line_search_fn
        for k = 1, ..., K (while evaluations < E):
            if k = 1 (the first iteration ever):  d_k ← −g_k;  H_k ← 1
            else:
                s ← t_{k−1} d_{k−1},  y ← g_k − g_{k−1}
                if yᵀs > 1e-10:  keep (s, y, ρ = 1/yᵀs) (drop the oldest beyond m);  H_k ← yᵀs / yᵀy
                d_k ← −H̃ g_k  by the two-loop recursion:
                    q ← −g_k;  for i = newest … oldest:  a_i ← ρ_i s_iᵀ q;  q ← q − a_i y_i
                    r ← H_k q;  for i = oldest … newest:  b_i ← ρ_i y_iᵀ r;  r ← r + (a_i − b_i) s_i
                    d_k ← r
            t_k ← min(1, 1/‖g_k‖₁) γ at the very first iteration, γ afterwards
            if g_kᵀ d_k > −τ_f:  stop                 (not a descent direction any more)
            if line_search_fn == "strong_wolfe":  t_k ← strong_wolfe(f, θ_k, t_k, d_k)  (see there)
            θ_{k+1} ← θ_k + t_k d_k
            stop if ‖g_{k+1}‖_∞ ≤ τ_g, ‖t_k d_k‖_∞ ≤ τ_f, |f_{k+1} − f_k| < τ_f, or k = K
        return f(θ₀) (the loss the closure returned first)

    Without a line search the fixed step t_k = γ is taken and the closure is re-evaluated after
    every iteration but the last. One param group only (torch's restriction); parameters of one
    float dtype. The state (for resuming) lives under the first parameter, with torch's keys:
    'func_evals', 'n_iter', 'd', 't', 'old_dirs' (the y's), 'old_stps' (the s's), 'ro', 'H_diag',
    'prev_flat_grad', 'prev_loss', 'al'.

    Agreement with torch: to ~1e-12 on the problems of `tinyopt verify` (a quadratic and
    Rosenbrock's function, with and without the line search) and of tests/test_optim_family.py.
    torch's `add_(x, alpha=a)` is a fused multiply-add (one rounding; NumPy rounds a·x and the
    sum separately), and where the iteration amplifies rounding (Rosenbrock's valley with a short
    history, history_size ≤ 3, without line search; an ill-conditioned 24-dimensional quadratic
    at lr = 0.3) those last-bit differences grow to 1e-9 ... 1e-3 over a few hundred iterations.

    Code names (also the trace's, one record per iteration k): g (g_k), d (d_k), update
    (t_k d_k), theta_prev, theta; scalars step_length (t_k), H_diag, loss (f_k).
    No Numba kernel: the work is dot products and axpy updates on the flat vectors (BLAS) and
    closure evaluations.

    References: Nocedal, "Updating Quasi-Newton Matrices with Limited Storage", Math. Comp. 1980;
    Nocedal & Wright, "Numerical Optimization", 2nd ed., algorithms 7.4 (two-loop recursion) and
    3.5/3.6 (strong-Wolfe line search); M. Schmidt's minFunc.
    """

    trace_symbols = [
        ("theta_prev", "θ_k", "parameters before the iteration"),
        ("g", "g_k", "gradient at θ_k"),
        ("d", "d_k", "search direction −H̃ g_k"),
        ("update", "Δθ_k", "t_k d_k"),
        ("theta", "θ_{k+1}", "parameters after the iteration"),
    ]

    def __init__(self, params, lr: float = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9, history_size: int = 100,
                 line_search_fn: str | None = None):
        if max_eval is None and isinstance(max_iter, int) and not isinstance(max_iter, bool):
            max_eval = max_iter * 5 // 4
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                        tolerance_change=tolerance_change, history_size=history_size, line_search_fn=line_search_fn)
        super().__init__(params, defaults)
        self._params = self.param_groups[0]["params"]
        dtypes = {p.dtype for p in self._params}
        if len(dtypes) > 1:
            raise ValueError(f"LBFGS needs parameters of one dtype (they are concatenated), got {sorted(map(str, dtypes))}")

    @classmethod
    def _check_hyperparameters(cls, h):
        validation.check_lr(h["lr"])
        validation.check_int("max_iter", h["max_iter"], low=1)
        validation.check_int("max_eval", h["max_eval"], low=1)
        validation.check_nonnegative("tolerance_grad", h["tolerance_grad"])
        validation.check_nonnegative("tolerance_change", h["tolerance_change"])
        validation.check_int("history_size", h["history_size"], low=1)
        validation.check_choice("line_search_fn", h["line_search_fn"], LINE_SEARCH_FNS)

    def add_param_group(self, param_group: dict) -> None:
        if self.param_groups:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        super().add_param_group(param_group)

    def _state_shape(self, p, key):
        if key in ("d", "prev_flat_grad"):
            return (self._numel(),)
        return None

    # ------------------------------------------------------------------ flat views of the parameters
    def _numel(self) -> int:
        return sum(p.numel() for p in self._params)

    def _gather_flat_grad(self) -> np.ndarray:
        views = []
        for i, p in enumerate(self._params):
            g = np.zeros(p.numel(), dtype=p.data.dtype) if p.grad is None else checked_grad(p, i).reshape(-1)
            views.append(g)
        return np.concatenate(views)

    def _add_grad(self, step_size, update) -> None:
        offset = 0
        for p in self._params:
            n = p.numel()
            p.data += step_size * update[offset:offset + n].reshape(p.shape)
            offset += n

    def _clone_param(self) -> list:
        return [p.data.copy() for p in self._params]

    def _set_param(self, params_data) -> None:
        for p, data in zip(self._params, params_data):
            p.data[...] = data

    def _directional_evaluate(self, closure, x, t, d):
        self._add_grad(t, d)
        try:
            loss = _loss_value(self._evaluate_closure(closure))
            flat_grad = self._gather_flat_grad()
        finally:
            self._set_param(x)  # the trial point never stays, even when the closure fails
        return loss, flat_grad

    def _record_iteration(self, theta_prev, flat_grad, d, t, scalars) -> None:
        offset = 0
        for p, before in zip(self._params, theta_prev):
            n = p.numel()
            sl = slice(offset, offset + n)
            self._record(p, self.param_groups[0],
                         dict(theta_prev=before, g=flat_grad[sl], d=d[sl], update=t * d[sl], theta=p.data), scalars)
            offset += n

    # ------------------------------------------------------------------ the step
    def step(self, closure):  # closure is required, as in torch
        """Up to `max_iter` L-BFGS iterations; `closure()` re-evaluates the loss and its gradient
        (zero the gradients, forward, backward, return the loss). Returns the first loss."""
        if closure is None:
            raise ValueError("LBFGS.step needs a closure that re-evaluates the loss and its gradients")
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        line_search_fn, history_size = group["line_search_fn"], group["history_size"]

        orig_loss = self._evaluate_closure(closure)
        loss = _loss_value(orig_loss)
        flat_grad = self._gather_flat_grad()  # checks every gradient before the state changes

        # Global state, registered under the first parameter (as torch does).
        state = self.state.setdefault(self._params[0], {})
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        current_evals = 1
        state["func_evals"] += 1
        if np.max(np.abs(flat_grad)) <= tolerance_grad:  # already optimal
            return orig_loss

        d, t = state.get("d"), state.get("t")
        old_dirs, old_stps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
        H_diag, prev_flat_grad, prev_loss = state.get("H_diag"), state.get("prev_flat_grad"), state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1

            # the direction
            if state["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = y.dot(s)
                if ys > 1e-10:  # keep the pair only where the curvature is positive
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / y.dot(y)
                num_old = len(old_dirs)
                if "al" not in state:
                    state["al"] = [None] * history_size
                al = state["al"]
                q = -flat_grad
                for i in range(num_old - 1, -1, -1):
                    al[i] = old_stps[i].dot(q) * ro[i]
                    q -= al[i] * old_dirs[i]
                d = r = q * H_diag
                for i in range(num_old):
                    be_i = old_dirs[i].dot(r) * ro[i]
                    r += (al[i] - be_i) * old_stps[i]

            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.copy()
            else:
                prev_flat_grad[...] = flat_grad
            prev_loss = loss
            grad_at_start = flat_grad

            # the step length
            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / np.abs(flat_grad).sum()) * lr
            else:
                t = lr
            gtd = flat_grad.dot(d)
            if gtd > -tolerance_change:  # not a descent direction (any more)
                break

            theta_prev = self._clone_param() if self.tracing else None
            ls_func_evals = 0
            if line_search_fn is not None:
                x_init = self._clone_param()

                def obj_func(x, t, d):
                    return self._directional_evaluate(closure, x, t, d)

                loss, flat_grad, t, ls_func_evals = strong_wolfe(obj_func, x_init, t, d, loss, flat_grad, gtd,
                                                                 max_ls=max_eval - current_evals)
                self._add_grad(t, d)
                opt_cond = np.max(np.abs(flat_grad)) <= tolerance_grad
            else:
                self._add_grad(t, d)
                opt_cond = False
                if n_iter != max_iter:
                    # re-evaluate only if not in the last iteration (in a stochastic setting the
                    # next step() evaluates it anyway)
                    loss = _loss_value(self._evaluate_closure(closure))
                    flat_grad = self._gather_flat_grad()
                    opt_cond = np.max(np.abs(flat_grad)) <= tolerance_grad
                    ls_func_evals = 1
            if self.tracing:
                self._record_iteration(theta_prev, grad_at_start, d, t,
                                       dict(t=state["n_iter"], lr=lr, step_length=float(t), H_diag=float(H_diag),
                                            loss=prev_loss))

            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals

            # stopping conditions
            if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                break
            if np.max(np.abs(d * t)) <= tolerance_change:  # lack of progress
                break
            if abs(loss - prev_loss) < tolerance_change:
                break

        state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=H_diag,
                     prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        return orig_loss
