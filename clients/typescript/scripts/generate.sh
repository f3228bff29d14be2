#!/bin/sh
# Generate the typed messages and the gRPC client (ts-proto, for @grpc/grpc-js) from the repository's
# proto into $1 (src/gen; committed: test/protos.test.ts checks that it has not drifted). protoc is
# grpcio-tools' from the project's virtualenv (PYTHON, default ../../.venv/bin/python), and
# google/rpc/*.proto come from the googleapis-common-protos installed there, as for the Python stubs.
set -eu
cd "$(dirname "$0")/.."
OUT=$1
PYTHON=${PYTHON:-../../.venv/bin/python}
SITE=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
rm -rf "$OUT" && mkdir -p "$OUT"
"$PYTHON" -m grpc_tools.protoc -I ../../protos -I "$SITE" \
  --plugin=protoc-gen-ts_proto=node_modules/.bin/protoc-gen-ts_proto \
  --ts_proto_out="$OUT" \
  --ts_proto_opt=outputServices=grpc-js,esModuleInterop=true,oneof=unions,forceLong=number,useOptionals=none,exportCommonSymbols=false \
  ../../protos/translate_svc/api/v1/translate.proto "$SITE/google/rpc/error_details.proto"
