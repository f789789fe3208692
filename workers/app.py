"""The module ``celery -A workers.app worker|beat|flower`` loads (see workers/README.md)."""

from coder_ring.celery.app import app

__all__ = ["app"]
