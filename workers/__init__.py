"""The Celery service of coder_ring: one locked, single-concurrency worker per ring.

``celery -A workers.app worker|beat|flower`` use the app in :mod:`workers.app`.
"""
