"""`tinyopt train` (tinyopt.cli.main) on generated data, run alone or under `mpiexec -n N`.

tinyopt.train's data loader is replaced by a fixed synthetic problem (251 training samples, so the
last global batch is short and, on 2 ranks, split unequally), the same on every rank. With
TINYOPT_TEST_NAN=1 one training sample holds a NaN, so the loss is NaN on whichever rank gets it;
with TINYOPT_TEST_FULL_DISK=E writing the checkpoint of epoch E fails as on a full disk (only rank 0
writes, so only rank 0 sees it)."""
import os
import sys

import numpy as np

import tinyopt.train as train


def synthetic(config, data_path=None):
    g = np.random.default_rng(0)
    centers = g.normal(scale=2.0, size=(3, 12))

    def split(m):
        y = g.integers(0, 3, size=m)
        return (centers[y] + g.normal(size=(m, 12))).astype(np.float32), y.astype(np.int64)

    (x, y), val, test = split(251), split(40), split(40)
    if os.environ.get("TINYOPT_TEST_NAN") == "1":
        x[100, 3] = np.nan
    return (x, y), val, test


def full_disk_at(epoch):
    save = train.save

    def failing_save(state, path):
        if state["epoch"] == epoch:
            raise OSError(28, "No space left on device", str(path))
        return save(state, path)

    return failing_save


train.load_data = synthetic
if os.environ.get("TINYOPT_TEST_FULL_DISK"):
    train.save = full_disk_at(int(os.environ["TINYOPT_TEST_FULL_DISK"]))

from tinyopt import cli  # noqa: E402

sys.exit(cli.main(sys.argv[1:]))
