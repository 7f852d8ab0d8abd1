#!/usr/bin/env bash
# Fuzzes the admin API with schemathesis against its own OpenAPI document and fails on any server error.
#
# Builds wharf, starts `wharf serve` on the embedded default (SQLite + a local folder) in a temporary folder
# with free loopback ports, seeds a tenant `acme` with a user `alice` and a hostname (the document's path
# examples),
# bootstraps an operator token, and runs `schemathesis run` with the `not_a_server_error` check.
#
#   scripts/api-fuzz.sh [extra schemathesis options, e.g. --max-examples 200 --seed 1]
#
# Needs python3 and schemathesis 4 (`pip install schemathesis`).
set -euo pipefail
cd "$(dirname "$0")/.."

# Through the interpreter, so that a pip install without a refreshed PATH (pyenv shims) is found too.
python3 -c 'import schemathesis.cli' 2>/dev/null || { echo "error: python3 -m pip install schemathesis" >&2; exit 1; }
schemathesis() { python3 -c 'from schemathesis.cli import schemathesis; schemathesis(prog_name="schemathesis")' "$@"; }
cargo build --locked --quiet --bin wharf
wharf=$(realpath "${CARGO_TARGET_DIR:-target}/debug/wharf")

work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

read -r explicit implicit admin < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)

# Every WHARF_* variable is configuration: only ours count.
for var in $(env | grep -o '^WHARF_[A-Za-z0-9_]*' || true); do unset "$var"; done
export WHARF_DATA_DIR="$work/data"
export WHARF_FTP__EXPLICIT_LISTEN="127.0.0.1:$explicit"
export WHARF_FTP__IMPLICIT_LISTEN="127.0.0.1:$implicit"
export WHARF_FTP__PASSIVE_PORTS="0-0"
export WHARF_ADMIN__ENABLED=true
export WHARF_ADMIN__LISTEN="127.0.0.1:$admin"
# Cheap password hashes: the fuzzer creates many users.
export WHARF_PASSWORDS__MEMORY_KIB=1024
export WHARF_PASSWORDS__ITERATIONS=1

(cd "$work" && exec "$wharf" serve >"$work/serve.log" 2>&1) &
server=$!
base="http://127.0.0.1:$admin"
for _ in $(seq 100); do
  python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$base/healthz" \
    >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$work/serve.log" >&2; echo "error: wharf serve exited" >&2; exit 1; }
  sleep 0.1
done

# An operator token, made the way an operator makes the first one.
secret=$(cd "$work" && "$wharf" token create fuzz --operator | tail -n 1)
[ -n "$secret" ] || { echo "error: wharf token create printed no secret" >&2; exit 1; }
auth="Authorization: Bearer $secret"

# The path examples of the document (tenant acme, user alice) exist, so requests reach past the lookups.
api() { # method path [json]
  python3 - "$@" <<'EOF'
import os, sys, urllib.error, urllib.request
method, url = sys.argv[1], sys.argv[2]
data = sys.argv[3].encode() if len(sys.argv) > 3 else None
headers = {"Authorization": "Bearer " + os.environ["SECRET"], "Content-Type": "application/json"}
req = urllib.request.Request(url, data=data, method=method, headers=headers)
try:
    print(urllib.request.urlopen(req).status)
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode(), file=sys.stderr)
    sys.exit(1)
EOF
}
export SECRET="$secret"
api POST "$base/api/v1/tenants" '{"name": "acme"}' >/dev/null
api POST "$base/api/v1/tenants/acme/users" '{"username": "alice", "password": "alice password"}' >/dev/null
api POST "$base/api/v1/tenants/acme/hostnames" '{"hostname": "ftp.acme.example"}' >/dev/null

# The fuzzer must not revoke its own token halfway (every later request would be a 401 and prove nothing).
status=0
# From the temp folder: schemathesis keeps a cache in its working directory.
(cd "$work" && schemathesis run "$base/api/v1/openapi.json" \
  --header "$auth" \
  --checks not_a_server_error \
  --exclude-operation-id tokens_delete \
  --report junit --report-dir "$work/report" \
  "$@") || status=$?

if grep -q "panicked" "$work/serve.log"; then
  grep -B2 -A10 "panicked" "$work/serve.log" >&2
  echo "error: wharf panicked during the run" >&2
  status=1
fi
api GET "$base/api/v1/tenants" >/dev/null || { echo "error: the fuzz token stopped working" >&2; status=1; }
if [ "$status" -ne 0 ]; then
  echo "--- wharf serve log (last 50 lines) ---" >&2
  tail -50 "$work/serve.log" >&2
fi
exit "$status"
