#!/usr/bin/env python3
"""Opens N logged-in FTPS sessions against one wharf and holds them, to measure what idle sessions cost.

    scripts/idle_sessions.py --port 2121 --user u@bench --password-file pw --sessions 1000 --pid 1234

Each session is a separate client: its own TCP connection and TLS context, AUTH TLS, USER, PASS, PBSZ 0,
PROT P (the path every real client takes). `--concurrency` logins run at once. Once all are in, it waits
`--settle` seconds, reads the server's VmRSS, threads and open files from /proc/<pid>, then sends one NOOP
on every session (one after another) and times each round trip, then closes them all. Prints one JSON
object on stdout; progress goes to stderr.
"""
import argparse
import json
import os
import ssl
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from ftplib import FTP_TLS


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return {
        "rss_kib": int(fields["VmRSS"].split()[0]),
        "threads": int(fields["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


def login(host, port, user, password, timeout):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # wharf's embedded default is a self-signed certificate
    ftp = FTP_TLS(context=ctx, timeout=timeout)
    started = time.perf_counter()
    ftp.connect(host, port)
    ftp.login(user, password)  # AUTH TLS first, then USER/PASS
    ftp.prot_p()  # PBSZ 0, PROT P
    return ftp, time.perf_counter() - started


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password-file", required=True)
    ap.add_argument("--sessions", type=int, required=True)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--pid", type=int, required=True, help="the wharf server's process id")
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    password = open(args.password_file).read().strip()

    before = proc_status(args.pid)
    sessions, login_secs, errors = [], [], []
    started = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool:
        futures = [pool.submit(login, args.host, args.port, args.user, password, args.timeout)
                   for _ in range(args.sessions)]
        for i, fut in enumerate(futures, 1):
            try:
                ftp, secs = fut.result()
                sessions.append(ftp)
                login_secs.append(secs)
            except Exception as e:  # noqa: BLE001 - counted and reported
                errors.append(repr(e))
            if i % 250 == 0:
                print(f"  {i}/{args.sessions} logins", file=sys.stderr)
    login_wall = time.perf_counter() - started
    time.sleep(args.settle)
    held = proc_status(args.pid)

    noop_ms = []
    for ftp in sessions:
        t = time.perf_counter()
        try:
            ftp.voidcmd("NOOP")
            noop_ms.append((time.perf_counter() - t) * 1000)
        except Exception as e:  # noqa: BLE001
            errors.append("NOOP: " + repr(e))
    for ftp in sessions:
        try:
            ftp.close()
        except Exception:  # noqa: BLE001
            pass

    n = len(sessions)
    q = statistics.quantiles(noop_ms, n=100) if len(noop_ms) >= 2 else [float("nan")] * 99
    print(json.dumps({
        "sessions_requested": args.sessions,
        "sessions_held": n,
        "errors": len(errors),
        "first_errors": errors[:3],
        "rss_before_kib": before["rss_kib"],
        "rss_held_kib": held["rss_kib"],
        "rss_per_session_kib": round((held["rss_kib"] - before["rss_kib"]) / n, 1) if n else None,
        "threads_held": held["threads"],
        "fds_held": held["fds"],
        "logins_per_sec": round(n / login_wall, 1),
        "login_p50_ms": round(statistics.median(login_secs) * 1000, 1) if login_secs else None,
        "noop_p50_ms": round(q[49], 2),
        "noop_p99_ms": round(q[98], 2),
    }))
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
