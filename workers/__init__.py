"""The worker deployment: the module ``celery -A workers.app`` loads. Not installed."""
