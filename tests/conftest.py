"""Shared helpers for the engine's tests.

Two independent references check every op:

* `check_grad` runs `tinyopt.gradcheck` (central differences, float64, random cotangent);
* `assert_matches_torch` runs the same function on tinyopt and on torch tensors built from the same
  float64 data (tinygrad's `test/test_ops.py` harness), then compares the forward values and
  the gradients of `sum(v * f(x))` for one random cotangent `v`. It skips when torch is absent.

Everything random comes from an explicit `np.random.Generator` (the `rng` fixture, or a seed).
"""
from __future__ import annotations

import os

# One BLAS thread per test process unless the caller chose otherwise. Must run before NumPy is
# imported. On 2 cores shared with other jobs, OpenBLAS's spinning worker threads made the
# Fashion-MNIST MLP test 10-15x slower (69 s instead of 5-7 s measured under load 8).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import tinyopt as to  # noqa: E402
from tinyopt.datasets import fashion_mnist  # noqa: E402

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"


def have_fashion_mnist() -> bool:
    """All four Fashion-MNIST files can be found (they are never downloaded by the tests)."""
    try:
        for name in fashion_mnist.FILES:
            fashion_mnist.find_file(name)
    except fashion_mnist.DatasetError:
        return False
    return True


needs_fashion_mnist = pytest.mark.skipif(not have_fashion_mnist(), reason="Fashion-MNIST files are not installed")


def run_tutorial(script: str, out_dir, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run tutorials/<script> as a script with small settings (TINYOPT_FAST=1), writing into
    `out_dir`; fail with the tail of its output unless it exits 0."""
    env = dict(os.environ, TINYOPT_FAST="1", MPLBACKEND="Agg", TINYOPT_OUTPUT_DIR=str(out_dir))
    result = subprocess.run([sys.executable, str(TUTORIALS / script)], cwd=out_dir, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def randn(shape, rng, low=None, high=None) -> np.ndarray:
    """float64 data: standard normal, or uniform on [low, high) when bounds are given."""
    if low is not None:
        return rng.uniform(low, high, size=shape)
    return rng.standard_normal(shape)


def leaf(array, requires_grad=True) -> to.Tensor:
    """A float64 leaf Tensor that keeps `array`'s memory layout (a strided or transposed view
    stays non-contiguous, unlike `to.tensor`, which copies to C order)."""
    t = to.tensor(np.zeros(0))
    t.data = np.asarray(array, dtype=np.float64)
    t.requires_grad = requires_grad
    return t


def check_grad(fn, *arrays, atol=1e-5, rtol=1e-3, seed=0):
    """gradcheck `fn` at float64 copies of `arrays` (ndarrays become leaves needing grad; other
    values are passed through unchanged)."""
    inputs = [leaf(a) if isinstance(a, np.ndarray) else a for a in arrays]
    assert to.gradcheck(fn, inputs, atol=atol, rtol=rtol, seed=seed)


def assert_matches_torch(arrays, to_fn, torch_fn=None, *, atol=1e-9, rtol=1e-7, grad_atol=None, grad_rtol=None,
                   grad=True, seed=0):
    """Compare `to_fn(*tinyopt_tensors)` with `torch_fn(*torch_tensors)` (the same lambda when
    `torch_fn` is None): forward values, then the gradients of `sum(v * out)` for a random v.

    `arrays` are float64 ndarrays; each becomes a leaf requiring grad in both libraries. Inputs
    that are not ndarrays are passed to both functions unchanged.
    """
    torch = pytest.importorskip("torch")
    torch_fn = to_fn if torch_fn is None else torch_fn
    grad_atol = atol if grad_atol is None else grad_atol
    grad_rtol = rtol if grad_rtol is None else grad_rtol

    to_inputs = [leaf(a.copy(), requires_grad=grad) if isinstance(a, np.ndarray) else a for a in arrays]
    torch_inputs = [
        torch.tensor(a, dtype=torch.float64, requires_grad=grad) if isinstance(a, np.ndarray) else a for a in arrays
    ]
    out = to_fn(*to_inputs)
    ref = torch_fn(*torch_inputs)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), atol=atol, rtol=rtol, err_msg="forward differs from torch")
    assert out.shape == tuple(ref.shape)
    if not grad:
        return out, ref

    v = np.random.default_rng(seed).standard_normal(out.shape)
    (out * to.tensor(v)).sum().backward()
    (ref * torch.tensor(v)).sum().backward()
    for i, (a, b) in enumerate(zip(to_inputs, torch_inputs)):
        if not isinstance(a, to.Tensor):
            continue
        expected = b.grad.numpy() if b.grad is not None else np.zeros(b.shape)
        got = a.grad if a.grad is not None else np.zeros(a.shape)
        assert got.shape == expected.shape, f"input {i}: grad shape {got.shape} vs torch {expected.shape}"
        np.testing.assert_allclose(got, expected, atol=grad_atol, rtol=grad_rtol, err_msg=f"grad of input {i} differs from torch")
    return out, ref
