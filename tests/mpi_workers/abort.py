"""Run under mpiexec -n 2: rank 1 raises before a collective that rank 0 waits in. The exception hook
that init_process_group installs must abort every rank (the test runs this with a timeout)."""
import numpy as np

import tinyopt.distributed as dist

dist.init_process_group(backend="mpi")
if dist.get_rank() == 1:
    raise ValueError("rank 1 fails on purpose")
dist.all_reduce(np.ones(3))   # rank 0 would wait here forever without the abort
print("rank 0 was not stopped", flush=True)
