#!/usr/bin/env bash
# Starts a single-node Garage (a real S3 object store) on loopback for the S3 benchmark, with one key and
# one bucket, and prints the environment the benchmark needs:
#
#     eval "$(scripts/garage.sh /tmp/garage)"   # then: cargo bench --bench s3
#
# Garage comes from crates.io: cargo install garage --locked --version '^2.5' (about 10 minutes).
# $GARAGE_BIN overrides the binary; $GARAGE_S3_PORT (default 3900) the S3 port.
set -euo pipefail

dir="${1:-$(mktemp -d)}"
bin="${GARAGE_BIN:-$(command -v garage || echo /work/garage/bin/garage)}"
port="${GARAGE_S3_PORT:-3900}"
bucket=wharf-bench
[ -x "$bin" ] || { echo "garage not found; cargo install garage --locked --version '^2.5'" >&2; exit 1; }

mkdir -p "$dir/meta" "$dir/data"
config="$dir/garage.toml"
cat > "$config" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$((port + 1))"
rpc_public_addr = "127.0.0.1:$((port + 1))"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$port"
root_domain = ".s3.garage.localhost"
TOML
chmod 600 "$config"

garage() { "$bin" -c "$config" "$@"; }
"$bin" -c "$config" server >"$dir/garage.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  garage status >/dev/null 2>&1 && break
  sleep 0.1
done
node=$(garage status 2>/dev/null | awk '/^[0-9a-f]{16}/ {print $1; exit}')
[ -n "$node" ] || { echo "garage did not start; see $dir/garage.log" >&2; kill "$pid"; exit 1; }
garage layout assign -z local -c 10G "$node" >/dev/null
garage layout apply --version 1 >/dev/null
garage key create wharf-bench-key >"$dir/key.txt"
garage bucket create "$bucket" >/dev/null
garage bucket allow --read --write --owner "$bucket" --key wharf-bench-key >/dev/null
key_id=$(awk -F': *' '/Key ID/ {print $2; exit}' "$dir/key.txt")
secret=$(awk -F': *' '/Secret key/ {print $2; exit}' "$dir/key.txt")
[ -n "$key_id" ] && [ -n "$secret" ] || { echo "could not read the key from $dir/key.txt" >&2; kill "$pid"; exit 1; }

echo "export AWS_ACCESS_KEY_ID=$key_id"
echo "export AWS_SECRET_ACCESS_KEY=$secret"
echo "export AWS_REGION=garage"
echo "export WHARF_BENCH_S3_ENDPOINT=http://127.0.0.1:$port"
echo "export WHARF_BENCH_S3_BUCKET=$bucket"
echo "export GARAGE_PID=$pid"
