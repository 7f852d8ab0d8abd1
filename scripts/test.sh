#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, integration and interop tests.
# Interop tests drive real clients (curl, lftp, rclone, python3); what is missing is installed below.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the tests need beyond Rust is installed here when it is missing (Debian: apt; Python: pip), so that a
# fresh machine with PostgreSQL running needs nothing else.
missing=()
for tool in curl lftp rclone python3; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing the interop clients: ${missing[*]}" >&2
  sudo_=$([ "$(id -u)" = 0 ] || echo sudo)
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "${missing[@]}" ca-certificates >/dev/null
fi
# moto (quick local S3 runs, S3_TEST_STORE=moto), schemathesis (the admin API fuzz run), and the offline
# validators of docker-compose.yml and the Kubernetes manifests. One install, so that pip resolves them together.
if ! python3 -c 'import moto.server, schemathesis.cli, check_jsonschema, kubernetes_validate, yaml' >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]==5.1.22' 'schemathesis==4.32.5' \
    'check-jsonschema==0.39.0' 'kubernetes-validate==1.37.0' 'PyYAML==6.0.3'
fi

# The S3 tests run against Garage, a real store that checks SigV4 signatures and keeps multipart uploads as
# S3 does. It is built once (about 10 minutes) into a cache the machine keeps, then started on loopback for
# this run. S3_TEST_STORE=moto runs them on moto instead (quicker to set up, checks no signatures).
if [ "${S3_TEST_STORE:-garage}" = garage ] && [ -z "${S3_TEST_ENDPOINT:-}" ]; then
  cache="${WHARF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wharf}"
  export GARAGE_BIN="${GARAGE_BIN:-$cache/garage/bin/garage}"
  if [ ! -x "$GARAGE_BIN" ]; then
    echo "building Garage into $cache/garage (once; about 10 minutes)" >&2
    cargo install garage --locked --version '=2.5.0' --root "$cache/garage" --quiet
  fi
  garage_dir=$(mktemp -d)
  eval "$(GARAGE_S3_PORT="${GARAGE_S3_PORT:-3920}" ./scripts/garage.sh "$garage_dir")"
  trap 'kill "$GARAGE_PID" 2>/dev/null || true; rm -rf "$garage_dir"' EXIT
  export S3_TEST_ENDPOINT="$WHARF_BENCH_S3_ENDPOINT"
  # WHARF_* variables are configuration to wharf, and the config tests refuse unknown ones.
  unset WHARF_BENCH_S3_ENDPOINT WHARF_BENCH_S3_BUCKET
fi

# The directory tests run on SQLite and on Postgres; each Postgres test creates its own database on the
# server named by DATABASE_URL (default: the local one, trust authentication).
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
if ! command -v pg_isready >/dev/null 2>&1; then
  echo "error: the directory tests need PostgreSQL (on Debian: apt-get install postgresql postgresql-client)" >&2
  exit 1
fi
if ! pg_isready -q -d "$DATABASE_URL"; then
  echo "error: the directory tests need PostgreSQL at DATABASE_URL (default 127.0.0.1:5432, user postgres);" \
    "start it, e.g. pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start" >&2
  exit 1
fi

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --lib --bins --tests
# The protocol, client, permission and quota suites once more, on the production pairing: S3 storage and a
# Postgres directory (a fresh database per test).
WHARF_TEST_BACKEND=s3 WHARF_TEST_DIRECTORY=postgres cargo test --locked --test wharf -- protocol:: suppaftp:: interop:: permissions:: quotas:: \
  sessions:: shutdown:: passive_pool:: proxy:: admin:: metrics::
# The admin API fuzzed with schemathesis against its own OpenAPI document: no request may get a 5xx.
./scripts/api-fuzz.sh
# docker-compose.yml and the Kubernetes manifests: YAML, schemas, ports in agreement, and the configs they give
# wharf loaded by this build.
WHARF_BIN="${CARGO_TARGET_DIR:-target}/debug/wharf" ./scripts/validate-deploy.sh
