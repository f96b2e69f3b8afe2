# okrsync as a service: `okrsync run` (scheduler + dispatcher + HTTP on :8080) as a non-root user.
#   docker build -t okrsync .
#   docker run -p 8080:8080 -v ./okrsync.yaml:/etc/okrsync/okrsync.yaml:ro \
#     -v ./secrets:/run/secrets:ro okrsync
# Config is read from /etc/okrsync/okrsync.yaml; `${VAR}` references and OKRSYNC_* settings are
# read from files in /run/secrets (e.g. /run/secrets/okrsync_database_url). See config/examples/compose.yml.
#
# Two stages: the builder installs the exact versions of requirements.lock (every file checked
# against its sha256; regenerate the lock with the command at its top) and then okrsync itself
# without dependencies into a virtual environment; the runtime stage copies only that environment.

FROM python:3.11-slim AS builder

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/okrsync/bin:$PATH

RUN python -m venv /opt/okrsync
WORKDIR /src
COPY requirements.lock pyproject.toml README.md LICENSE ./
COPY okrsync ./okrsync
COPY connectors ./connectors
RUN pip install --require-hashes --no-deps -r requirements.lock \
    && pip install --no-deps --no-build-isolation . \
    && pip check

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/okrsync/bin:$PATH

RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/okrsync --create-home okrsync \
    && mkdir -p /etc/okrsync
COPY --from=builder /opt/okrsync /opt/okrsync
USER okrsync
WORKDIR /var/lib/okrsync

ENV OKRSYNC_CONFIG=/etc/okrsync/okrsync.yaml \
    OKRSYNC_SECRETS_DIR=/run/secrets \
    OKRSYNC_DATABASE_URL=sqlite:////var/lib/okrsync/okrsync.db \
    OKRSYNC_LOG_FORMAT=json \
    OKRSYNC_HTTP_PORT=8080

EXPOSE 8080
VOLUME ["/var/lib/okrsync"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('OKRSYNC_HTTP_PORT', '8080'), timeout=4)"

ENTRYPOINT ["okrsync"]
CMD ["run", "--host", "0.0.0.0"]
