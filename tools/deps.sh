#!/bin/bash
# Installs the Debian packages Quiver needs to build, run and test. Idempotent: only what is missing is installed.
# Usage: tools/deps.sh [--test]   (--test adds what the test suite needs)
set -euo pipefail
pkgs=(build-essential cmake pkg-config
      libgrpc-dev libprotobuf-c-dev protobuf-c-compiler librocksdb-dev liburing-dev libopenblas-dev
      libxxhash-dev libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev libutf8proc-dev
      python3 python3-pip ca-certificates)
if [[ ${1:-} == --test ]]; then
  pkgs+=(libcmocka-dev python3-grpcio python3-protobuf python3-numpy python3-pytest
         protobuf-compiler protobuf-compiler-grpc python3-prometheus-client
         etcd-server openssl fiu-utils libfiu-dev gdb prometheus faketime python3-venv
         chromium chromium-driver python3-selenium)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
