# syntax=docker/dockerfile:1
# Chronos: the agent (`chronos serve`, the default) and the NAS emulator (`chronos nas-emulator`).
#   docker build -t chronos .
#   docker run --rm -p 8080:8080 -e CHRONOS_PORTAL_URL=... chronos
# Stage 1 builds the wheels of Chronos and of every dependency; stage 2 installs them and
# nothing else: no compiler, no pip cache, no sources in the final image.

FROM python:3.11-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# The package's metadata, its lock and its code only (see .dockerignore): tests and tooling
# stay out. Dependencies are built at the exact versions of requirements.lock.
COPY pyproject.toml README.md requirements.lock ./
COPY app ./app
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.lock \
    && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .


FROM python:3.11-slim

LABEL org.opencontainers.image.title="chronos" \
      org.opencontainers.image.description="Managed cron for agents that scale to zero, armed through NAS."

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CHRONOS_DATABASE_URL=sqlite+aiosqlite:////data/chronos.db

# Install from the build stage's wheels only (--no-index): the image gets exactly what was built.
# The bind mount keeps the wheels out of every layer (BuildKit, the default builder).
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/*.whl

# A non-root user owning the data folder (SQLite database by default).
RUN useradd --system --user-group --uid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin chronos \
    && mkdir -p /data \
    && chown chronos:chronos /data
VOLUME ["/data"]
WORKDIR /data
# The chronos user, by number: Kubernetes' runAsNonRoot can only verify a numeric user.
USER 10001:10001

EXPOSE 8080

# Liveness through /healthz, with the standard library only (no curl in a slim image).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/healthz' % os.environ.get('CHRONOS_PORT', '8080'); sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]

ENTRYPOINT ["chronos"]
CMD ["serve"]
