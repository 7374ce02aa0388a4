# ingest: the daemon in a slim image, as a non-root user, with the database in a volume.
#   docker build -t ingest .
#   docker run --init -d --name ingest -v ingest-data:/data ingest            # runs `ingest run`
#   docker exec ingest ingest sightings 62-4125                               # query the same database
# Mount your own config with -v ./my.toml:/config/ingest.toml -e INGEST_CONFIG=/config/ingest.toml.
FROM python:3.11-slim

RUN groupadd --system --gid 10001 ingest \
 && useradd --system --uid 10001 --gid ingest --no-log-init --home-dir /app ingest

WORKDIR /app
COPY pyproject.toml README.md ./
COPY ingest ./ingest
RUN pip install --no-cache-dir . && rm -rf build

# The bundled config, watchlist and synthetic demo replay; relative paths in the config resolve here.
COPY config ./config
RUN mkdir -p /data && chown ingest:ingest /data

# SQLite needs a local volume (WAL does not work over NFS/SMB) writable by the ingest user.
ENV INGEST_DATABASE_PATH=/data/ingest.db
VOLUME ["/data"]
USER ingest

# The read-only HTTP API, when [http] enabled = true with host = "0.0.0.0" (INGEST_HTTP_ENABLED=true
# INGEST_HTTP_HOST=0.0.0.0), or with `docker run ... ingest serve`; publish it with -p 127.0.0.1:8080:8080.
EXPOSE 8080

# SIGTERM (docker stop) finishes the running poll, closes the database and exits 0.
ENTRYPOINT ["ingest"]
CMD ["run"]
