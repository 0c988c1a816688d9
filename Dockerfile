# syntax=docker/dockerfile:1
#
# MenoTime Ops: `menotime-bot serve` in a small image, as a non-root user.
#
#   docker build -t menotime-ops .
#   docker run -p 3000:3000 -v menotime-data:/data \
#     -e SLACK_BOT_TOKEN=... -e SLACK_SIGNING_SECRET=... menotime-ops
#
# Production sets DATABASE_URL to PostgreSQL and the secrets from the task definition (or
# SECRETS_MANAGER_SECRET_ID); the SQLite default below is for a single container.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------
# Builder: a virtualenv holding exactly the locked dependencies, then the project on top.
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

WORKDIR /src
# The lock file alone first: this layer stays cached until the dependencies change.
COPY requirements.lock ./
RUN pip install -r requirements.lock

# --no-deps: everything the project needs is already there, at the locked versions.
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY jobs ./jobs
RUN pip install --no-deps . \
    && pip check

# ---------------------------------------------------------------------------------------------
# Runtime: the virtualenv only (no compiler, no pip cache, no sources), run as uid 10001.
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="menotime-ops" \
      org.opencontainers.image.description="MenoTime Ops: the ChatOps bot that runs MenoTime's AWS environments from Slack"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PORT=3000 \
    LOG_FORMAT=json \
    DATABASE_URL=sqlite:////data/menotime-ops.db

# A fixed uid/gid, so volume ownership and Kubernetes/ECS securityContext can name it.
RUN groupadd --system --gid 10001 menotime \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin menotime \
    && mkdir -p /data \
    && chown 10001:10001 /data

# Owned by root and read-only for the bot: the running process cannot alter its own code.
COPY --from=builder /opt/venv /opt/venv

WORKDIR /data
VOLUME ["/data"]
USER 10001:10001

EXPOSE 3000

# python:slim has no curl; urllib raises on a refused connection or a non-2xx answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '3000') + '/healthz', timeout=4)"]

ENTRYPOINT ["menotime-bot"]
CMD ["serve"]
