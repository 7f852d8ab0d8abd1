#!/usr/bin/env bash
# Starts a single-node Garage (a real S3 object store) on loopback for the S3 benchmark and the S3 tests,
# with one key (allowed to create buckets) and one bucket, and prints the environment the benchmark needs:
#
#     eval "$(scripts/garage.sh /tmp/garage)"   # then: cargo bench --bench s3; later: kill "$GARAGE_PID"
#
# Garage comes from crates.io: cargo install garage --locked --version '^2.5' (about 10 minutes).
# $GARAGE_BIN overrides the binary; $GARAGE_S3_PORT (default 3900) the S3 port. RPC listens on the next
# port and the admin API three above (3901 and 3903 by default, Garage's own defaults), all on 127.0.0.1.
set -Eeuo pipefail

dir="${1:-$(mktemp -d)}"
bin="${GARAGE_BIN:-$(command -v garage || echo "${WHARF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wharf}/garage/bin/garage")}"
port="${GARAGE_S3_PORT:-3900}"
bucket=wharf-bench
[ -x "$bin" ] || { echo "garage not found; cargo install garage --locked --version '^2.5'" >&2; exit 1; }
# A second start in the same folder would meet the first one's layout, key and bucket.
[ ! -e "$dir/garage.toml" ] || { echo "$dir already holds a Garage; give a new folder" >&2; exit 1; }

mkdir -p "$dir/meta" "$dir/data"
config="$dir/garage.toml"
secret_hex() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
# Written with umask 077: Garage refuses a config holding secrets that others can read.
(umask 077 && cat > "$config" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$((port + 1))"
rpc_public_addr = "127.0.0.1:$((port + 1))"
rpc_secret = "$(secret_hex)"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$port"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$((port + 3))"
admin_token = "$(secret_hex)"
TOML
)

# Garage's output goes to its log; stdout is what the caller evals.
"$bin" -c "$config" server >"$dir/garage.log" 2>&1 &
pid=$!
# Any failure from here on stops the server again rather than leaving it orphaned.
fail() {
  trap - ERR
  echo "$1; see $dir/garage.log" >&2
  kill "$pid" 2>/dev/null || true
  exit 1
}
trap 'fail "garage setup failed"' ERR
# One setup step; a failure names it.
garage() { "$bin" -c "$config" "$@" || fail "garage $* failed"; }

for _ in $(seq 100); do
  "$bin" -c "$config" status >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || break # it exited: a port in use, or a bad config
  sleep 0.1
done
node=$("$bin" -c "$config" status 2>/dev/null | awk '/^[0-9a-f]{16}/ {print $1; exit}' || true)
[ -n "$node" ] || fail "garage did not start"
garage layout assign -z local -c 10G "$node" >/dev/null
garage layout apply --version 1 >/dev/null
garage key create wharf-bench-key >"$dir/key.txt"
# The tests make a bucket of their own for each test.
garage key allow --create-bucket wharf-bench-key >/dev/null
chmod 600 "$dir/key.txt"
garage bucket create "$bucket" >/dev/null
garage bucket allow --read --write --owner "$bucket" --key wharf-bench-key >/dev/null
key_id=$(awk -F': *' '/Key ID/ {print $2; exit}' "$dir/key.txt")
secret=$(awk -F': *' '/Secret key/ {print $2; exit}' "$dir/key.txt")
[ -n "$key_id" ] && [ -n "$secret" ] || fail "could not read the key from $dir/key.txt"

# The S3 endpoint answers (403 to an unsigned request) once the layout is live.
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$port/$bucket" && break
  sleep 0.1
done
garage health >/dev/null

echo "export AWS_ACCESS_KEY_ID=$key_id"
echo "export AWS_SECRET_ACCESS_KEY=$secret"
echo "export AWS_REGION=garage"
echo "export WHARF_BENCH_S3_ENDPOINT=http://127.0.0.1:$port"
echo "export WHARF_BENCH_S3_BUCKET=$bucket"
echo "export GARAGE_PID=$pid"
