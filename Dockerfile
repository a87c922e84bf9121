# The Patchfile frontend image: one static binary on scratch.
#
#   docker buildx build -t <registry>/patchfile:1 --push .
#
# Multi-arch: add --platform linux/amd64,linux/arm64 (Go cross-compiles on
# the build platform, no emulation needed).
#
# VERSION and REVISION (e.g. --build-arg VERSION=1.2.3 --build-arg
# REVISION=$(git rev-parse HEAD)) go into the binary (`patchfile-frontend
# version`) and the image's OCI labels. The context has no .git, so they are
# not guessed: unset, the binary says "dev".
#
# The dependencies are compiled without inlining (-gcflags=all=-l), the
# standard library and the frontend's own packages with it: a smaller image
# for every cold builder to pull, at no cost on the paths that hash and
# compare files (see FrontendGCFlags in internal/stack, which the test
# stack builds with).
#
# BINARY=prebuilt packs bin/<os>-<arch>/patchfile-frontend from the context
# instead of compiling (for hosts that cannot pull a Go image, like the test
# stack, which builds the binary with the same -X flags itself).
ARG GO_VERSION=1.26
ARG BINARY=build

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
ARG TARGETOS TARGETARCH VERSION=dev REVISION
RUN --mount=type=bind,target=. \
    --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=cache,target=/go/pkg/mod \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -tags "netgo osusergo" \
      -gcflags=all=-l -gcflags=std= -gcflags=github.com/patchfile/patchfile/...= \
      -ldflags "-s -w -X github.com/patchfile/patchfile/version.Version=${VERSION} -X github.com/patchfile/patchfile/version.Revision=${REVISION}" \
      -o /out/patchfile-frontend ./cmd/frontend

FROM scratch AS prebuilt
ARG TARGETOS TARGETARCH
COPY bin/${TARGETOS}-${TARGETARCH}/patchfile-frontend /out/patchfile-frontend

FROM ${BINARY} AS binary

FROM scratch
COPY --from=binary /out/patchfile-frontend /bin/patchfile-frontend
LABEL moby.buildkit.frontend.network.none="true"
# contexts: buildx refuses --build-context unless the syntax image declares it,
# and air-gapped CI replaces the syntax image itself with a named context.
LABEL moby.buildkit.frontend.caps="moby.buildkit.frontend.inputs,moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts"
LABEL org.opencontainers.image.title="Patchfile frontend"
ARG VERSION=dev REVISION
LABEL org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.revision="$REVISION" \
      org.opencontainers.image.source="https://github.com/patchfile/patchfile"
ENTRYPOINT ["/bin/patchfile-frontend"]
