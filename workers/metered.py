"""The ring tasks' base class that counts and times every request a worker runs
(:class:`~workers.worker_metrics.WorkerMetrics`): ring and extra come from the call's
arguments, never from the caller, so no series depends on who called."""

from __future__ import annotations

import time
from typing import Any

from celery import Task
from celery.exceptions import Reject


class MeteredTask(Task):  # type: ignore[misc]
    """Counts requests, errors by kind, requeues, codes issued, and times ``get_code``,
    in a worker whose runtime has metrics (elsewhere it only runs the task)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        runtime: Any = getattr(self.app, "runtime", None)
        metrics = getattr(runtime, "metrics", None)
        params = getattr(self, "call_params", (("ring", None),))
        call = dict(zip((name for name, _ in params), args, strict=False))
        call.update(kwargs)
        ring = call.get("ring")
        if metrics is None or not isinstance(ring, str) or ring not in runtime.seats:
            return super().__call__(*args, **kwargs)  # rings it has no seat for: not counted
        task = self.name.rpartition(".")[2]
        started = time.perf_counter()
        try:
            result = super().__call__(*args, **kwargs)
        except Reject:
            metrics.requeued(ring)
            raise
        except Exception as error:
            metrics.failed(task, ring, error)
            raise
        metrics.finished(task, ring, call.get("extra", ""), result, time.perf_counter() - started)
        return result
