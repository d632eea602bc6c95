# enseal-controller as a small static image (musl, FROM scratch, non-root).
#
#   docker build -t enseal-controller .
#   docker build --build-arg BIN=enseal -t enseal .    # the CLI instead
#
# Build stage: Alpine's Rust targets musl, so the binary is static (ring needs a C compiler).
ARG RUST_VERSION=1.94
FROM rust:${RUST_VERSION}-alpine AS build
RUN apk add --no-cache musl-dev ca-certificates
WORKDIR /src
COPY . .
ARG BIN=enseal-controller
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin "${BIN}" \
 && install -D -m 0755 "target/release/${BIN}" /out/app

# Final stage: nothing but the binary and CA roots. The API server's CA comes from the pod's
# service-account mount; the roots are for anything else the binary may reach.
FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/app /app
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/app"]
