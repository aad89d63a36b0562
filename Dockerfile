# One image for every role: `boxoffice <role>` (api, seat-processor,
# reservation-processor, demo, loadgen).
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends clang libclang-dev cmake pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p boxoffice \
 && cp target/release/boxoffice /usr/local/bin/boxoffice

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --create-home boxoffice \
 && mkdir -p /data && chown boxoffice /data
COPY --from=build /usr/local/bin/boxoffice /usr/local/bin/boxoffice
USER boxoffice
ENV BOXOFFICE_STATE_DIR=/data RUST_LOG=info
ENTRYPOINT ["boxoffice"]
