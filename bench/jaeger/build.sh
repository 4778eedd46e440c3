#!/usr/bin/env bash
# Builds Jaeger v2 (Go module github.com/jaegertracing/jaeger v1.75.0, a tool dependency of this
# module) into ~/.cache/tracemesh/jaeger/, for the side-by-side benchmark. Idempotent.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${HOME}/.cache/tracemesh/jaeger"
out="${cache}/jaeger-v1.75.0"
[[ -x "${out}" ]] && { echo "${out}"; exit 0; }
mkdir -p "${cache}"
export PATH="/usr/local/go/bin:${PATH}"
export GOMODCACHE="${cache}/gomod" GOCACHE="${cache}/gobuild" GOFLAGS=-mod=mod GOTOOLCHAIN=local
cd "${here}"
[[ -f go.sum ]] || go get -tool github.com/jaegertracing/jaeger/cmd/jaeger@v1.75.0 >&2
go build -o "${out}" github.com/jaegertracing/jaeger/cmd/jaeger >&2
echo "${out}"
