"""A highly available Redis under coder_ring (issue 20).

* :mod:`tests.harness.sentinels`: a primary, a replica and three sentinels of the test's
  own (``redis-server CONF --sentinel``);
* :mod:`tests.harness.acl_redis`: a Redis whose ``default`` user is off, and the ACL
  rules of one namespace (the README's);
* ``test_sentinel_failover.py``: the primary SIGKILLed under load, its registry writes
  lost; ``test_redis_acl.py``: workers and callers as a user limited to its namespace.

They start their own servers (any ``redis-server`` of 6.2 or later, PostgreSQL's
binaries), never the shared ones; they need no root.
"""
