"""Shared test settings: small thread count and deterministic seeds for every test."""

import os
import random

import numpy as np
import pytest
import torch

# The suite runs on every core through pytest-xdist (``-n auto`` in pyproject.toml): each worker takes
# its share of the cores (at most 2 threads: the tests' tiny nets gain nothing from more), so the
# workers never oversubscribe the CPU.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // _WORKERS)))

# Training resolves its precision from accelerate's configuration, then the device (bf16 on CPUs with
# native bf16); pin it to fp32 so results do not depend on the CI machine's CPU. tests/test_runtime.py
# checks the resolution itself with this variable removed.
os.environ["ACCELERATE_MIXED_PRECISION"] = "no"


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def one_thread():
    """Run a test's tiny nets on one thread: they gain nothing from two, and on a shared 2-core CPU
    OpenMP spinning makes two threads up to ~50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
