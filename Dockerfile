# jobqd in a container: built on Debian 12 with the same packages as
# `make`, run as an unprivileged user with its database on the /data
# volume. Listening on 0.0.0.0:8080, jobqd requires an API key: pass one in
# JOBQ_API_KEYS (see README, "Deploy"). tests/deploy_test.sh checks this
# file against the built binary.

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        gcc libc6-dev make pkg-config \
        libmicrohttpd-dev libsqlite3-dev libcjson-dev libcurl4-openssl-dev libssl-dev libpq-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make -j"$(nproc)" all

FROM debian:bookworm-slim
# The shared libraries build/jobqd links (libc6 is in the base image), CA
# certificates for https in http jobs, and curl for the health check
# (it uses libcurl4, which jobqd needs anyway).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        libmicrohttpd12 libsqlite3-0 libcjson1 libcurl4 libssl3 \
        ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 jobq \
 && useradd --system --uid 10001 --gid jobq --home-dir /data --shell /usr/sbin/nologin jobq \
 && mkdir /data && chown jobq:jobq /data
COPY --from=build /src/build/jobqd /usr/local/bin/jobqd

ENV JOBQ_LISTEN=0.0.0.0:8080 \
    JOBQ_DB=/data/jobq.db
VOLUME /data
WORKDIR /data
EXPOSE 8080
USER jobq

# /readyz commits a row through the writer: ready means the disk takes writes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/readyz"]

# Exec form: jobqd is PID 1 and gets docker stop's SIGTERM itself. It then
# lets running jobs finish for --shutdown-grace (30 s), so stop it with
# `docker stop -t 40` (or run it with --stop-timeout 40).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/jobqd"]
