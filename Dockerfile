# okrsync as a service: `okrsync run` (scheduler + dispatcher + HTTP on :8080) as a non-root user.
#   docker build -t okrsync .
#   docker run -p 8080:8080 -v ./okrsync.yaml:/etc/okrsync/okrsync.yaml:ro \
#     -v ./secrets:/run/secrets:ro okrsync
# Config is read from /etc/okrsync/okrsync.yaml; `${VAR}` references and OKRSYNC_* settings are
# read from files in /run/secrets (e.g. /run/secrets/okrsync_database_url). See config/examples/compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY okrsync ./okrsync
COPY connectors ./connectors
RUN pip install --no-cache-dir . && rm -rf /src

RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/okrsync --create-home okrsync \
    && mkdir -p /etc/okrsync
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
