"""Web applications calling coder_ring: Flask under gunicorn, FastAPI under uvicorn."""
