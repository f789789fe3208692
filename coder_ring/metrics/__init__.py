"""Ring metrics for Prometheus: the catalogue, a worker's view, the database-wide view."""
