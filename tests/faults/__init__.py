"""Fault injection: no code is issued twice while workers die, freeze and servers restart.

The suite, one module per part:

* :mod:`tests.faults.settings`: what a run is (rings, extras, workers, callers, timeouts);
* :mod:`tests.faults.cluster`: the private Redis and PostgreSQL, the worker processes and
  the caller processes;
* :mod:`tests.faults.caller`: one caller process (``python -m tests.faults.caller``);
* :mod:`tests.faults.probes`: requests sent by the test itself, to time each recovery;
* :mod:`tests.faults.injections`: the fault schedule and how each fault is dealt;
* :mod:`tests.faults.audit`: duplicates, lost codes against their bound, the figures;
* :mod:`tests.faults.test_faults`: the test.

Long mode, outside CI: ``make faults-long`` (``CODER_RING_FAULT_CODES=100000``).
"""
