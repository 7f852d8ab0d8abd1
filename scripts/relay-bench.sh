#!/usr/bin/env bash
# What relaying a passive data connection between replicas costs (`[ftp.passive_relay]`), for
# BENCHMARKS.md and deploy/CAPACITY.md: upload and download throughput of one curl client when its data
# connection reaches another replica than its control connection, against the same transfer with both on
# one replica, measured in the same run.
#
#     scripts/relay-bench.sh                    # ROUNDS=5 SIZE_MIB=512 (defaults); about 3 minutes after the build
#     ROUNDS=1 SIZE_MIB=64 scripts/relay-bench.sh   # a quick check
#
# Two `wharf serve` processes from the release binary, as two pods: replica A on 127.0.0.2, replica B on
# 127.0.0.3, one SQLite directory file shared by both (where the claims live; Postgres in production), fs
# storage with fsync each, the same shared passive pool of 4 ports, each with a relay listener trusting
# 127.0.0.0/8. A announces B's address in its PASV replies (`ftp.passive_address`, as if B were the load
# balancer), so a client logged in to A opens every data connection at B, which relays it to A:
#
#     relayed: curl ──control──▶ A        curl ──data──▶ B ──relay (PROXY v2 + bytes)──▶ A ──▶ A's storage
#     direct:  curl ──control──▶ B        curl ──data──▶ B ──▶ B's storage
#
# curl: `--ssl-reqd -k` (PROT P; every data connection resumes the control connection's TLS session, end
# to end through the relay), PASV (`--disable-epsv --no-ftp-skip-pasv-ip`, so it goes where the reply
# says). Rounds alternate relayed and direct; each stored file is compared with the source. The summary
# gives medians (MB/s = 10^6 B/s) and relayed ÷ direct.
set -Eeuo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${ROUNDS:-5}"
SIZE_MIB="${SIZE_MIB:-512}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
bin="${WHARF_BIN:-$CARGO_TARGET_DIR/release/wharf}"
if [ -z "${WHARF_BIN:-}" ]; then
  (cd "$root" && cargo build --release --locked --bin wharf)
fi
unset WHARF_BIN WHARF_CONFIG WHARF_DATABASE_URL # wharf reads every WHARF_* variable as its configuration

work="$(mktemp -d -t wharf-relay-bench.XXXXXX)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_range() { # four consecutive ports free on both addresses
  python3 - <<'PY'
import random, socket
while True:
    start = random.randrange(20000, 32000)
    try:
        held = [socket.create_server((ip, p)) for ip in ("127.0.0.2", "127.0.0.3") for p in range(start, start + 4)]
    except OSError:
        continue
    for s in held:
        s.close()
    print(f"{start}-{start + 3}")
    break
PY
}
range="$(free_range)"
port=21210
db="sqlite://$work/directory.db"
head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$work/password"
password="$(cat "$work/password")"
WHARF_DATA_DIR="$work/setup" WHARF_DATABASE_URL="$db" "$bin" tenant add bench >/dev/null
WHARF_DATA_DIR="$work/setup" WHARF_DATABASE_URL="$db" "$bin" user add u@bench --password-file "$work/password" >/dev/null

start_replica() { # name ip [extra VAR=value ...]
  local name="$1" ip="$2"
  shift 2
  env WHARF_DATA_DIR="$work/$name" WHARF_DATABASE_URL="$db" WHARF_LOG__FILTER=warn \
    WHARF_FTP__EXPLICIT_LISTEN="$ip:$port" WHARF_FTP__IMPLICIT_LISTEN="$ip:0" \
    WHARF_FTP__PASSIVE_MODE=shared WHARF_FTP__PASSIVE_PORTS="$range" \
    WHARF_FTP__PASSIVE_RELAY__LISTEN="$ip:0" WHARF_FTP__PASSIVE_RELAY__TRUSTED='["127.0.0.0/8"]' \
    "$@" "$bin" serve >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/$ip/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  cat "$work/$name.log" >&2
  echo "replica $name did not start" >&2
  exit 1
}
start_replica a 127.0.0.2 WHARF_FTP__PASSIVE_ADDRESS=127.0.0.3
start_replica b 127.0.0.3

head -c "$((SIZE_MIB << 20))" /dev/urandom >"$work/source.bin"
curl_ftp() { # host path curl-args...: prints the speed curl measured, in bytes/s
  local host="$1" path="$2"
  shift 2
  curl -sS --ssl-reqd -k --disable-epsv --no-ftp-skip-pasv-ip --user "u@bench:$password" "$@" \
    "ftp://$host:$port/$path"
}
results="$work/results.txt"
for round in $(seq "$ROUNDS"); do
  for mode in relayed direct; do
    case "$mode" in relayed) host=127.0.0.2 store=a ;; direct) host=127.0.0.3 store=b ;; esac
    name="r$round-$mode.bin"
    up="$(curl_ftp "$host" "$name" -T "$work/source.bin" -w '%{speed_upload}')"
    cmp -s "$work/source.bin" "$work/$store/storage/bench/$name" || { echo "$mode round $round: stored file differs" >&2; exit 1; }
    down="$(curl_ftp "$host" "$name" -o /dev/null -w '%{speed_download}')"
    rm -f "$work/$store/storage/bench/$name"
    echo "$mode $up $down" | tee -a "$results"
  done
done
grep -h "WARN\|ERROR" "$work/a.log" "$work/b.log" >&2 || true

python3 - "$results" "$SIZE_MIB" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
def col(mode, i):
    return [float(r[i]) / 1e6 for r in rows if r[0] == mode]
print(f"\n{sys.argv[2]} MiB per transfer, {len(col('direct', 1))} rounds; MB/s, median (runs)")
for i, what in ((1, "upload"), (2, "download")):
    relayed, direct = col("relayed", i), col("direct", i)
    mr, md = statistics.median(relayed), statistics.median(direct)
    runs = lambda xs: ", ".join(f"{x:.0f}" for x in xs)
    print(f"{what:9} relayed {mr:6.0f} ({runs(relayed)})   direct {md:6.0f} ({runs(direct)})   relayed/direct {mr / md:.2f}")
PY
