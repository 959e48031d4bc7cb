"""The worker tests' fixtures that command tests need too: pushes and real workers."""

from tests.workers.conftest import push, workers

__all__ = ["push", "workers"]
