"""The registry of workers in Redis: leases, membership, the coordinator, placement."""
