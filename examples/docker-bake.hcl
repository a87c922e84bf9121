# docker buildx bake for examples/Patchfile. Run it from this directory (bake
# resolves context = "." against the working directory):
#
#   docker buildx bake release                 # a full build, pushed as ${IMAGE}:release
#   TAG=v2 docker buildx bake deploy           # a patch of that release, pushed as ${IMAGE}:v2
#
# Every variable can be set from the environment (REGISTRY=ghcr.io/acme
# docker buildx bake deploy) or with --set (--set deploy.args.PATCH=<ref>).
# Both targets push, so the builder must reach the registry: a BuildKit
# builder (docker buildx create --driver docker-container --use) is the
# recommended one, see the README's Builders section.

variable "REGISTRY" {
  default     = "registry.example.com"
  description = "Registry the images are pushed to"
}

variable "IMAGE" {
  default     = "${REGISTRY}/shop/web"
  description = "Image name, without a tag"
}

variable "RELEASE" {
  default     = "${IMAGE}:release"
  description = "The release image: the release target pushes it, the deploy target patches it"
}

variable "TAG" {
  default     = "latest"
  description = "Tag of the deploy image (a version or a commit)"
}

variable "FRONTEND" {
  default     = null
  description = "Frontend image, overriding the Patchfile's # syntax= line (null: the line as written)"
}

variable "BASE" {
  default     = null
  description = "The pinned base image (image@sha256:...), overriding ARG BASE (null: the Patchfile's default)"
}

# What both targets share. Its name starts with "_": it is inherited, not built.
target "_patchfile" {
  context    = "."
  dockerfile = "Patchfile"
  args = {
    BUILDKIT_SYNTAX = FRONTEND
    BASE            = BASE
    RELEASE         = RELEASE
  }
  # No attestation manifests: a deploy pushes its one layer, config and manifest.
  attest = ["type=provenance,disabled=true", "type=sbom,disabled=true"]
}

# A release is a full build (PATCH_MAX_SHARE=0: never a patch) that carries
# its build cache, so that the next release takes the dependency stage from
# it instead of running it again, even on a fresh builder.
target "release" {
  inherits = ["_patchfile"]
  args = {
    PATCH_MAX_SHARE = "0"
  }
  tags     = [RELEASE]
  cache-to = ["type=inline"]
  output   = ["type=image,push=true"]
}

# A deploy patches the release: the release's layers plus one small layer
# holding the app files that changed (or a full build, which says why).
target "deploy" {
  inherits = ["_patchfile"]
  args = {
    PATCH = RELEASE
  }
  tags   = ["${IMAGE}:${TAG}"]
  output = ["type=image,push=true"]
}
