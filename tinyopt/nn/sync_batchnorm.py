"""`SyncBatchNorm`: BatchNorm whose training statistics cover the batch of every rank (torch.nn.SyncBatchNorm).

Under data parallelism each rank sees B/N samples; plain BatchNorm would normalise with B/N-sample
statistics, so N ranks would not train like one process on the batch of B. SyncBatchNorm all-reduces
the per-channel sums (formulas in `tinyopt.distributed.functional.sync_batch_norm`), which makes the
forward, the backward and the running statistics those of BatchNorm on the whole batch.

Outside training, or when no process group is initialised (one process), it is plain BatchNorm (torch
falls back the same way). `SyncBatchNorm.convert_sync_batchnorm(model)` swaps every BatchNorm1d/2d of
a model for one, keeping parameters and running statistics.
"""
from __future__ import annotations

import numpy as np

from tinyopt.nn import functional as F
from tinyopt.nn.batchnorm import _BatchNorm
from tinyopt.nn.module import ShapeError
from tinyopt.tensor import Tensor


class SyncBatchNorm(_BatchNorm):
    """Batch normalization over (N, C, *) input with statistics over all ranks (torch.nn.SyncBatchNorm)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, process_group=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype=dtype)
        if process_group is not None:
            raise NotImplementedError("process subgroups are not supported; SyncBatchNorm uses the default group")
        self.process_group = process_group

    def forward(self, x: Tensor) -> Tensor:
        from tinyopt import distributed as dist

        if x.ndim < 2 or x.shape[1] != self.num_features:
            raise ShapeError(f"{self!r} expects input of shape (N, {self.num_features}, *), got input of shape "
                             f"{tuple(x.shape)}")
        use_batch_stats = self.training or not self.track_running_stats
        if not (use_batch_stats and dist.is_initialized() and dist.get_world_size() > 1):
            return self._plain_forward(x)
        factor = 0.0 if self.momentum is None else self.momentum
        update = self.training and self.track_running_stats
        if update:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        from tinyopt.distributed.functional import sync_batch_norm

        return sync_batch_norm(x, self.running_mean if update else None, self.running_var if update else None,
                               self.weight, self.bias, factor, self.eps)

    def _plain_forward(self, x: Tensor) -> Tensor:
        # _BatchNorm.forward, without its check of the number of dimensions (SyncBatchNorm takes any ≥ 2).
        use_batch_stats = self.training or not self.track_running_stats
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        update = self.training and self.track_running_stats
        return F.batch_norm(x, self.running_mean if update or not use_batch_stats else None,
                            self.running_var if update or not use_batch_stats else None,
                            self.weight, self.bias, use_batch_stats, factor, self.eps)

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """Return `module` with every BatchNorm1d/2d (recursively) replaced by a SyncBatchNorm that shares its
        weight, bias, running statistics and training flag (torch's classmethod); `module` itself is
        replaced when it is a BatchNorm."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            dtype = module.running_mean.dtype if module.running_mean is not None else (
                module.weight.data.dtype if module.affine else None)
            new = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats,
                      process_group, dtype=dtype)
            if module.affine:
                new.weight, new.bias = module.weight, module.bias  # shared, as torch: an optimizer keeps working
            if module.track_running_stats:
                new.running_mean, new.running_var = module.running_mean, module.running_var
                new.num_batches_tracked = module.num_batches_tracked
            new.train(module.training)
            return new
        for name, child in list(module.named_children()):
            if child is not None:
                converted = cls.convert_sync_batchnorm(child, process_group)
                if converted is not child:
                    setattr(module, name, converted)
        return module


convert_sync_batchnorm = SyncBatchNorm.convert_sync_batchnorm
