"""Several Tune experiments in one process, one per dispatcher thread.

Tune keeps one process-wide registry of trainables in a plain dict that it fills and then
iterates to flush into Ray; two ``Tuner.fit()`` starting at once in two threads can change the
dict while the other iterates it. Worse, a trainable is
registered under its function's name, so two jobs' ``run_one`` would overwrite each other and
one job's trials could start with the other job's specs. ``registered_trainable`` gives every
experiment its own registry name, and ``install`` makes every registry write hold one lock.
"""
from __future__ import annotations

import functools
import re
import threading
from typing import Any

REGISTRY_LOCK = threading.RLock()
_installed = False


def _locked(method):
    @functools.wraps(method)
    def holding_the_lock(*args, **kwargs):
        with REGISTRY_LOCK:
            return method(*args, **kwargs)
    return holding_the_lock


def install() -> None:
    """Serialise Tune's registry writes (idempotent; called before each experiment starts)."""
    global _installed
    with REGISTRY_LOCK:
        if _installed:
            return
        from ray.tune import registry

        for name in ("register", "unregister", "unregister_all", "flush_values"):
            setattr(registry._global_registry, name, _locked(getattr(registry._global_registry, name)))
        _installed = True


def registered_trainable(trainable: Any, experiment: str) -> Any:
    """The trainable, registered under a name of its own experiment (Tune reads ``_name``)."""
    trainable._name = "srm_bench_" + re.sub(r"[^A-Za-z0-9_.-]", "_", experiment)
    return trainable
