# tailhook container image: a static-enough binary on a slim Debian, run as a
# non-root user. Build: docker build -t tailhook .
# The image is not built in CI (the CI machines have no container engine);
# the files it copies and the binary it runs are the ones the test suite tests.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY src src
COPY sql sql
COPY examples examples
COPY tests tests
RUN cargo build --release --locked --bin tailhook

FROM debian:bookworm-slim
# curl only for the health check below.
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home tailhook
COPY --from=build /src/target/release/tailhook /usr/local/bin/tailhook
COPY config.toml /etc/tailhook/config.toml
USER 10001
# Probes reach the listener from outside the container.
ENV TAILHOOK_CONFIG=/etc/tailhook/config.toml \
    TAILHOOK_SERVER__LISTEN=0.0.0.0:10025
EXPOSE 10025
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD curl -fsS http://127.0.0.1:10025/healthz || exit 1
ENTRYPOINT ["tailhook"]
CMD ["run"]
