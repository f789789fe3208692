# One image for every coder_ring service (migrate, worker, beat, flower).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY coder_ring ./coder_ring
# Not installed (the wheel holds only coder_ring): the module `celery -A workers.app`
# loads from this working directory (flower in docker-compose.yml).
COPY workers ./workers
COPY config ./config
RUN pip install --no-cache-dir .
ENV CODER_RING_CONFIG=/app/config/rings.toml
# A non-root user: workers need no privileges.
RUN useradd --create-home coder_ring
USER coder_ring
CMD ["coder-ring", "--help"]
