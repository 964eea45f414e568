# syntax=docker/dockerfile:1
# The `emotrack` binary on Debian bookworm with FFmpeg; by default it runs `emotrack serve`.
#   DOCKER_BUILDKIT=1 docker build -t emotrack:0.1.0 .
#   docker run --rm -p 7860:7860 emotrack:0.1.0                   # web page and API on :7860
#   docker run --rm -v "$PWD:/data" --user "$(id -u):$(id -g)" emotrack:0.1.0 \
#     emotrack video clip.mp4 --out annotated.mp4                 # any subcommand, in /data
# Checked by scripts/check-deploy.sh (hadolint, and the tag below against rust-toolchain.toml).

# The tag is rust-toolchain.toml's channel, so rustup finds the pinned toolchain already installed;
# its Debian release is the run stage's, so the binary links against the glibc it will run with.
FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
# The context is the workspace minus what .dockerignore leaves out; models/ and assets/ are in it
# because the build embeds them (include_bytes!). There is no .git, so the build records its
# commit as "unknown" (crates/emotrack-cli/build.rs).
COPY . .
# The registry and the target folder are BuildKit cache mounts: a rebuild after a source change
# recompiles only the workspace crates. The cache is not part of any layer, so the binary is
# copied out in the same step. The build command is the README's (Install, Deploy).
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p emotrack-cli \
    && install -m 0755 target/release/emotrack /usr/local/bin/emotrack

FROM debian:bookworm-slim
LABEL org.opencontainers.image.title="emotrack" \
      org.opencontainers.image.description="Real-time facial emotion recognition: CLI and HTTP server" \
      org.opencontainers.image.licenses="MIT"
# FFmpeg (ffmpeg, ffprobe) decodes and encodes video; ca-certificates lets it open https and
# rtsps sources. Versions are Debian bookworm's: a pin would break the build when a security
# update replaces the pinned version in the archive.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# A fixed, unprivileged UID/GID (deploy/kubernetes runs the pods as 10001 with runAsNonRoot).
RUN groupadd --system --gid 10001 emotrack \
    && useradd --system --uid 10001 --gid emotrack --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin emotrack \
    && mkdir /data \
    && chown emotrack:emotrack /data
COPY --from=build /usr/local/bin/emotrack /usr/local/bin/emotrack
# `emotrack serve` keeps video jobs' temporary files in a private folder under $TMPDIR
# (--job-dir / EMOTRACK_JOB_DIR to change it); Kubernetes mounts an emptyDir here.
ENV TMPDIR=/tmp
WORKDIR /data
USER 10001:10001
EXPOSE 7860
# A plain HTTP request from bash (/dev/tcp), which the image already has: curl or wget would add
# packages only for this. It is for `emotrack serve`: a container running another subcommand is
# marked unhealthy, which changes nothing else. Kubernetes ignores it (deploy/kubernetes: probes).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/7860 && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
# No ENTRYPOINT, so `docker run IMAGE emotrack video ...` (or any other subcommand) replaces this.
# The binary is PID 1: it stops on SIGTERM itself (serve: graceful shutdown within ~10 s).
CMD ["emotrack", "serve", "--bind", "0.0.0.0:7860"]
