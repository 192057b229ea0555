"""Issue 9's acceptance test: a PyTorch user's idioms run with `import tinyopt as torch`.

Each idiom of `tests/torch_idioms.py` runs on tinyopt and on torch (when importable) and the results
are compared value by value and dtype by dtype. An idiom that tinyopt does not support must raise
(never return something else); at least 95% of the corpus must behave as in torch.
"""
from __future__ import annotations

import numbers
import types
import warnings

import numpy as np
import pytest

import tinyopt
import tinyopt.nn as tnn
import tinyopt.nn.functional as tF
import tinyopt.optim as toptim
import tinyopt.utils.data as tdata

from torch_idioms import IDIOMS, RANDOM

torch = pytest.importorskip("torch")


def arr(shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.5, 1.5, size=shape).astype(np.float32)


def namespace(lib) -> types.SimpleNamespace:
    if lib == "tinyopt":
        return types.SimpleNamespace(torch=tinyopt, nn=tnn, F=tF, optim=toptim, data=tdata, arr=arr)
    import torch.nn.functional as F
    import torch.utils.data as data

    return types.SimpleNamespace(torch=torch, nn=torch.nn, F=F, optim=torch.optim, data=data, arr=arr)


def _dtype_name(x) -> str:
    return str(x).removeprefix("torch.")


def compare(ours, theirs, random: bool, path: str = "result") -> None:
    """Raise AssertionError (naming the place) unless `ours` (tinyopt) matches `theirs` (torch)."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, tinyopt.Tensor), f"{path}: torch gives a Tensor, tinyopt a {type(ours).__name__}"
        assert tuple(ours.shape) == tuple(theirs.shape), f"{path}: shape {tuple(ours.shape)} vs {tuple(theirs.shape)}"
        assert _dtype_name(ours.dtype) == _dtype_name(theirs.dtype), f"{path}: dtype {ours.dtype} vs {theirs.dtype}"
        assert ours.requires_grad == theirs.requires_grad, f"{path}: requires_grad {ours.requires_grad} vs {theirs.requires_grad}"
        if not random:
            a = np.asarray(ours.data, dtype=np.float64)
            b = theirs.detach().to(torch.float64).numpy()
            tol = 1e-3 if theirs.dtype == torch.float16 else 2e-5
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=path, equal_nan=True)
        return
    if isinstance(theirs, torch.dtype):
        assert _dtype_name(np.dtype(ours)) == _dtype_name(theirs), f"{path}: dtype {ours} vs {theirs}"
        return
    if isinstance(theirs, np.ndarray):
        np.testing.assert_allclose(np.asarray(ours), theirs, rtol=2e-5, atol=2e-5, err_msg=path)
        return
    if isinstance(theirs, (tuple, list)):
        assert isinstance(ours, (tuple, list)), f"{path}: torch gives a {type(theirs).__name__}, tinyopt a {type(ours).__name__}"
        assert len(ours) == len(theirs), f"{path}: {len(ours)} items vs {len(theirs)}"
        if hasattr(theirs, "_fields"):  # a named tuple: torch.return_types.max etc.
            assert getattr(ours, "_fields", None) == theirs._fields, f"{path}: fields {getattr(ours, '_fields', None)} vs {theirs._fields}"
        for i, (a, b) in enumerate(zip(ours, theirs)):
            compare(a, b, random, f"{path}[{i}]")
        return
    if isinstance(theirs, bool) or theirs is None or isinstance(theirs, str):
        assert ours == theirs, f"{path}: {ours!r} vs {theirs!r}"
        return
    if isinstance(theirs, numbers.Number):
        assert isinstance(ours, numbers.Number), f"{path}: torch gives a number, tinyopt a {type(ours).__name__}"
        if not random:
            assert ours == pytest.approx(theirs, rel=2e-5, abs=2e-5), f"{path}: {ours} vs {theirs}"
        return
    raise TypeError(f"{path}: cannot compare {type(theirs).__name__}")


def run(name, lib):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return "ok", IDIOMS[name](namespace(lib))
        except Exception as e:  # noqa: BLE001 - the outcome is what is compared
            return "raised", e


def outcome(name) -> str:
    """'same', 'unsupported' (tinyopt raises where torch does not) or a description of a silent difference."""
    theirs_kind, theirs = run(name, "torch")
    ours_kind, ours = run(name, "tinyopt")
    if theirs_kind == "raised":
        return "same" if ours_kind == "raised" else f"torch raises {theirs!r}, tinyopt does not"
    if ours_kind == "raised":
        return "unsupported"
    try:
        compare(ours, theirs, name in RANDOM)
    except AssertionError as e:
        return f"different: {e}"
    return "same"


# Known differences still to fix (strict: the test fails once one is fixed, so the entry must go).
KNOWN_DIFFERENCES = {
}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(reason=KNOWN_DIFFERENCES[n], strict=True))
                                  if n in KNOWN_DIFFERENCES else n for n in sorted(IDIOMS)])
def test_no_idiom_differs_silently(name):
    """Every idiom either behaves as in torch or raises in tinyopt; none returns something else."""
    result = outcome(name)
    if result == "unsupported":
        kind, error = run(name, "tinyopt")
        assert not isinstance(error, (AssertionError, KeyError, IndexError, ZeroDivisionError)), \
            f"{name}: tinyopt fails with an unclear {type(error).__name__}: {error}"
        pytest.skip(f"not supported by tinyopt (raises {type(error).__name__}: {error})")
    assert result == "same", f"{name}: {result}"


def test_at_least_95_percent_of_the_corpus_behaves_as_in_torch():
    results = {name: outcome(name) for name in IDIOMS}
    same = sum(r == "same" for r in results.values())
    assert len(IDIOMS) >= 120
    share = same / len(IDIOMS)
    assert share >= 0.95, f"{same}/{len(IDIOMS)} = {share:.1%} behave as in torch; others: " + "; ".join(
        f"{k}: {v}" for k, v in results.items() if v != "same")


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_random_idioms_are_reproducible_in_tinyopt(name):
    tinyopt.manual_seed(123)
    first = run(name, "tinyopt")[1]
    tinyopt.manual_seed(123)
    second = run(name, "tinyopt")[1]
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))
