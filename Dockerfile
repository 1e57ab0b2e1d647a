# syntax=docker/dockerfile:1
# One ingest sink service per image, chosen by its crate name:
#   docker build --build-arg SERVICE=orders -t ingest/orders:0.1.0 .     (or: make image SERVICE=orders)
# The runtime image is distroless (glibc, CA certificates, no shell) and runs as a non-root user.

# The toolchain the tests run on; the workspace declares rust-version 1.88.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
ARG SERVICE
RUN test -n "${SERVICE}" || { echo "pass --build-arg SERVICE=<crate>, e.g. SERVICE=orders" >&2; exit 1; }
WORKDIR /src
# librdkafka and OpenSSL are built from source (vendored): the base image has gcc, make, perl.
COPY Cargo.toml Cargo.lock ./
COPY ingest-core ingest-core
COPY ingest-cli ingest-cli
COPY templates templates
COPY helm helm
COPY services services
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    test -d "services/${SERVICE}" -o -n "$(grep -l "^name = \"${SERVICE}\"" services/*/Cargo.toml)" \
      || { echo "no service ${SERVICE} under services/ (ingest-cli list shows them)" >&2; exit 1; } \
    && cargo build --release --locked -p "${SERVICE}" \
    && cp "target/release/${SERVICE}" /service

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=build /service /usr/local/bin/service
# Statically linked OpenSSL: point it at the image's CA bundle. One glibc malloc arena: with
# one per busy thread, memory freed by the encoders stays held in many arenas and Parquet's peak
# RSS was 105-125 MB above INGEST_MAX_BUFFER_BYTES; with two, 53-65 MB above; with one, 29-35 MB
# above, at no CPU cost the benchmark can tell from noise (bench/RESULTS.md, 2026-12-07).
# `make bench` runs the sink with it.
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    MALLOC_ARENA_MAX=1 \
    INGEST_HTTP_ADDR=0.0.0.0:8080 \
    INGEST_LOG_FORMAT=json
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/service"]
