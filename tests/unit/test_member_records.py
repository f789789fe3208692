"""Member records in Redis are read by processes of other releases: callers (a web app)
and workers are deployed apart, so a record written by a newer or an older worker must
read back (a TypeError there failed every call of a caller during a worker upgrade)."""

from __future__ import annotations

import json

from coder_ring.registry.membership import MemberInfo


def record(**extra: object) -> str:
    data = {
        "id": "w|1|ab",
        "node": "w@host",
        "pid": 1,
        "started": 0.0,
        "rings": ["widget"],
        "healthy": True,
        "database": "sqlite:///x.db",
    }
    return json.dumps({**data, **extra})


def test_a_newer_workers_record_reads_back_without_its_new_fields() -> None:
    info = MemberInfo.from_json(record(holding=["widget"], a_field_of_1_0=[1, 2]), age=0.5)
    assert info.rings == ("widget",) and info.holding == ("widget",) and info.age == 0.5


def test_an_older_workers_record_reads_back_with_the_defaults() -> None:
    info = MemberInfo.from_json(record(), age=None)
    assert info.holding == () and info.redis_seconds is None


def test_a_record_round_trips() -> None:
    info = MemberInfo("w|1|ab", "w@host", 1, 0.0, ("a",), False, "db", ("a",), 0.25)
    assert MemberInfo.from_json(info.to_json(), age=None) == info
