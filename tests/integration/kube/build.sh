#!/usr/bin/env bash
# Builds the tests' Kubernetes control plane (kube-apiserver, kube-controller-manager, kubectl,
# etcd) from the Go module proxy into a versioned cache folder, once: a marker file says the
# folder is complete, and a second run with it present does nothing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="v1.37.2"
etcd_version="v3.7.4"
out="${TRACEMESH_KUBE_BIN:-$HOME/.cache/tracemesh/kube-$version-etcd-$etcd_version}"
if [[ -f "$out/.complete" ]]; then
    echo "$out"
    exit 0
fi
export PATH="/usr/local/go/bin:$PATH" CGO_ENABLED=0
mkdir -p "$out"
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version"
(cd "$here/build" && go build -trimpath -ldflags "$ldflags" -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubectl) >&2
(cd "$here/build/etcd" && go build -trimpath -ldflags "-s -w" -o "$out/etcd" \
    go.etcd.io/etcd/server/v3) >&2
touch "$out/.complete"
echo "$out"
