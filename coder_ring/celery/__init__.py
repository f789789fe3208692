"""The serving layer on Celery: the app, the ring tasks, the worker, beat, the CLI."""
