"""Which worker processes are alive: each registers under its member id and heartbeats.

A member's record is a Redis hash (its description and the Redis server's time of
its last heartbeat) that expires unless heartbeated, so a member that stops (killed,
frozen, cut off) is gone after the TTL, by Redis's clock. A heartbeat that reaches Redis
after its sender gave up on it does nothing, and the record lives at most the TTL from
a heartbeat's send (:mod:`~coder_ring.registry.redis_clock`): else a worker whose requests
arrive late, serving nothing since its calls time out, looked alive (its rings assigned
to it) up to the delay longer. A graceful stop deletes the record first.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

import redis

from coder_ring.registry.keys import member_key, members_key
from coder_ring.registry.redis_clock import RedisClock, clocked

# Heartbeat: the record (ARGV[4]), stamped with the server's time, and its TTL; the
# member's id (ARGV[5]) in the set of members.
_HEARTBEAT = clocked("""
redis.call('HSET', KEYS[1], 'info', ARGV[4], 'beat', now)
redis.call('PEXPIRE', KEYS[1], lasting)
redis.call('SADD', KEYS[2], ARGV[5])
return {now}
""")
# Every live member's description and heartbeat age (ms); prunes ids whose record expired.
_LIVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local fields = redis.call('HMGET', ARGV[1] .. id, 'info', 'beat')
  if fields[1] then
    table.insert(out, fields[1])
    table.insert(out, tostring(now - tonumber(fields[2])))
  else
    redis.call('SREM', KEYS[1], id)
  end
end
return out
"""


@dataclass(frozen=True)
class MemberInfo:
    """What a worker process says of itself, and (when read back) its heartbeat age."""

    id: str
    node: str
    pid: int
    started: float
    #: Rings this member may serve (its rings file, limited by `worker RING...`).
    rings: tuple[str, ...]
    #: False while the member cannot reach its database: it is given no ring.
    healthy: bool
    #: Its database, password masked (status warns when members disagree).
    database: str
    #: Rings it holds now.
    holding: tuple[str, ...] = ()
    #: Seconds the Redis calls of its last lease round took while it was healthy (how
    #: well its link answers); None before its first such round.
    redis_seconds: float | None = None
    #: When that round began, in Redis's clock (seconds) as the member reckons it: never
    #: later than it did (so others never date its quick round late); None: not known.
    redis_began: float | None = None
    #: Seconds since its last heartbeat (server time); None before it is read back.
    age: float | None = field(default=None, compare=False)

    def to_json(self) -> str:
        """The record stored in Redis (without the age)."""
        data = asdict(self)
        data.pop("age")
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes, age: float | None) -> MemberInfo:
        """A record read back from Redis."""
        data = json.loads(text)
        data["rings"] = tuple(data["rings"])
        data["holding"] = tuple(data.get("holding", ()))
        # Fields a newer worker added are left out: callers and workers are deployed
        # apart, and a caller that cannot read a newer worker's record fails every call.
        known = {member_field.name for member_field in fields(cls)} - {"age"}
        return cls(**{key: value for key, value in data.items() if key in known}, age=age)


class Membership:
    """This process's membership: heartbeat it, leave on a graceful stop."""

    def __init__(
        self, client: redis.Redis, namespace: str, ttl: float, clock: RedisClock | None = None
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.ttl_ms = max(1, int(ttl * 1000))
        self.clock = clock or RedisClock(client)
        self._heartbeat = client.register_script(_HEARTBEAT)

    def heartbeat(self, info: MemberInfo) -> None:
        """Publish ``info`` and extend this member's life by the TTL from now
        (:class:`~coder_ring.registry.redis_clock.LateRequest` if it reached Redis late)."""
        self.clock.call(
            self._heartbeat,
            [member_key(self.namespace, info.id), members_key(self.namespace)],
            [info.to_json(), info.id],
            self.ttl_ms,
        )

    def leave(self, member_id: str) -> None:
        """Deregister now (a graceful stop): the others stop counting on this member."""
        pipe = self.client.pipeline()
        pipe.delete(member_key(self.namespace, member_id))
        pipe.srem(members_key(self.namespace), member_id)
        pipe.execute()


def live_members(client: redis.Redis, namespace: str) -> list[MemberInfo]:
    """Every member whose record has not expired, sorted by id, with heartbeat ages."""
    script = client.register_script(_LIVE)
    flat = script(keys=[members_key(namespace)], args=[member_key(namespace, "")])
    members = [
        MemberInfo.from_json(flat[index], int(flat[index + 1]) / 1000)
        for index in range(0, len(flat), 2)
    ]
    return sorted(members, key=lambda member: member.id)
