# syntax=docker/dockerfile:1
# serin's controller image: one Rust binary (rustls, so no OpenSSL; linked
# against glibc) on distroless cc, which has glibc and libgcc: non-root, no shell.
#   docker build -t serin:dev --build-arg VERSION=0.1.0 .
# `e2e/chart.sh dockerfile-build` replays the builder stage's steps without
# Docker, so CI shows that its exact cargo command builds from what it copies.

# The toolchain the repo is tested with; Cargo.toml's rust-version (1.89) is the floor.
FROM rust:1.95-bookworm AS builder
WORKDIR /src

# Dependencies first, in a step of their own that reruns only when Cargo.toml
# or Cargo.lock change; what it compiles stays in the target cache mount for
# the next step. Stub crate roots stand in for the sources; the manifest's e2e
# test and bench targets need no files unless they are built.
COPY Cargo.toml Cargo.lock ./
RUN --mount=type=cache,id=serin-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=serin-cargo-git,target=/usr/local/cargo/git \
    --mount=type=cache,id=serin-target,target=/src/target,sharing=locked \
    mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --bin serin \
    && rm -r src

# The real sources. COPY keeps the files' own modification times, which can be
# older than the stub build's; touching the crate roots makes cargo rebuild serin
# instead of keeping the stub. The target directory is a cache mount, so the
# binary is copied out of it within the same step.
COPY src ./src
RUN --mount=type=cache,id=serin-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=serin-cargo-git,target=/usr/local/cargo/git \
    --mount=type=cache,id=serin-target,target=/src/target,sharing=locked \
    touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin serin \
    && mkdir -p /out \
    && cp target/release/serin /out/serin

# No HEALTHCHECK: Kubernetes ignores it (the chart's liveness and readiness
# probes hit /healthz and /readyz), and distroless has no shell or curl to run one.
# checkov:skip=CKV_DOCKER_2:Kubernetes probes /healthz and /readyz; distroless has nothing to run a HEALTHCHECK with
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="serin" \
      org.opencontainers.image.description="Progressive delivery for Kubernetes: rolling, blue-green and canary releases gated on readiness and metrics" \
      org.opencontainers.image.source="https://github.com/serin-dev/serin" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=builder /out/serin /serin
# distroless's nonroot user, by number so that runAsNonRoot can verify it.
USER 65532:65532
# 8080: /metrics; 8081: /healthz and /readyz.
EXPOSE 8080 8081
ENTRYPOINT ["/serin"]
CMD ["controller"]
