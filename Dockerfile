# One image for every role: `boxoffice <role>` (api, seat-processor,
# reservation-processor, dashboard, demo, loadgen). The web app's wasm client
# is built here with rustup's wasm32 target (scripts/build-web.sh uses
# Debian's toolchain only because rustup here has no wasm32 target).
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
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    rustup target add wasm32-unknown-unknown \
 && cargo install --locked wasm-bindgen-cli --version 0.2.130 \
 && cargo build --lib --locked -p boxoffice-dashboard --profile wasm-release --no-default-features \
      --features hydrate --target wasm32-unknown-unknown \
 && wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section \
      --out-dir /site/pkg --out-name dashboard \
      target/wasm32-unknown-unknown/wasm-release/boxoffice_dashboard.wasm

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --create-home boxoffice \
 && mkdir -p /data && chown boxoffice /data
COPY --from=build /usr/local/bin/boxoffice /usr/local/bin/boxoffice
COPY --from=build /site /site
USER boxoffice
ENV BOXOFFICE_STATE_DIR=/data BOXOFFICE_SITE_DIR=/site RUST_LOG=info
ENTRYPOINT ["boxoffice"]
