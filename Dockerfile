# authd container image.
#
#   docker build -t authd .
#   docker run --rm authd --help
#
# The image runs `authd serve` with the prod profile as uid 10001. It needs
# DATABASE_URL and a master key file (default path /run/secrets/authd_master_key);
# see README.md, "Running with Docker Compose" and "Production notes".

# ---------------------------------------------------------------------------
# Build stage. The crate needs Rust >= 1.88 (edition 2024); rust:1-bookworm is
# the current stable 1.x on the same Debian release as the runtime stage, so
# the glibc versions match.
FROM rust:1-bookworm AS build

# aws-lc-sys (under aws-lc-rs, rustls and jsonwebtoken) compiles AWS-LC, and
# tikv-jemalloc-sys compiles jemalloc (with make), from C sources. The image already has a C compiler; on x86_64/aarch64 Linux the
# cc-based builder needs nothing else, but cmake is its fallback builder on
# other targets, so install it to keep the build independent of the platform.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /build

# 1. Dependencies only: build the dependency graph against placeholder crate
#    roots, so this layer is reused until Cargo.toml or Cargo.lock changes.
#    The benchmark is a workspace member: its manifest must be there for
#    cargo to load the workspace, though only the service is built.
COPY Cargo.toml Cargo.lock ./
# Rebuilds the crate when migrations/ changes (sqlx::migrate! embeds it).
COPY build.rs ./
# Build-time jemalloc options (huge pages for Argon2's working area).
COPY .cargo ./.cargo
COPY bench/Cargo.toml bench/
RUN mkdir -p src bench/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > bench/src/main.rs \
    && cargo build --release --locked \
    && rm -rf src

# 2. The crate itself. Both embedded inputs must be in the build context:
#    `sqlx::migrate!("./migrations")` embeds migrations/ and
#    `include_str!` embeds data/common-passwords.txt and the mail templates
#    in templates/, at compile time.
#    (config/ is only read at run time; it is copied into the runtime stage
#    directly so that editing it does not trigger a recompile.)
COPY src ./src
COPY migrations ./migrations
COPY data ./data
COPY templates ./templates
# The placeholder roots from step 1 may be newer than the copied sources;
# touching them makes cargo rebuild the crate instead of reusing the stub.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && install -D -m 0755 target/release/authd /out/authd

# ---------------------------------------------------------------------------
# Runtime stage.
FROM debian:bookworm-slim AS runtime

# ca-certificates: TLS to PostgreSQL (sslmode=require / verify-full).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 authd \
    && useradd --system --uid 10001 --gid 10001 \
        --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin authd

COPY --from=build /out/authd /usr/local/bin/authd
# Root-owned and read-only for the service user.
COPY config/ /etc/authd/config/

# AUTHD_HTTP__ADDR: listen on all interfaces inside the container (the
# config default, 127.0.0.1:8080, would be unreachable through EXPOSE).
ENV AUTHD_CONFIG_DIR=/etc/authd/config \
    AUTHD_PROFILE=prod \
    AUTHD_HTTP__ADDR=0.0.0.0:8080

# Numeric, so orchestrators can verify runAsNonRoot.
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["authd"]
CMD ["serve"]
