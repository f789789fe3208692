"""Red team 8: a ring request given a routing option that points away from the ring's
queue (``routing_key=`` another name, with or without ``exchange=""``).

``RingTask.apply_async`` sets ``queue`` to the ring's queue, but an explicit ``exchange`` and
``routing_key`` with the caller's own ``declare=[]`` publish through an exchange nothing
is bound to: kombu drops the request (UndeliverableWarning, no error).
The call returns an AsyncResult as if sent; nobody ever serves it and the caller waits
its whole timeout. The README promises bad input gets "a clear error naming the bad
value; nothing changes", and that no caller hangs.
Severity: lost request (caller waits its full timeout), low-medium: needs a caller to
pass a routing option, which apply_async accepts without complaint.

Fixed: such a request is refused (InvalidInput naming the options), nothing sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coder_ring.errors import InvalidInput
from tests.harness import caller_app, members, wait_until, worker_env, write_rings

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

TIMEOUT = 15.0


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "options",
    [
        # Ruled out (served): routing_key="elsewhere" (with or without exchange=""),
        # queue="other", exchange_type="fanout", exchange="other-exchange", all routing
        # options None with declare=None, priority and extra headers.
        {"exchange": "x", "routing_key": "y", "declare": []},
    ],
)
def test_request_with_foreign_routing_key_is_served_or_refused(
    tmp_path: Path, pg_url: str, redis_url: str, group: Any, options: dict[str, Any]
) -> None:
    rings_file = write_rings(tmp_path / "rings.toml", rt8={"base_length": 2, "pool_size": 4})
    env = worker_env(redis_url=redis_url, database_url=pg_url, rings_file=rings_file)
    with caller_app(env) as app:
        group.worker("a", env)
        wait_until(lambda: bool(members(env)), TIMEOUT, 0.01)
        # The ring is served: a plain request gets its code.
        assert app.ring_tasks.get_code.delay("rt8").get(timeout=TIMEOUT)
        try:
            result = app.ring_tasks.get_code.apply_async(("rt8",), **options)
        except InvalidInput as error:  # a clear refusal naming the bad value
            assert "declare=[]" in str(error), error
            return
        code = result.get(timeout=TIMEOUT)
        assert isinstance(code, str)
