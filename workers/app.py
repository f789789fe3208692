"""The module ``celery -A workers.app worker|beat|flower`` loads, in the repository and
in the container (see workers/README.md): the app configured from the environment."""

from coder_ring.celery.from_env import app

__all__ = ["app"]
