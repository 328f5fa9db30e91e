# Agentdesk container: multi-stage release build, slim non-root runtime.
# Build: docker build -t agentdesk .   Run: docker run -p 8080:8080 -v agentdesk-data:/var/lib/agentdesk agentdesk

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, in their own layer: rebuilt only when the manifests change.
COPY Cargo.toml Cargo.lock ./
COPY migration/Cargo.toml migration/Cargo.toml
# The benchmark is a workspace member: its manifest must be there (it is not built here).
COPY benches/platform/Cargo.toml benches/platform/Cargo.toml
RUN mkdir -p src migration/src tests benches/platform/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs migration/src/lib.rs \
    && echo 'fn main() {}' > tests/main.rs \
    && for b in desktop relay platform/src/main; do echo 'fn main() {}' > "benches/$b.rs"; done \
    && cargo build --release --locked --bin agentdesk \
    && rm -rf src migration/src
# Then the sources.
COPY src src
COPY migration/src migration/src
COPY openapi openapi
# The console's built assets, embedded into the binary (src/http/console.rs).
COPY console/dist console/dist
RUN touch src/main.rs src/lib.rs migration/src/lib.rs \
    && cargo build --release --locked --bin agentdesk

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/agentdesk --create-home agentdesk
COPY --from=build /src/target/release/agentdesk /usr/local/bin/agentdesk
USER 10001:10001
WORKDIR /var/lib/agentdesk
ENV AGENTDESK_LISTEN=0.0.0.0:8080 \
    AGENTDESK_DATA_DIR=/var/lib/agentdesk \
    AGENTDESK_LOG_FORMAT=json
VOLUME ["/var/lib/agentdesk"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 CMD ["agentdesk", "healthcheck"]
ENTRYPOINT ["agentdesk"]
CMD ["serve"]
