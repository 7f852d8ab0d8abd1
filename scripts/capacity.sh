#!/usr/bin/env bash
# Measures what one wharf instance holds on this machine, for deploy/CAPACITY.md:
#   - idle logged-in FTPS sessions: server RSS per session, threads, open files, NOOP latency while held
#     (scripts/idle_sessions.py, Python ftplib FTP_TLS clients);
#   - aggregate upload and download throughput of K parallel curl clients (curl --ssl-reqd, PROT P, each
#     data connection resuming the control connection's TLS session as wharf requires by default).
#
#     scripts/capacity.sh                       # defaults below; about 5 minutes after the build
#     SESSIONS="500 1000" ROUNDS=1 PARALLEL="1 4" SIZE_MIB=64 scripts/capacity.sh   # a quick check
#
# wharf runs as its own process from the release binary, on the embedded default (SQLite directory, fs
# storage with fsync, self-signed certificate) in a temporary folder on loopback, configured only by
# environment: ephemeral ports, passive ports chosen by the OS, and session limits raised above the
# largest N (the default 64 per client address would refuse sessions that all come from 127.0.0.1).
# Everything else is the default (argon2id m=19 MiB t=2, strict TLS policy). Clients run on the same
# machine and share its cores with the server. Results: one JSON line per measurement in $OUT (default
# a new temporary folder), and a summary with the median of the rounds on stdout.
set -Eeuo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SESSIONS="${SESSIONS:-1000 2000}"
PARALLEL="${PARALLEL:-1 4 16}"
ROUNDS="${ROUNDS:-3}"
SIZE_MIB="${SIZE_MIB:-256}"
OUT="${OUT:-$(mktemp -d -t wharf-capacity.XXXXXX)}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
bin="${WHARF_BIN:-$CARGO_TARGET_DIR/release/wharf}"
mkdir -p "$OUT"

if [ -z "${WHARF_BIN:-}" ]; then
  (cd "$root" && cargo build --release --locked --bin wharf)
fi
# wharf reads every WHARF_* variable as configuration and refuses unknown ones: keep ours out of its way.
unset WHARF_BIN
max=0; for n in $SESSIONS; do [ "$n" -gt "$max" ] && max=$n; done
ulimit -n "$(ulimit -Hn)" # the clients hold one socket per session, the server one more

work="$(mktemp -d -t wharf-capacity-run.XXXXXX)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port="$(free_port)"
export WHARF_DATA_DIR="$work/data" \
  WHARF_FTP__EXPLICIT_LISTEN="127.0.0.1:$port" WHARF_FTP__IMPLICIT_LISTEN="127.0.0.1:0" \
  WHARF_FTP__PASSIVE_PORTS=0-0 WHARF_FTP__MAX_SESSIONS=$((max + 100)) \
  WHARF_FTP__MAX_SESSIONS_PER_IP=$((max + 100)) WHARF_LOG__FILTER=warn
unset WHARF_CONFIG WHARF_DATABASE_URL
head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$work/password"
"$bin" tenant add bench >/dev/null
"$bin" user add u@bench --password-file "$work/password" >/dev/null
# A fresh server for every idle-session measurement, so each starts from the same baseline (a server that
# held sessions before keeps some of that memory in its allocator).
pid=
start_server() {
  "$bin" serve >"$work/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$pid" || { cat "$work/serve.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "wharf did not start" >&2; exit 1
}
stop_server() { [ -z "$pid" ] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; }; }
cleanup() { stop_server; rm -rf "$work"; }
trap cleanup EXIT

echo "$("$bin" version) on 127.0.0.1:$port; $(nproc) cores; results in $OUT" >&2
# Idle sessions: each measurement starts wharf, opens N sessions, holds them, NOOPs each once, closes them.
for round in $(seq "$ROUNDS"); do
  for n in $SESSIONS; do
    echo "round $round: $n idle sessions" >&2
    start_server
    sleep 1 # the baseline after start-up work (migrations, certificate) has settled
    python3 "$root/scripts/idle_sessions.py" --port "$port" --user u@bench --password-file "$work/password" \
      --sessions "$n" --pid "$pid" | sed "s/^{/{\"round\": $round, /" >>"$OUT/idle.jsonl"
    stop_server
  done
done

start_server
# Throughput: K curl clients at once, each one file of SIZE_MIB up, then the same files down.
src="/dev/shm/wharf-capacity-$$.bin"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$src"
trap 'rm -f "$src"; cleanup' EXIT
pw="$(cat "$work/password")"
url="ftp://127.0.0.1:$port"
curl_ftps() { curl -sS --fail --ssl-reqd -k --user "u@bench:$pw" "$@"; }
for round in $(seq "$ROUNDS"); do
  for k in $PARALLEL; do
    echo "round $round: $k parallel uploads and downloads of $SIZE_MIB MiB" >&2
    t0=$(date +%s.%N)
    for i in $(seq "$k"); do curl_ftps -T "$src" "$url/f$i.bin" & done
    wait_all() { local ok=0; for j in $(jobs -p); do [ "$j" = "$pid" ] && continue; wait "$j" || ok=1; done; return $ok; }
    wait_all || { echo "an upload failed" >&2; exit 1; }
    t1=$(date +%s.%N)
    for i in $(seq "$k"); do curl_ftps -o /dev/null "$url/f$i.bin" & done
    wait_all || { echo "a download failed" >&2; exit 1; }
    t2=$(date +%s.%N)
    for i in $(seq "$k"); do cmp -s "$src" "$WHARF_DATA_DIR/storage/bench/f$i.bin" || { echo "f$i.bin differs" >&2; exit 1; }; done
    rm -f "$WHARF_DATA_DIR"/storage/bench/f*.bin
    python3 - "$round" "$k" "$SIZE_MIB" "$t0" "$t1" "$t2" >>"$OUT/throughput.jsonl" <<'PY'
import json, sys
r, k, mib, t0, t1, t2 = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), *map(float, sys.argv[4:])
total = k * mib * 1024 * 1024
print(json.dumps({"round": r, "parallel": k, "size_mib": mib,
                  "upload_mb_s": round(total / (t1 - t0) / 1e6, 1), "download_mb_s": round(total / (t2 - t1) / 1e6, 1)}))
PY
  done
done
# Usage recorded by wharf must match: the files were removed behind its back, so only the check above counts.

python3 - "$OUT" <<'PY'
import json, statistics, sys
from collections import defaultdict
out = sys.argv[1]
def med(xs): return statistics.median(xs)
idle = defaultdict(list)
for line in open(f"{out}/idle.jsonl"):
    d = json.loads(line); idle[d["sessions_requested"]].append(d)
print("idle sessions (median of rounds; runs in brackets)")
print(f"{'N':>6} {'held':>6} {'err':>4} {'KiB/session':>22} {'RSS held MiB':>13} {'threads':>8} {'fds':>6} {'logins/s':>18} {'NOOP p50 ms':>12} {'NOOP p99 ms':>12}")
for n in sorted(idle):
    rs = idle[n]
    per = [r["rss_per_session_kib"] for r in rs]
    lps = [r["logins_per_sec"] for r in rs]
    print(f"{n:>6} {med([r['sessions_held'] for r in rs]):>6} {sum(r['errors'] for r in rs):>4} "
          f"{med(per):>6} {str(per):>15} {med([r['rss_held_kib'] for r in rs])/1024:>13.1f} "
          f"{med([r['threads_held'] for r in rs]):>8} {med([r['fds_held'] for r in rs]):>6} "
          f"{med(lps):>6} {str(lps):>11} {med([r['noop_p50_ms'] for r in rs]):>12} {med([r['noop_p99_ms'] for r in rs]):>12}")
tp = defaultdict(list)
for line in open(f"{out}/throughput.jsonl"):
    d = json.loads(line); tp[d["parallel"]].append(d)
print("\nthroughput, K parallel curl clients (MB/s = 1e6 B/s, median of rounds; runs in brackets)")
for k in sorted(tp):
    up = [r["upload_mb_s"] for r in tp[k]]; down = [r["download_mb_s"] for r in tp[k]]
    print(f"K={k:<3} upload {med(up):>7} {up}   download {med(down):>7} {down}")
PY
