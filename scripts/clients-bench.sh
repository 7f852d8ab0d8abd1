#!/usr/bin/env bash
# wharf against Debian's ProFTPD, both driven by the clients people use (curl, lftp, Python's ftplib),
# in one run on 127.0.0.1. Prints a markdown table (measurement | ProFTPD | wharf | wharf/ProFTPD) and
# writes it to $BENCH_OUT.
#
#     cargo build --release --bins                  # this script builds nothing
#     scripts/clients-bench.sh                      # 512 MiB, 3 rounds: about 21 minutes (most of it
#                                                   # ProFTPD answering 1,200 curl runs at ~0.6 s each)
#     QUICK=1 scripts/clients-bench.sh              # 64 MiB, 1 round, fewer of everything: about 80 s
#
# Both servers run at once, each with TLS required on control and data connections (TLS 1.2 and 1.3)
# and data connections that must resume the control connection's TLS session:
#   - wharf: the release binary, configured only by environment (as benches/ftps/wharf.rs does): one
#     tenant `bench`, one user `u@bench`, fs backend with fsync, passive ports from the OS, 512 sessions
#     per IP; everything else its defaults.
#   - ProFTPD: `proftpd -n -c` with scripts/proftpd-bench.conf.in filled in (mod_tls, a self-signed
#     ECDSA certificate, 400 passive ports, one virtual user jailed in its folder, no fsync, as Debian
#     ships it).
# Each measurement runs on both servers back to back; the order flips every round. The driver,
# scripts/clients_bench.py, says what each row measures.
#
# Settings (environment):
#   WHARF_BIN            the wharf binary (default target/release/wharf)
#   BENCH_OUT            where the table goes (default /tmp/clients-bench.md)
#   BENCH_SIZE_MIB       size of the big file (default 512; QUICK: 64)
#   BENCH_ROUNDS         rounds (default 3; QUICK: 1)
#   BENCH_SMALL_FILES    4 KiB files per small-file measurement (default 1000; QUICK: 200)
#   BENCH_LOGIN_SECS     seconds of the login loop (default 10; QUICK: 3)
#   BENCH_TINY           1-byte curl transfers each way (default 200; QUICK: 20)
#   BENCH_IDLE_SESSIONS  idle sessions for the memory measurement (default 200; QUICK: 100)
#   BENCH_DIR            where the temporary folder goes (default $TMPDIR or /tmp); it must be on the disk
#                        you want to measure, not a tmpfs
#   BENCH_KEEP=1         keep the temporary folder (logs, stored files) instead of deleting it
#   BENCH_PROFTPD_TLS_OPTIONS  a TLSOptions line for ProFTPD, e.g. "TLSOptions NoSessionReuseRequired"
# S3 part (optional, after the rest): with WHARF_BENCH_S3_ENDPOINT, WHARF_BENCH_S3_BUCKET,
# AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION set (eval "$(scripts/garage.sh DIR)" gives them),
# a second wharf on the S3 backend is measured with ftplib against boto3 doing the same transfers
# directly. boto3 is installed with pip if missing.
set -Eeuo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() { echo "clients-bench: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: ProFTPD must start as root to switch to its session user"

# The tools; installed from Debian's archive when missing.
missing=()
command -v proftpd >/dev/null || missing+=(proftpd-core)
[ -e /usr/lib/proftpd/mod_tls.so ] || missing+=(proftpd-mod-crypto)
command -v lftp >/dev/null || missing+=(lftp)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
command -v python3 >/dev/null || missing+=(python3)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "clients-bench: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; then
    apt-get update >/dev/null
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
  fi
fi
[ -e /usr/lib/proftpd/mod_tls.so ] || die "/usr/lib/proftpd/mod_tls.so is missing after installing proftpd-mod-crypto"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 8))' || die "python3 is older than 3.8"

bin="${WHARF_BIN:-$root/target/release/wharf}"
case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
[ -x "$bin" ] || die "no wharf binary at $bin: run 'cargo build --release --bins' first, or set WHARF_BIN"
export WHARF_BIN="$bin"

base="${BENCH_DIR:-${TMPDIR:-/tmp}}"
work="$(mktemp -d "$base/wharf-clients-bench.XXXXXX")"
driver=""
ours() { # PID still leads its own process group and runs wharf, proftpd or the driver's helper
  local line
  line="$(ps -o pgid=,args= -p "$1" 2>/dev/null)" || return 1
  [[ "$line" =~ ^\ *$1\ .*(wharf|proftpd|clients_bench) ]]
}
cleanup() {
  local status=$?
  set +e
  trap - EXIT INT TERM
  if [ -n "$driver" ]; then
    kill "$driver" 2>/dev/null
    wait "$driver" 2>/dev/null
  fi
  # Every server the driver started is the leader of its own process group (ProFTPD's session
  # processes are in it too); the driver appends each one to $work/pids. A group is signalled only
  # while its leader is still one of ours, so a number the kernel has handed on is left alone.
  if [ -f "$work/pids" ]; then
    local pid pass
    for pass in TERM KILL; do
      while read -r pid; do
        ours "$pid" && kill "-$pass" -- "-$pid" 2>/dev/null
      done <"$work/pids"
      [ "$pass" = TERM ] && sleep 0.5
    done
  fi
  if [ "${BENCH_KEEP:-0}" = 1 ]; then
    echo "clients-bench: kept $work" >&2
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

python3 "$root/scripts/clients_bench.py" --work "$work" &
driver=$!
status=0
wait "$driver" || status=$?
driver=""
exit "$status"
