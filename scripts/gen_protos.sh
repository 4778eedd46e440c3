#!/usr/bin/env bash
# Regenerate the Python modules of the .proto files tracemesh owns, in place next to each .proto.
#
# Run from anywhere: `scripts/gen_protos.sh`. Needs grpcio-tools (a dev dependency). The include
# root is `src`, so each descriptor is registered as `tracemesh/codecs/proto/<name>.proto`: unique
# in protobuf's default pool even if a dependency ships a .proto of the same name, and any
# generated import of a sibling file reads `from tracemesh.codecs.proto import ...` (no sys.path
# tricks).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
cd "$root/src"

# Zipkin v2 (proto3): messages only, no gRPC stubs.
"$python" -m grpc_tools.protoc -I . \
    --python_out=. --pyi_out=. \
    tracemesh/codecs/proto/zipkin.proto

echo "generated: $(ls tracemesh/codecs/proto/zipkin_pb2.*)"
