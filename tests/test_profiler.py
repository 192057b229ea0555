"""tinyopt.profile(): the call counts per op type, forward and backward (never the timings)."""
from __future__ import annotations

import numpy as np
import pytest

import tinyopt as to
import tinyopt.nn as nn
import tinyopt.nn.functional as F
from tinyopt.autograd import function as function_module
from tinyopt.autograd import graph as graph_module
from tinyopt.kernels import blas


def counts(prof):
    return {s.name: (s.forward_calls, s.backward_calls) for s in prof.key_averages()}


def test_counts_of_a_small_graph(rng):
    x = to.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    w = to.tensor(rng.standard_normal((5, 3)), requires_grad=True)
    with to.profile() as prof:
        y = F.linear(x, w).relu()
        z = (y * y).sum()
        z.backward()
    c = counts(prof)
    assert c["Linear"] == (1, 1)
    assert c["ReLU"] == (1, 1)
    assert c["Mul"] == (1, 1)
    assert c["Sum"] == (1, 1)
    linear = next(s for s in prof.key_averages() if s.name == "Linear")
    assert linear.blas_calls == 3          # forward x Wᵀ, backward dx and dW
    assert prof.summary()["blas_calls"] == 3


def test_no_grad_forward_counts_and_no_backward(rng):
    x = to.tensor(rng.standard_normal((2, 3)))
    with to.profile() as prof, to.no_grad():
        (x.exp() + 1).relu()
    assert counts(prof) == {"Exp": (1, 0), "Add": (1, 0), "ReLU": (1, 0)}


def test_in_place_ops_are_counted(rng):
    x = to.tensor(rng.standard_normal(3))
    with to.profile() as prof:
        x.add_(1.0)
        x.mul_(2.0)
    c = counts(prof)
    assert c["Add"] == (1, 0) and c["Mul"] == (1, 0)


def test_lenet_step_counts_and_summary():
    from tinyopt.models import LeNet5

    model = LeNet5(rng=0)
    opt = to.optim.SGD(model.parameters(), lr=0.01)
    data = np.random.default_rng(0)
    x, y = data.random((8, 1, 28, 28), dtype=np.float32), data.integers(0, 10, 8)
    steps = 3
    with to.profile() as prof:
        for _ in range(steps):
            opt.zero_grad()
            F.cross_entropy(model(to.tensor(x)), y).backward()
            with to.record_function("optimizer.step"):
                opt.step()
    c = counts(prof)
    assert c["Conv2dFunction"] == (2 * steps, 2 * steps)
    assert c["MaxPool2dFunction"] == (2 * steps, 2 * steps)
    assert c["Linear"] == (3 * steps, 3 * steps)
    assert c["CrossEntropy"] == (steps, steps)
    assert c["optimizer.step"] == (steps, 0)
    s = prof.summary()
    # Per step: 3 GEMMs per Linear (y, dx, dW: its inputs are activations that require grad);
    # conv2 likewise (y, dW, dcols) on the default thread setting, none with the kernels' parallel
    # twins on (it takes the direct loops then, kernels.conv.conv_path); conv1 none (the direct
    # loops either way, and the images do not require grad).
    from tinyopt.kernels.backend import kernel_threads

    conv_gemms = 3 if kernel_threads() == 1 else 0
    assert s["blas_calls"] == steps * (3 * 3 + conv_gemms)
    assert s["wall_s"] >= s["covered_s"] >= 0 and s["wall_s"] >= s["blas_s"]
    assert abs(s["overhead_s"] - (s["wall_s"] - s["covered_s"])) < 1e-9
    table = prof.table()
    assert "Conv2dFunction" in table and "Python overhead outside kernels" in table
    assert "optimizer.step" in table


def test_nested_regions_cover_once(rng):
    x = to.tensor(rng.standard_normal((3, 3)), requires_grad=True)
    with to.profile() as prof:
        with to.record_function("model"):
            y = (x @ x).sum()
        y.backward()
    c = counts(prof)
    assert c["model"] == (1, 0) and c["MatMul"] == (1, 1) and c["Sum"] == (1, 1)
    model = next(s for s in prof.key_averages() if s.name == "model")
    matmul = next(s for s in prof.key_averages() if s.name == "MatMul")
    # The region's own row holds its wall time; the MatMul inside it has its own row too.
    assert model.forward_s >= next(s for s in prof.key_averages() if s.name == "MatMul").forward_s
    assert matmul.blas_calls == 3


def test_hooks_are_removed_after_the_block_and_on_error(rng):
    with to.profile():
        assert function_module._PROFILER is not None and graph_module._PROFILER is not None
        assert blas._observer is not None
    assert function_module._PROFILER is None and graph_module._PROFILER is None and blas._observer is None
    with pytest.raises(ZeroDivisionError):
        with to.profile():
            1 / 0
    assert function_module._PROFILER is None


def test_profilers_do_not_nest():
    with to.profile():
        with pytest.raises(RuntimeError, match="already active"):
            with to.profile():
                pass


def test_record_function_without_profiler_is_a_no_op():
    with to.record_function("nothing") as s:
        assert s is None


def test_key_averages_sort_keys(rng):
    with to.profile() as prof:
        to.tensor(rng.standard_normal(3)).exp()
    assert [s.name for s in prof.key_averages("name")] == ["Exp"]
    with pytest.raises(ValueError, match="sort_by"):
        prof.key_averages("speed")


def test_results_unchanged_by_profiling(rng):
    model = nn.Sequential(nn.Linear(4, 3, rng=0), nn.ReLU(), nn.Linear(3, 2, rng=1))
    x = to.tensor(rng.standard_normal((5, 4)))
    out = model(x).sum()
    out.backward()
    plain = [p.grad.data.copy() for p in model.parameters()]
    model.zero_grad()
    with to.profile():
        out2 = model(x).sum()
        out2.backward()
    np.testing.assert_array_equal(out.data, out2.data)
    for g, p in zip(plain, model.parameters()):
        np.testing.assert_array_equal(g, p.grad.data)


def test_bench_cli_prints_the_table(capsys):
    from tinyopt.cli import main

    assert main(["bench", "--model", "mlp", "--steps", "2", "--batch-size", "16", "--no-torch"]) == 0
    out = capsys.readouterr().out
    assert "Linear" in out and "Python overhead outside kernels" in out


def test_bench_cli_passes_blas_threads_to_set_num_threads(capsys, monkeypatch):
    import tinyopt as to
    from tinyopt.cli import main

    calls = []
    monkeypatch.setattr(to, "set_num_threads", lambda n, blas_threads=None: calls.append((n, blas_threads)))
    assert main(["bench", "--model", "mlp", "--steps", "1", "--batch-size", "8", "--no-torch",
                 "--threads", "2", "--blas-threads", "1"]) == 0
    assert calls == [(2, 1)]
    assert "(BLAS's pool 1, kernels' twins 2)" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["--blas-threads", "1"], ["--threads", "2", "--blas-threads", "3"]])
def test_bench_cli_rejects_blas_threads_without_a_valid_threads(capsys, args):
    from tinyopt.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["bench", "--model", "mlp", "--no-torch"] + args)
    assert exc.value.code == 2
    assert "--blas-threads" in capsys.readouterr().err
