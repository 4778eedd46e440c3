#!/usr/bin/env bash
# Regenerate the Python modules of Jaeger's api_v2 protos (model, collector, sampling), in place
# next to each .proto in src/tracemesh/codecs/proto/.
#
# Run from anywhere: `scripts/gen_jaeger_protos.sh`. Needs grpcio-tools (a dev dependency). The
# include root is `src`, so each descriptor is registered as `tracemesh/codecs/proto/<name>.proto`
# and generated imports of sibling files read `from tracemesh.codecs.proto import ...`. The
# collector and sampling protos also get gRPC stubs (`*_pb2_grpc.py`), which the tests use as a
# real client would; the server side registers raw-bytes handlers instead.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
cd "$root/src"

"$python" -m grpc_tools.protoc -I . \
    --python_out=. --pyi_out=. \
    tracemesh/codecs/proto/jaeger_model.proto

"$python" -m grpc_tools.protoc -I . \
    --python_out=. --pyi_out=. --grpc_python_out=. \
    tracemesh/codecs/proto/jaeger_collector.proto \
    tracemesh/codecs/proto/jaeger_sampling.proto

echo "generated: $(ls tracemesh/codecs/proto/jaeger_*_pb2*.py*)"
