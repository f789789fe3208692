"""Partitions, slow links and asymmetric delays between simulated hosts (issue 20).

* :mod:`tests.harness.netns`: the hosts (network namespaces and veths) and the faults
  (cuts with iptables inside a host, delay and loss through an NFQUEUE delayer);
* :mod:`tests.harness.netns_servers`: private Redis/PostgreSQL on the veths, and
  ``coder-ring worker`` inside a host;
* :mod:`tests.harness.netns_probe`: sockets inside a host, for the self-tests;
* :mod:`tests.partitions.traffic`: requests from the root namespace and their figures;
* :mod:`tests.partitions.scenario`: faults dealt one after another to a ring holder
  under load, and the figures every fault must meet;
* ``test_netns_harness.py``: the harness tests itself; ``test_partition.py``: a full
  partition of a ring holder under load; ``test_faults.py``: a database-only and a
  Redis-only cut; ``test_degraded_links.py``: a slow lossy link, late heartbeats, and a
  heal before the holder noticed its cut; ``test_long.py``: all of them again and again
  (the long mode, ``CODER_RING_PARTITIONS_LONG=1``).

They need root, ``ip netns`` and iptables: skipped locally without them, failed in CI.
"""
