#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, integration and interop tests.
# Interop tests drive real clients (curl, lftp, rclone, python3); .ci/run installs them.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in curl lftp rclone python3; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "error: the interop tests need: ${missing[*]} (on Debian: apt-get install curl lftp rclone python3)" >&2
  exit 1
fi
# The S3 backend is tested against moto's S3 server (pinned: later releases answer CompleteMultipartUpload
# in a shape the Rust SDK rejects).
if ! python3 -c 'import moto.server' >/dev/null 2>&1; then
  echo "error: the S3 tests need moto: python3 -m pip install 'moto[server]==5.1.22'" >&2
  exit 1
fi

if ! python3 -c 'import schemathesis.cli' >/dev/null 2>&1; then
  echo "error: the admin API fuzz run needs schemathesis: python3 -m pip install 'schemathesis==4.32.5'" >&2
  exit 1
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
