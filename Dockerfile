# syntax=docker/dockerfile:1

# ctrader container image.
#
#   docker build -t ctrader:local --build-arg VERSION=$(git describe --tags --always --dirty) .
#   docker run --rm -e DATABASE_URL=postgres://... -p 8000:8000 ctrader:local serve --migrate
#
# The final image is distroless (no shell, no curl): the container healthcheck
# uses the binary's own `ctrader health` subcommand.

ARG GO_VERSION=1.26

############################
# Build stage
############################
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build

WORKDIR /src

# Dependencies first, so this layer is reused until go.mod/go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .

ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH

RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath \
      -ldflags "-s -w -X github.com/ctrader/ctrader/internal/version.Version=${VERSION}" \
      -o /out/ctrader ./cmd/ctrader

############################
# Runtime stage
############################
FROM gcr.io/distroless/static-debian12:nonroot

ARG VERSION=dev

LABEL org.opencontainers.image.title="ctrader" \
      org.opencontainers.image.description="Postgres-native event and rules service" \
      org.opencontainers.image.source="https://github.com/ctrader/ctrader" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"

COPY --from=build /out/ctrader /ctrader

USER nonroot:nonroot

# 8000: `serve` (HTTP_ADDR) - API, /docs, /riverui/, /healthz, /readyz
# 8001: `worker` (HEALTH_ADDR) - /healthz, /readyz
EXPOSE 8000 8001

# Liveness of `serve` on the default HTTP_ADDR. compose.yaml overrides this per
# service (readiness for the API, port 8001 for workers, disabled for migrate).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/ctrader", "health", "--url", "http://127.0.0.1:8000/healthz"]

ENTRYPOINT ["/ctrader"]
CMD ["serve"]
