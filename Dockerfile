# ingest: the daemon in a slim image, as a non-root user, with the database in a volume.
#   docker build -t ingest .
#   docker run --init -d --name ingest -v ingest-data:/data ingest            # runs `ingest run`
#   docker exec ingest ingest sightings 62-4125                               # query the same database
#   docker inspect --format '{{.State.Health.Status}}' ingest                 # `ingest health`, every 30 s
# Mount your own config with -v ./my.toml:/config/ingest.toml -e INGEST_CONFIG=/config/ingest.toml.
# compose.yaml runs it with mosquitto (and PostgreSQL); README.md has both.
# tests/integration/test_deploy.py lints this file with hadolint.

# The Python the tests run on (3.11), on Debian 12 like the machines that test it; pinned to a patch release.
FROM python:3.11.16-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The wheel of ingest itself, built apart so that the image gets no build tree.
FROM base AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ingest ./ingest
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM base
RUN groupadd --system --gid 10001 ingest \
 && useradd --system --uid 10001 --gid ingest --no-log-init --home-dir /app --shell /usr/sbin/nologin ingest
WORKDIR /app

# Dependencies first, in a layer of their own: they are read from pyproject.toml alone, so a change to the
# code rebuilds only the small layer below. (The versions are pyproject.toml's ranges.)
COPY pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
      > /tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# Then ingest itself, without touching the dependencies.
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-deps /wheels/ingest-*.whl

# The bundled config, watchlist and synthetic demo replay; relative paths in the config resolve here.
COPY config ./config
RUN mkdir -p /data && chown 10001:10001 /data

# SQLite needs a local volume (WAL does not work over NFS/SMB) writable by the ingest user.
ENV INGEST_CONFIG=/app/config/ingest.toml \
    INGEST_DATABASE_PATH=/data/ingest.db
VOLUME ["/data"]
USER 10001:10001

# The read-only HTTP API, when [http] enabled = true with host = "0.0.0.0" (INGEST_HTTP_ENABLED=true
# INGEST_HTTP_HOST=0.0.0.0), or with `docker run ... ingest serve`; publish it with -p 127.0.0.1:8080:8080.
EXPOSE 8080

# Healthy while a daemon beats on the database and a feed succeeded within [http] stale_after_s (300 s):
# the rule of GET /healthz, without curl. The first poll comes within seconds; start-period covers the
# on-start replay and a slow first answer.
HEALTHCHECK --interval=30s --timeout=10s --start-period=2m --retries=3 CMD ["ingest", "health"]

# SIGTERM (docker stop) finishes the running poll, closes the database and exits 0.
ENTRYPOINT ["ingest"]
CMD ["run"]
