#!/usr/bin/env bash
# The reliability soak: uploads and downloads of mixed sizes (1 KiB to 256 MiB) through a proxy that fails
# 5 % of S3 requests at random, on Garage and a SQLite directory, loopback only. Prints what happened; fails
# if a 226'd file is lost, a partial object is visible or a multipart upload outlives the sweep.
#
#     scripts/soak.sh                 # 200 transfers (SOAK_TRANSFERS), faults seeded by SOAK_SEED; minutes
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${WHARF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wharf}"
export GARAGE_BIN="${GARAGE_BIN:-$cache/garage/bin/garage}"
[ -x "$GARAGE_BIN" ] || cargo install garage --locked --version '=2.5.0' --root "$cache/garage" --quiet
dir=$(mktemp -d)
eval "$(GARAGE_S3_PORT="${GARAGE_S3_PORT:-3930}" ./scripts/garage.sh "$dir")"
trap 'kill "$GARAGE_PID" 2>/dev/null || true; rm -rf "$dir"' EXIT
export S3_TEST_ENDPOINT="$WHARF_BENCH_S3_ENDPOINT"
# WHARF_* variables are configuration to wharf, and the config tests refuse unknown ones.
unset WHARF_BENCH_S3_ENDPOINT WHARF_BENCH_S3_BUCKET
cargo test --test wharf -- --ignored --nocapture --exact s3::soak::soak_with_random_store_faults
