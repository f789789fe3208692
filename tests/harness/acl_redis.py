"""A private Redis that requires a user and password (ACL), and the rules a coder_ring
deployment's user needs (the README's "Redis ACL" gives the same, for ``default``).

The server's ``default`` user is off; the test inspects it as :data:`ADMIN`. Each other
user has a password of :data:`PASSWORD` and the rules it is given, nothing more.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.servers import PrivateRedis

ADMIN = "admin"
PASSWORD = "s3cret-pw"

#: The commands workers and callers send: the registry's and the doorbells' (scripts:
#: EVALSHA, SCRIPT LOAD/EXISTS when the script is not cached, as after a failover),
#: kombu's (the queues, their bindings and acknowledgements), Celery's results and pub/sub. Leaving
#: out any one of them fails ``tests/ha/test_redis_acl.py``.
COMMANDS = (
    "+ping +get +set +setex +del +mget +pexpire +time +llen +lpush +brpop +rpop +exists "
    "+hset +hdel +hgetall +hmget +sadd +srem +smembers +zadd +zrem +zrange +zrangebyscore "
    "+multi +exec +evalsha +script|load +script|exists "
    "+publish +subscribe +unsubscribe +psubscribe +punsubscribe"
)
#: Commands of paths that test does not take, from kombu's source: the restore of a
#: dead worker's unacknowledged request (a WATCH transaction, HGET, RPUSH); SELECT for a
#: database other than 0.
RARE_COMMANDS = "+watch +unwatch +discard +hget +rpush +select"


def namespace_rules(namespace: str, db: int = 0) -> str:
    """The ACL rules (after ``user NAME on >PASSWORD``) that let a user run the workers
    and callers of ``namespace`` on database ``db``, and touch no other namespace's
    registry, queues, remote control or events."""
    prefix = f"coder_ring.{namespace}"
    keys = [
        f"~coder_ring:{namespace}:*",  # the registry: locks, members, assignment
        f"~{prefix}",  # the queue of requests for no ring
        f"~{prefix}.*",  # each ring's queue
        f"~*.{prefix}.celery.pidbox",  # each worker's remote-control queue
        f"~_kombu.binding*.{prefix}",  # kombu's bindings of those queues
        f"~_kombu.binding*.{prefix}.*",
        "~_kombu.binding_deadlines",  # kombu's: when a binding table expires
        "~unacked*",  # kombu's: requests taken, not yet acknowledged
        "~celery-task-meta-*",  # Celery's: results
    ]
    channels = [
        f"&coder_ring:{namespace}:*",  # change notices between workers
        "&celery-task-meta-*",  # results, as they arrive
        f"&/{db}.{prefix}.*",  # kombu's broadcasts: remote control, events
        f"&/{db}.{prefix}.celery.pidbox",  # PSUBSCRIBE's pattern, matched literally
    ]
    commands = ["-@all", COMMANDS, RARE_COMMANDS]
    return " ".join(["resetkeys", "resetchannels", *keys, *channels, *commands])


class AclRedis(PrivateRedis):
    """A :class:`PrivateRedis` whose ``default`` user is off; ``users`` maps each user
    to its rules. :attr:`url` is the test's own (:data:`ADMIN`, every right)."""

    def __init__(self, users: Mapping[str, str]) -> None:
        super().__init__()
        lines = ["user default off", f"user {ADMIN} on >{PASSWORD} ~* &* +@all"]
        lines += [f"user {name} on >{PASSWORD} {rules}" for name, rules in users.items()]
        acl_file = Path(self.workdir) / "users.acl"
        acl_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.process.argv += ["--aclfile", str(acl_file)]

    @property
    def url(self) -> str:
        return self.url_of(ADMIN)

    def url_of(self, user: str) -> str:
        """``redis://USER:PASSWORD@127.0.0.1:PORT/0``."""
        return f"redis://{user}:{PASSWORD}@127.0.0.1:{self.port}/0"

    def denials(self) -> list[dict[str, Any]]:
        """What the server refused so far (``ACL LOG``): reason, command, key or channel."""
        client = self.client()
        try:
            entries: list[dict[str, Any]] = client.acl_log(count=100)
        finally:
            client.close()
        return entries
