#!/usr/bin/env python3
"""The clients benchmark: wharf and Debian's ProFTPD driven by curl, lftp and Python's ftplib, in one run.

Started by scripts/clients-bench.sh, which checks the tools, makes the work folder and kills whatever
this driver started if it dies. Run on its own:

    WHARF_BIN=target/release/wharf python3 scripts/clients_bench.py --work /tmp/some-empty-folder

Both servers run at once on 127.0.0.1, with TLS required on control and data connections and data
connections that must resume the control connection's TLS session. Every measurement is taken on both
servers back to back, in an order that flips every round, so drift on a shared machine hits both. The
settings (all from the environment) are described in scripts/clients-bench.sh.

Stock ftplib.FTP_TLS wraps each data connection in a fresh TLS session, which both servers refuse (wharf
with 522, ProFTPD with 425), so the ftplib client here is FTP_TLS with one change: the data connection
presents the control connection's session (`session=` of SSLContext.wrap_socket). The bench checks once per
server that the stock class is refused and reports it.
"""

import ftplib
import hashlib
import io
import math
import multiprocessing as mp
import os
import platform
import random
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

MIB = 1024 * 1024
MB = 1_000_000
BLOCK = 256 * 1024  # ftplib's blocksize for storbinary/retrbinary, and the raw TLS stream's writes
PASSWORD = "bench-password"
REPO = Path(__file__).resolve().parent.parent


def env_int(name, default):
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """A failure with a message that says what to look at."""


# --------------------------------------------------------------------------------------------------------
# settings


class Settings:
    def __init__(self, work):
        quick = os.environ.get("QUICK", "") not in ("", "0")
        self.quick = quick
        self.work = Path(work).resolve()
        self.size_mib = env_int("BENCH_SIZE_MIB", 64 if quick else 512)
        self.rounds = env_int("BENCH_ROUNDS", 1 if quick else 3)
        self.small_files = env_int("BENCH_SMALL_FILES", 200 if quick else 1000)
        self.small_sessions = 4
        self.login_secs = float(env_int("BENCH_LOGIN_SECS", 3 if quick else 10))
        self.login_clients = 4
        self.tiny = env_int("BENCH_TINY", 20 if quick else 200)
        self.idle_sessions = env_int("BENCH_IDLE_SESSIONS", 100 if quick else 200)
        self.out = Path(os.environ.get("BENCH_OUT") or "/tmp/clients-bench.md")
        self.wharf_bin = Path(os.environ.get("WHARF_BIN") or REPO / "target/release/wharf").resolve()
        self.s3 = {
            "endpoint": os.environ.get("WHARF_BENCH_S3_ENDPOINT", ""),
            "bucket": os.environ.get("WHARF_BENCH_S3_BUCKET", ""),
            "region": os.environ.get("AWS_REGION", "") or os.environ.get("AWS_DEFAULT_REGION", ""),
        }
        self.s3_enabled = bool(
            self.s3["endpoint"] and self.s3["bucket"] and self.s3["region"]
            and os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")
        )
        if self.size_mib < 1 or self.rounds < 1 or self.small_files < self.small_sessions:
            raise BenchError("BENCH_SIZE_MIB and BENCH_ROUNDS must be >= 1, BENCH_SMALL_FILES >= 4")

    @property
    def size(self):
        return self.size_mib * MIB


# --------------------------------------------------------------------------------------------------------
# processes the bench starts: each in its own process group, listed in WORK/pids for the shell's trap


class Processes:
    def __init__(self, work):
        self.file = work / "pids"
        self.children = []

    def start(self, argv, **kwargs):
        child = subprocess.Popen(argv, start_new_session=True, **kwargs)
        self.children.append(child)
        with open(self.file, "a") as f:
            f.write(f"{child.pid}\n")
        return child

    def stop_all(self):
        for child in self.children:
            if child.poll() is None:
                try:
                    os.killpg(child.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for child in self.children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(child.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                child.wait()


def port_is_free(port, host="127.0.0.1"):
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_range(count):
    """`count` consecutive ports free now, below the kernel's ephemeral range so that no client socket
    (or its TIME_WAIT) lands in it during the run."""
    low, _ = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    top = min(low, 65535) - count
    if top < 10000:
        raise BenchError(f"no room for {count} passive ports below the ephemeral range (starts at {low})")
    rng = random.Random()
    for _ in range(200):
        first = rng.randrange(10000, top)
        if all(port_is_free(p) for p in range(first, first + count)):
            return first, first + count - 1
    raise BenchError(f"found no {count} consecutive free ports between 10000 and {top}")


def wait_for_banner(host, port, child, what, log_path, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise BenchError(f"{what} exited with {child.returncode}; see {log_path}")
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                if s.recv(100).startswith(b"220"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchError(f"{what} did not greet on {host}:{port} within {timeout:.0f} s; see {log_path}")


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise BenchError(f"no Pss in /proc/{pid}/smaps_rollup")


def children_of(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The second field (comm) is in parentheses and may hold spaces; the ppid is the 2nd after it.
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MIB):
            h.update(chunk)
    return h.hexdigest()


def make_random_file(path, size):
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MIB)
            f.write(os.urandom(n))
            left -= n


def read_through(path):
    """Reads a file to its end so that it sits in the page cache."""
    with open(path, "rb") as f:
        while f.read(8 * MIB):
            pass


# --------------------------------------------------------------------------------------------------------
# the two servers


class Server:
    name = ""
    host = "127.0.0.1"
    port = 0
    user = ""
    root = Path()  # where the user's files land on disk
    child = None

    def stored(self, remote):
        return self.root / remote.lstrip("/")

    def start(self):
        raise NotImplementedError

    def ensure_running(self):
        """Starts the server again if something ended it (this machine may be shared); returns how it
        ended, or None when it was running."""
        code = self.child.poll()
        if code is None:
            return None
        self.start()
        return f"exit status {code}" if code >= 0 else f"signal {-code}"

    def session_pss_kib(self):
        raise NotImplementedError


def wharf_env(data_dir, extra=()):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_") and k != "RUST_LOG"}
    env.update({
        "WHARF_DATA_DIR": str(data_dir),
        "WHARF_FTP__EXPLICIT_LISTEN": "127.0.0.1:0",
        "WHARF_FTP__IMPLICIT_LISTEN": "127.0.0.1:0",
        "WHARF_FTP__PASSIVE_PORTS": "0-0",
        "WHARF_FTP__MAX_SESSIONS_PER_IP": "512",
    })
    env.update(dict(extra))
    return env


class Wharf(Server):
    def __init__(self, settings, procs, label="wharf", data_dir=None, extra_env=()):
        self.name = label
        self.user = "u@bench"
        self.data_dir = data_dir or settings.work / "wharf"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.root = self.data_dir / "storage" / "bench"
        self.log_path = self.data_dir / "wharf.log"
        binary = str(settings.wharf_bin)
        env = wharf_env(self.data_dir, extra_env)
        for argv, stdin in (([binary, "tenant", "add", "bench"], None),
                            ([binary, "user", "add", self.user, "--password-stdin"], PASSWORD)):
            done = subprocess.run(argv, env=env, input=stdin, text=True, capture_output=True, timeout=120)
            if done.returncode != 0:
                raise BenchError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
        self.procs, self.argv, self.env = procs, [binary, "serve"], env
        self.start()

    def start(self):
        self.child = self.procs.start(self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=open(self.log_path, "ab"), text=True)
        addr = self._read_address(self.child.stdout)
        # Keep draining stdout so that a later print can never block the server.
        threading.Thread(target=lambda out: [None for _ in out], args=(self.child.stdout,), daemon=True).start()
        self.host, port = addr.rsplit(":", 1)
        self.port = int(port)
        wait_for_banner(self.host, self.port, self.child, self.name, self.log_path)

    def _read_address(self, stdout):
        found = {}

        def reader():
            for line in stdout:
                m = re.search(r"explicit FTPS \(AUTH TLS\):\s*(\S+)", line)
                if m:
                    found["addr"] = m.group(1)
                    return

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        t.join(60)
        if "addr" not in found:
            raise BenchError(f"{self.name} printed no 'explicit FTPS (AUTH TLS):' line within 60 s "
                             f"(exit code {self.child.poll()}); see {self.log_path}")
        return found["addr"]

    def session_pss_kib(self):
        """The server's PSS: one process."""
        return pss_kib(self.child.pid), 0


class ProFTPD(Server):
    def __init__(self, settings, procs, cert, key):
        self.name = "ProFTPD"
        self.user = "bench"
        folder = settings.work / "proftpd"
        folder.mkdir(parents=True, exist_ok=True)
        self.root = folder / "root"
        self.root.mkdir(exist_ok=True)
        # Sessions run as nobody:nogroup (a uid with no login and no files of its own).
        os.chown(self.root, 65534, 65534)
        shutil.copy(cert, folder / "cert.pem")
        shutil.copy(key, folder / "key.pem")
        os.chmod(folder / "key.pem", 0o600)
        hashed = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=PASSWORD, text=True,
                                capture_output=True, check=True).stdout.strip()
        (folder / "passwd").write_text(f"{self.user}:{hashed}:65534:65534::{self.root}:/bin/false\n")
        (folder / "group").write_text("nogroup:x:65534:\n")
        for name in ("passwd", "group"):
            os.chmod(folder / name, 0o600)
        self.port = free_port()
        first, last = free_range(400)
        self.passive = (first, last)
        template = (REPO / "scripts" / "proftpd-bench.conf.in").read_text()
        values = {
            "DIR": str(folder), "PORT": str(self.port), "PASV_FIRST": str(first), "PASV_LAST": str(last),
            "IDLE_SESSIONS": str(settings.idle_sessions),
            "MAX_INSTANCES": str(max(1000, 2 * settings.idle_sessions)),
            "TLS_OPTIONS": os.environ.get("BENCH_PROFTPD_TLS_OPTIONS", ""),
        }
        conf = re.sub(r"@([A-Z_]+)@", lambda m: values[m.group(1)], template)
        conf_path = folder / "proftpd.conf"
        conf_path.write_text(conf)
        check = subprocess.run(["proftpd", "-t", "-c", str(conf_path)], capture_output=True, text=True)
        if check.returncode != 0:
            raise BenchError(f"proftpd -t rejected {conf_path}:\n{check.stdout}{check.stderr}")
        self.log_path = folder / "proftpd.stderr"
        self.procs, self.conf_path = procs, conf_path
        self.start()

    def start(self):
        if not port_is_free(self.port):
            raise BenchError(f"port {self.port} was taken before ProFTPD could start")
        self.child = self.procs.start(["proftpd", "-n", "-c", str(self.conf_path)], stdin=subprocess.DEVNULL,
                                      stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT)
        wait_for_banner(self.host, self.port, self.child, "ProFTPD", self.log_path)

    def session_pss_kib(self):
        """The master's PSS, and the sum over its children (one per session)."""
        kids = children_of(self.child.pid)
        total = 0
        for kid in kids:
            try:
                total += pss_kib(kid)
            except (OSError, BenchError):
                pass
        return pss_kib(self.child.pid), total


# --------------------------------------------------------------------------------------------------------
# Python ftplib


def client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # both servers use self-signed certificates
    return ctx


class ResumingFTP_TLS(ftplib.FTP_TLS):
    """ftplib.FTP_TLS with two changes. Its protected data connections offer the control connection's TLS
    session, which both servers demand (curl, lftp and FileZilla do it on their own). And its sockets set
    TCP_NODELAY before any TLS byte: with Nagle on, a data connection's last record and its close_notify
    alert wait for the server's delayed ACK (40 ms on Linux), so a stock client stores about 20 small
    files per second against any server, which would hide what the servers do. The rate with Nagle on is
    measured too (NagleFTP_TLS)."""

    nodelay = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.data_resumed = 0
        self.data_fresh = 0

    def connect(self, *args, **kwargs):
        welcome = super().connect(*args, **kwargs)
        if self.nodelay:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return welcome

    def ntransfercmd(self, cmd, rest=None):
        sock, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self.nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._prot_p:
            sock = self.context.wrap_socket(sock, server_hostname=self.host, session=self.sock.session)
            if sock.session_reused:
                self.data_resumed += 1
            else:
                self.data_fresh += 1
        return sock, size


class NagleFTP_TLS(ResumingFTP_TLS):
    """Session reuse only: the sockets as ftplib leaves them."""

    nodelay = False


def ftp_login(server, cls=ResumingFTP_TLS, timeout=120):
    ftp = cls(context=client_context(), timeout=timeout)
    ftp.connect(server.host, server.port)
    ftp.login(server.user, PASSWORD)  # AUTH TLS, USER, PASS
    ftp.prot_p()  # PBSZ 0, PROT P
    return ftp


def ftp_close(ftp):
    try:
        ftp.quit()
    except Exception:  # noqa: BLE001 - the session is done either way
        ftp.close()


def ftp_delete(server, names):
    ftp = ftp_login(server)
    try:
        for name in names:
            try:
                ftp.delete(name)
            except ftplib.error_perm:
                pass
    finally:
        ftp_close(ftp)


def ftp_mkdir(server, name):
    ftp = ftp_login(server)
    try:
        ftp.mkd(name)
    finally:
        ftp_close(ftp)


def ftp_put(server, local, remote):
    ftp = ftp_login(server)
    try:
        with open(local, "rb") as f:
            ftp.storbinary(f"STOR {remote}", f, blocksize=BLOCK)
    finally:
        ftp_close(ftp)


# --------------------------------------------------------------------------------------------------------
# running functions in parallel processes with a common start


def _worker(fn, arg, ready, go, results):
    try:
        state = fn("setup", arg, None)
        ready.put(("ok", None))
        go.wait()
        results.put(("ok", fn("run", arg, state)))
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        try:
            ready.put(("error", repr(e)))
        except Exception:  # noqa: BLE001
            pass
        results.put(("error", repr(e)))


def in_parallel(fn, args, timeout=900):
    """Runs fn("setup", arg, None) in one process per arg, then, once all are set up, fn("run", arg, state)
    in all at once. Returns the run results; raises if any process failed."""
    ctx = mp.get_context("fork")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_worker, args=(fn, a, ready, go, results), daemon=True) for a in args]
    for p in procs:
        p.start()
    errors = []
    try:
        for _ in procs:
            status, detail = ready.get(timeout=timeout)
            if status != "ok":
                errors.append(detail)
        go.set()
        out = []
        for _ in procs:
            status, value = results.get(timeout=timeout)
            if status == "ok":
                out.append(value)
            else:
                errors.append(value)
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
    if errors:
        raise BenchError("; ".join(sorted(set(errors))))
    return out


# --------------------------------------------------------------------------------------------------------
# the command-line clients


class Clients:
    def __init__(self, settings):
        self.settings = settings
        self.lftp_home = settings.work / "lftp-home"
        self.lftp_home.mkdir(exist_ok=True)

    def curl(self, server, args, timeout=900):
        argv = ["curl", "-q", "--silent", "--show-error", "--ssl-reqd", "--insecure",
                "--user", f"{server.user}:{PASSWORD}", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    def url(self, server, remote):
        return f"ftp://{server.host}:{server.port}/{remote.lstrip('/')}"

    def lftp(self, server, script, cwd=None, timeout=900):
        settings = ("set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 30; "
                    "set net:reconnect-interval-base 1; set ftp:ssl-force true; set ftp:ssl-protect-data true; "
                    "set ftp:ssl-protect-list true; set ssl:verify-certificate no; set xfer:clobber on")
        full = f"{settings}; open -u {server.user},{PASSWORD} ftp://{server.host}:{server.port}; {script}"
        env = dict(os.environ, HOME=str(self.lftp_home), LC_ALL="C.UTF-8")
        env.pop("LFTP_HOME", None)
        return subprocess.run(["lftp", "-c", full], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                              env=env, stdin=subprocess.DEVNULL)


def check_run(done, what):
    if done.returncode != 0:
        detail = (done.stderr or done.stdout or "").strip().splitlines()
        raise BenchError(f"{what} exited with {done.returncode}: {' | '.join(detail[-3:])}")
    return done


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


# --------------------------------------------------------------------------------------------------------
# the measurements


class Results:
    def __init__(self):
        self.values = {}  # key -> server name -> [value per round, None where it failed]
        self.errors = []  # (round, server, key, message)
        self.notes = {}  # server -> list of lines
        self.samples = {}  # ("steps", server, command) -> reply -> waits; ("resumed", server); "slow"

    def add(self, key, server, value):
        self.values.setdefault(key, {}).setdefault(server, []).append(value)

    def fail(self, rnd, key, server, message):
        self.add(key, server, None)
        self.errors.append((rnd, server, key, message))
        log(f"  FAILED {server} {key}: {message}")

    def note(self, server, line):
        self.notes.setdefault(server, [])
        if line not in self.notes[server]:
            self.notes[server].append(line)


class Bench:
    def __init__(self, settings, procs):
        self.s = settings
        self.procs = procs
        self.r = Results()
        self.clients = Clients(settings)
        self.src = settings.work / "src"
        self.src.mkdir(exist_ok=True)
        self.loads = []  # /proc/loadavg at the start of each round: other work on the machine shows here

    # ---- setup

    def prepare_sources(self):
        s = self.s
        log(f"writing source files ({s.size_mib} MiB x 2, {s.small_files} x 4 KiB)")
        self.big = [self.src / "big-a.bin", self.src / "big-b.bin"]
        for path in self.big:
            make_random_file(path, s.size)
        self.big_sha = sha256_file(self.big[0])
        self.small_dir = self.src / "small"
        self.small_dir.mkdir(exist_ok=True)
        self.small_names = [f"f{i:05d}.bin" for i in range(s.small_files)]
        self.small_data = {}
        for name in self.small_names:
            data = os.urandom(4096)
            (self.small_dir / name).write_bytes(data)
            self.small_data[name] = data
        self.nagle_files = min(100, s.small_files)
        self.one_byte = self.src / "one.bin"
        self.one_byte.write_bytes(b"x")

    def prepare_server(self, server):
        """What the download and per-transfer measurements read, stored once through ftplib and checked."""
        ftp_put(server, self.big[0], "down.bin")
        stored = server.stored("down.bin")
        if sha256_file(stored) != self.big_sha:
            raise BenchError(f"{server.name} stored down.bin with other bytes than were sent")
        read_through(stored)  # both servers then serve it from the page cache
        ftp_put(server, self.one_byte, "one.bin")
        for r in range(self.s.rounds):
            ftp_mkdir(server, f"tiny-{r}")
        # Stock ftplib (a fresh TLS session per data connection): expected to be refused by both.
        self.r.note(server.name, "stock ftplib.FTP_TLS (fresh TLS session on the data connection): "
                    + self.try_stock_ftplib(server))
        ftp = ftp_login(server)
        self.r.note(server.name, f"ftplib control connection: {ftp.sock.version()}, {ftp.sock.cipher()[0]}")
        ftp_close(ftp)

    def try_stock_ftplib(self, server):
        try:
            ftp = ftp_login(server, cls=ftplib.FTP_TLS, timeout=30)
        except Exception as e:  # noqa: BLE001
            return f"could not log in: {e!r}"
        try:
            ftp.storbinary("STOR stock-ftplib.bin", io.BytesIO(b"stock"))
            return "accepted"
        except ftplib.Error as e:
            return f"refused with `{str(e).strip()}`"
        except (OSError, ssl.SSLError) as e:
            # The server may end the refused data connection's handshake before the reply is read.
            try:
                reply = ftp.getresp()
            except Exception as e2:  # noqa: BLE001
                reply = str(e2).strip()
            return f"refused: the data connection's TLS handshake failed ({type(e).__name__}), then `{reply}`"
        finally:
            ftp.close()

    # ---- helpers

    def verify_upload(self, server, remote, local, expected_size, check_hash):
        stored = server.stored(remote)
        size = stored.stat().st_size if stored.exists() else None
        if size != expected_size:
            raise BenchError(f"stored {remote} has {size} bytes, sent {expected_size}")
        if check_hash:
            if sha256_file(stored) != sha256_file(local):
                raise BenchError(f"stored {remote} differs from the source (SHA-256)")
            self.r.note(server.name, f"SHA-256 of {remote} as stored equals the source's")

    def measure(self, rnd, key, server, fn):
        # ProFTPD's master accepts no connection for ~200 ms around a session's start and end; the
        # bench's own sessions (deleting, creating folders) must not leave that on the next measurement.
        time.sleep(0.5)
        try:
            value = fn()
        except subprocess.TimeoutExpired as e:
            self.r.fail(rnd, key, server.name, f"timed out after {e.timeout:.0f} s")
            return
        except Exception as e:  # noqa: BLE001 - every failure is reported in the output
            self.r.fail(rnd, key, server.name, str(e) if isinstance(e, BenchError) else repr(e))
            return
        self.r.add(key, server.name, value)

    # ---- 1. uploads

    def upload_with(self, server, rnd, tag, label, run):
        """One upload of the big file by an external client; `run(remote)` runs it and returns its result."""
        remote = f"up-{tag}-{rnd}.bin"
        secs, done = timed(lambda: run(remote))
        check_run(done, label)
        self.verify_upload(server, remote, self.big[0], self.s.size, rnd == 0)
        ftp_delete(server, [remote])
        return self.s.size / secs / MB

    def upload_curl(self, server, rnd):
        return self.upload_with(server, rnd, "curl", "curl upload",
                                lambda remote: self.clients.curl(server, ["-T", str(self.big[0]), self.clients.url(server, remote)]))

    def upload_lftp(self, server, rnd):
        return self.upload_with(server, rnd, "lftp", "lftp put",
                                lambda remote: self.clients.lftp(server, f"put {self.big[0]} -o {remote}"))

    def upload_ftplib(self, server, rnd):
        remote = f"up-py-{rnd}.bin"
        ftp = ftp_login(server)
        try:
            with open(self.big[0], "rb") as f:
                secs, _ = timed(lambda: ftp.storbinary(f"STOR {remote}", f, blocksize=BLOCK))
            self.count_resumed(server, ftp)
        finally:
            ftp_close(ftp)
        self.verify_upload(server, remote, self.big[0], self.s.size, rnd == 0)
        ftp_delete(server, [remote])
        return self.s.size / secs / MB

    def count_resumed(self, server, ftp):
        key = ("resumed", server.name)
        resumed, fresh = self.r.samples.get(key, (0, 0))
        self.r.samples[key] = (resumed + ftp.data_resumed, fresh + ftp.data_fresh)

    # ---- 2. two uploads at once

    def upload_two(self, server, rnd):
        names = [f"up-par-{rnd}-{i}.bin" for i in range(2)]

        def job(phase, arg, state):
            local, remote = arg
            if phase == "setup":
                return ftp_login(server)
            ftp = state
            with open(local, "rb") as f:
                start = time.perf_counter()
                ftp.storbinary(f"STOR {remote}", f, blocksize=BLOCK)
                end = time.perf_counter()
            ftp_close(ftp)
            return start, end

        spans = in_parallel(job, list(zip(self.big, names)))
        secs = max(e for _, e in spans) - min(s for s, _ in spans)
        for local, remote in zip(self.big, names):
            self.verify_upload(server, remote, local, self.s.size, False)
        ftp_delete(server, names)
        return 2 * self.s.size / secs / MB

    # ---- 3. downloads (of down.bin, which both servers have in the page cache)

    def download_curl(self, server, rnd):
        secs, done = timed(lambda: self.clients.curl(
            server, ["-o", "/dev/null", "-w", "%{size_download}", self.clients.url(server, "down.bin")]))
        check_run(done, "curl download")
        if int(float(done.stdout.strip() or 0)) != self.s.size:
            raise BenchError(f"curl received {done.stdout.strip()} bytes, expected {self.s.size}")
        return self.s.size / secs / MB

    def download_lftp(self, server, rnd):
        secs, done = timed(lambda: self.clients.lftp(server, "get down.bin -o /dev/null"))
        check_run(done, "lftp get")
        return self.s.size / secs / MB

    def download_ftplib(self, server, rnd):
        ftp = ftp_login(server)
        received = [0]

        def sink(chunk):
            received[0] += len(chunk)

        try:
            secs, _ = timed(lambda: ftp.retrbinary("RETR down.bin", sink, blocksize=BLOCK))
            self.count_resumed(server, ftp)
        finally:
            ftp_close(ftp)
        if received[0] != self.s.size:
            raise BenchError(f"ftplib received {received[0]} bytes, expected {self.s.size}")
        return self.s.size / secs / MB

    # ---- 4. small files

    def verify_small(self, server, folder, names):
        missing = [n for n in names if not server.stored(f"{folder}/{n}").is_file()]
        if missing:
            raise BenchError(f"{len(missing)} of {len(names)} small files missing in {folder}, e.g. {missing[0]}")
        wrong = [n for n in names if server.stored(f"{folder}/{n}").read_bytes() != self.small_data[n]]
        if wrong:
            raise BenchError(f"{len(wrong)} small files in {folder} differ from their source, e.g. {wrong[0]}")

    def small_ftplib(self, server, rnd, sessions, cls=ResumingFTP_TLS, count=None):
        names_all = self.small_names[:count] if count else self.small_names
        folder = f"small-{'nagle' if cls is NagleFTP_TLS else 'py'}{sessions}-{rnd}"
        ftp_mkdir(server, folder)
        shares = [names_all[i::sessions] for i in range(sessions)]
        data = self.small_data

        def job(phase, names, state):
            if phase == "setup":
                ftp = ftp_login(server, cls)
                ftp.cwd(folder)
                return ftp
            ftp = state
            start = time.perf_counter()
            for name in names:
                ftp.storbinary(f"STOR {name}", io.BytesIO(data[name]), blocksize=BLOCK)
            end = time.perf_counter()
            ftp_close(ftp)
            return start, end

        spans = in_parallel(job, shares)
        secs = max(s[1] for s in spans) - min(s[0] for s in spans)
        self.verify_small(server, folder, names_all)
        return len(names_all) / secs

    def small_lftp(self, server, rnd):
        folder = f"small-lftp-{rnd}"
        secs, done = timed(lambda: self.clients.lftp(
            server, f"mkdir {folder}; cd {folder}; lcd {self.small_dir}; mput *", timeout=1800))
        check_run(done, "lftp mput")
        self.verify_small(server, folder, self.small_names)
        return len(self.small_names) / secs

    # ---- 5. logins

    def logins(self, server, rnd):
        duration = self.s.login_secs

        def job(phase, arg, state):
            if phase == "setup":
                return None
            latencies = []
            deadline = time.perf_counter() + duration
            start = time.perf_counter()
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                ftp = ResumingFTP_TLS(context=client_context(), timeout=60)
                ftp.connect(server.host, server.port)
                ftp.login(server.user, PASSWORD)  # AUTH TLS, USER, PASS -> 230
                latencies.append(time.perf_counter() - t)
                ftp_close(ftp)
            return start, time.perf_counter(), latencies

        spans = in_parallel(job, range(self.s.login_clients))
        secs = max(s[1] for s in spans) - min(s[0] for s in spans)
        latencies = sorted(x for s in spans for x in s[2])
        self.r.add("login_p50", server.name, percentile(latencies, 50) * 1000)
        self.r.add("login_p99", server.name, percentile(latencies, 99) * 1000)
        return len(latencies) / secs

    # ---- 6. curl per-transfer overhead

    CURL_TIMES = "%{time_connect} %{time_appconnect} %{time_pretransfer} %{time_starttransfer} %{time_total}\\n"

    def tiny(self, server, rnd, kind):
        """`tiny` curl processes, one 1-byte STOR or RETR each. curl's -w timers are unusable past the
        total for FTP (the data connection overwrites time_connect, and time_appconnect is not the control
        connection's), so the control connection's TLS handshake and every reply's wait come from
        --trace-ascii with --trace-time."""
        traces = self.s.work / "traces" / f"{server.name}-{kind}-{rnd}"
        traces.mkdir(parents=True, exist_ok=True)
        totals, beyond = [], []
        for i in range(self.s.tiny):
            if kind == "STOR":
                args = ["-T", str(self.one_byte), self.clients.url(server, f"tiny-{rnd}/t{i:04d}.bin")]
            else:
                args = ["-o", "/dev/null", self.clients.url(server, "one.bin")]
            trace = traces / f"{i:04d}.txt"
            done = check_run(self.clients.curl(
                server, ["-w", self.CURL_TIMES, "--trace-ascii", str(trace), "--trace-time", *args], timeout=60),
                f"curl {kind}")
            total = float(done.stdout.split()[4])
            tls_done, steps, gap = curl_trace_steps(trace)
            totals.append(total * 1000)
            beyond.append((total - tls_done) * 1000)
            bucket = self.r.samples.setdefault(("steps", server.name, kind), {})
            after_tls = 0.0
            for step, secs in steps:
                bucket.setdefault(step, []).append(secs * 1000)
                if not step.startswith(("connect", "AUTH")):
                    after_tls += secs
            bucket.setdefault("(rest: curl's own work, the data handshake and bytes)", []).append(
                max(0.0, total - tls_done - after_tls) * 1000)
            if beyond[-1] > 100:
                self.r.samples.setdefault("slow", []).append(
                    (server.name, kind, rnd + 1, i, total * 1000, beyond[-1], gap[0] * 1000, gap[1], gap[2]))
        if kind == "STOR":
            names = [f"t{i:04d}.bin" for i in range(self.s.tiny)]
            missing = [n for n in names if not server.stored(f"tiny-{rnd}/{n}").is_file()]
            if missing:
                raise BenchError(f"{len(missing)} of {len(names)} 1-byte uploads missing")
        totals.sort()
        beyond.sort()
        k = kind.lower()
        self.r.add(f"tiny_{k}_total_p99", server.name, percentile(totals, 99))
        self.r.add(f"tiny_{k}_beyond_p50", server.name, percentile(beyond, 50))
        self.r.add(f"tiny_{k}_beyond_p99", server.name, percentile(beyond, 99))
        self.r.add(f"tiny_{k}_slow", server.name, sum(1 for b in beyond if b > 100))
        return percentile(totals, 50)

    # ---- 7. idle sessions

    def idle_memory(self, server, rnd):
        n = self.s.idle_sessions
        master_before, kids_before = server.session_pss_kib()
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(ftp_login, server, ResumingFTP_TLS, 60) for _ in range(n)]
            sessions, errors = [], []
            for f in futures:
                try:
                    sessions.append(f.result())
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))
        try:
            if errors:
                raise BenchError(f"{len(errors)} of {n} idle sessions failed to log in: {errors[0]}")
            time.sleep(1.0)
            master_after, kids_after = server.session_pss_kib()
        finally:
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(ftp_close, sessions))
        if isinstance(server, ProFTPD):
            self.r.add("idle_master", server.name, (master_after - master_before) / n)
            return (kids_after - kids_before) / n
        return (master_after - master_before) / n

    # ---- 8. references

    def raw_tls(self, cert, key):
        """One TLS stream over loopback between two Python processes (OpenSSL both ends), the size of one
        big file each way: what TLS itself costs on this machine for a client written like ftplib."""
        server = self.procs.start([sys.executable, __file__, "raw-tls-server", str(cert), str(key)],
                                  stdout=subprocess.PIPE, text=True)
        port = int(server.stdout.readline())
        up = down = None
        try:
            for direction in ("up", "down"):
                with socket.create_connection(("127.0.0.1", port)) as raw:
                    tls = client_context().wrap_socket(raw)
                    tls.sendall(f"{direction} {self.s.size} {self.big[0]}\n".encode())
                    start = time.perf_counter()
                    buf = memoryview(bytearray(BLOCK))
                    if direction == "up":
                        with open(self.big[0], "rb") as f:
                            while n := f.readinto(buf):
                                tls.sendall(buf[:n])
                        if tls.recv(16) != b"done":
                            raise BenchError("raw TLS server did not confirm the bytes")
                        up = self.s.size / (time.perf_counter() - start) / MB
                    else:
                        got = 0
                        while got < self.s.size:
                            n = tls.recv_into(buf)
                            if not n:
                                break
                            got += n
                        down = self.s.size / (time.perf_counter() - start) / MB
                        if got != self.s.size:
                            raise BenchError(f"raw TLS down: {got} bytes of {self.s.size}")
                    self.raw_tls_suite = f"{tls.version()}, {tls.cipher()[0]}"
                    tls.close()
        finally:
            server.terminate()
            server.wait(5)
        return up, down

    def disk(self):
        target = self.s.work / "dd.bench"
        start = time.perf_counter()
        subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={self.s.size_mib}",
                        "conv=fdatasync"], check=True, capture_output=True)
        secs = time.perf_counter() - start
        target.unlink()
        return self.s.size / secs / MB

    # ---- the run

    def round(self, rnd, servers, cert, key):
        order = servers if rnd % 2 == 0 else servers[::-1]
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        self.loads.append(load)
        log(f"round {rnd + 1}/{self.s.rounds}: order {', '.join(s.name for s in order)}; load average {load}")
        try:
            up, down = self.raw_tls(cert, key)
            self.r.add("ref_tls_up", "ref", up)
            self.r.add("ref_tls_down", "ref", down)
        except Exception as e:  # noqa: BLE001
            self.r.fail(rnd, "ref_tls_up", "ref", repr(e))
        self.measure_ref(rnd, "ref_dd", self.disk)
        steps = [
            ("up_curl", lambda sv: self.upload_curl(sv, rnd)),
            ("up_lftp", lambda sv: self.upload_lftp(sv, rnd)),
            ("up_py", lambda sv: self.upload_ftplib(sv, rnd)),
            ("up_py2", lambda sv: self.upload_two(sv, rnd)),
            ("down_curl", lambda sv: self.download_curl(sv, rnd)),
            ("down_lftp", lambda sv: self.download_lftp(sv, rnd)),
            ("down_py", lambda sv: self.download_ftplib(sv, rnd)),
            ("small_py1", lambda sv: self.small_ftplib(sv, rnd, 1)),
            ("small_py4", lambda sv: self.small_ftplib(sv, rnd, self.s.small_sessions)),
            ("small_nagle", lambda sv: self.small_ftplib(sv, rnd, 1, NagleFTP_TLS, self.nagle_files)),
            ("small_lftp", lambda sv: self.small_lftp(sv, rnd)),
            ("logins", lambda sv: self.logins(sv, rnd)),
            ("tiny_stor_total_p50", lambda sv: self.tiny(sv, rnd, "STOR")),
            ("tiny_retr_total_p50", lambda sv: self.tiny(sv, rnd, "RETR")),
            ("idle_kib", lambda sv: self.idle_memory(sv, rnd)),
        ]
        for key, fn in steps:
            for server in order:
                try:
                    ended = server.ensure_running()
                except Exception as e:  # noqa: BLE001
                    self.r.fail(rnd, key, server.name, f"the server had ended and did not start again: {e}")
                    continue
                if ended:
                    self.r.note(server.name, f"the server ended ({ended}) before {key} in round {rnd + 1}, "
                                "not by the bench; it was started again and the step ran")
                    log(f"  {server.name} had ended ({ended}); started it again")
                started = time.perf_counter()
                self.measure(rnd, key, server, lambda: fn(server))
                got = self.r.values.get(key, {}).get(server.name, [None])[-1]
                shown = "failed" if got is None else f"{got:,.1f}"
                log(f"  {key:<22} {server.name:<8} {shown:>10}   ({time.perf_counter() - started:.1f} s)")

    def measure_ref(self, rnd, key, fn):
        try:
            self.r.add(key, "ref", fn())
        except Exception as e:  # noqa: BLE001
            self.r.fail(rnd, key, "ref", repr(e))


TRACE_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d\.\d+) (=>|<=|==) (Send header|Recv header|Info)(.*)")


def curl_trace_steps(path):
    """Reads a curl --trace-ascii --trace-time file. Returns when the control connection's TLS handshake
    was done (seconds after the trace's first line), and the wait for each reply: from the command it
    answers, or for the 226 that ends a transfer, from the last thing curl did before it (for an upload,
    its close_notify on the data connection)."""
    lines = Path(path).read_text(errors="replace").splitlines()
    events = []
    for i, line in enumerate(lines):
        m = TRACE_LINE.match(line)
        if not m:
            continue
        t = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
        if events and t < events[0][0]:
            t += 86400  # past midnight
        if m[5] == "Info":
            text = m[6].lstrip(": ")
        else:
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            text = nxt[6:] if nxt.startswith("0000: ") else ""
        events.append((t, m[5], text.strip()))
    if not events:
        raise BenchError(f"curl wrote no trace to {path}")
    start = events[0][0]
    tls_done = next((t - start for t, kind, text in events
                     if kind == "Info" and text.startswith("SSL connection using")), None)
    if tls_done is None:
        raise BenchError(f"no TLS handshake in curl's trace {path}")
    steps = []
    command, sent, last_info = "connect", start, start
    for t, kind, text in events:
        if kind == "Send header":
            command, sent = (text.split() or ["?"])[0].upper(), t
        elif kind == "Recv header":
            code = text[:3]
            if code == "220" and command == "connect":
                steps.append(("connect → 220", t - sent))
            elif code in ("226", "250") and command in ("STOR", "RETR"):
                steps.append((f"{command} data → {code}", t - max(sent, last_info)))
            else:
                steps.append((f"{command} → {code}", t - sent))
            sent = t
        else:
            last_info = t
    # The longest silence in the trace after the control connection's handshake, and what bounds it.
    gap = (0.0, "", "")
    for (t0, k0, x0), (t1, k1, x1) in zip(events, events[1:]):
        if t0 - start >= tls_done and t1 - t0 > gap[0]:
            gap = (t1 - t0, f"{k0.split()[0].lower()} {x0[:40]}", f"{k1.split()[0].lower()} {x1[:40]}")
    return tls_done, steps, gap


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


# --------------------------------------------------------------------------------------------------------
# raw TLS server (a subprocess of the bench)


def raw_tls_server(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    buf = memoryview(bytearray(BLOCK))
    while True:
        raw, _ = listener.accept()
        with ctx.wrap_socket(raw, server_side=True) as tls:
            request = b""
            while not request.endswith(b"\n"):
                piece = tls.recv(1)
                if not piece:
                    break
                request += piece
            direction, size, path = request.decode().split()
            size = int(size)
            if direction == "up":
                got = 0
                while got < size:
                    n = tls.recv_into(buf)
                    if not n:
                        break
                    got += n
                tls.sendall(b"done")
            else:
                with open(path, "rb") as f:
                    while n := f.readinto(buf):
                        tls.sendall(buf[:n])


# --------------------------------------------------------------------------------------------------------
# S3 (optional): wharf on the S3 backend against boto3 doing the same bytes directly


class S3Bench:
    PART = 8 * MIB
    IN_FLIGHT = 4

    def __init__(self, settings, procs):
        self.s = settings
        self.procs = procs
        try:
            import boto3  # noqa: F401
        except ImportError:
            log("installing boto3 with pip (S3 mode)")
            subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "boto3"], check=True)
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        cfg = settings.s3
        self.bucket = cfg["bucket"]
        self.client = boto3.client("s3", endpoint_url=cfg["endpoint"], region_name=cfg["region"],
                                   config=Config(s3={"addressing_style": "path"}, max_pool_connections=16))
        self.transfer = TransferConfig(multipart_threshold=self.PART, multipart_chunksize=self.PART,
                                       max_concurrency=self.IN_FLIGHT, use_threads=True)
        extra = {
            "WHARF_STORAGE__BACKEND": "s3",
            "WHARF_STORAGE__S3__ENDPOINT": cfg["endpoint"],
            "WHARF_STORAGE__S3__BUCKET": cfg["bucket"],
            "WHARF_STORAGE__S3__REGION": cfg["region"],
            "WHARF_STORAGE__S3__FORCE_PATH_STYLE": "true",
            "WHARF_STORAGE__S3__PART_SIZE": str(self.PART),
            "WHARF_STORAGE__S3__PARTS_IN_FLIGHT": str(self.IN_FLIGHT),
        }
        self.wharf = Wharf(settings, procs, label="wharf-s3", data_dir=settings.work / "wharf-s3", extra_env=extra)
        self.prefix = f"clients-bench-{os.getpid()}-{int(time.time())}"
        self.values = {}
        self.errors = []
        self.source = settings.work / "src" / "s3.bin"

    def fresh_source(self):
        # Every upload sends bytes no earlier upload sent: a store that keeps a block once per content
        # hash (Garage) would otherwise skip the second writer's disk writes.
        make_random_file(self.source, self.s.size)

    def add(self, key, who, value):
        self.values.setdefault(key, {}).setdefault(who, []).append(value)

    def run_round(self, rnd):
        size = self.s.size
        order = ["direct", "wharf"] if rnd % 2 == 0 else ["wharf", "direct"]
        log(f"S3 round {rnd + 1}/{self.s.rounds}")
        for who in order:
            try:
                self.fresh_source()
                if who == "direct":
                    key = f"{self.prefix}/direct-{rnd}.bin"
                    secs, _ = timed(lambda: self.client.upload_file(str(self.source), self.bucket, key,
                                                                    Config=self.transfer))
                else:
                    key = f"bench/{self.prefix}-wharf-{rnd}.bin"
                    ftp = ftp_login(self.wharf)
                    try:
                        with open(self.source, "rb") as f:
                            secs, _ = timed(lambda: ftp.storbinary(f"STOR {key[len('bench/'):]}", f,
                                                                   blocksize=BLOCK))
                    finally:
                        ftp_close(ftp)
                head = self.client.head_object(Bucket=self.bucket, Key=key)
                if head["ContentLength"] != size:
                    raise BenchError(f"object {key} has {head['ContentLength']} bytes, sent {size}")
                self.add("up", who, size / secs / MB)
                log(f"  S3 upload   {who:<7} {size / secs / MB:,.1f} MB/s")
                if who == "direct":
                    def get():
                        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
                        n = 0
                        for chunk in body.iter_chunks(BLOCK):
                            n += len(chunk)
                        return n
                    secs, got = timed(get)
                else:
                    ftp = ftp_login(self.wharf)
                    count = [0]
                    try:
                        secs, _ = timed(lambda: ftp.retrbinary(
                            f"RETR {key[len('bench/'):]}", lambda c: count.__setitem__(0, count[0] + len(c)),
                            blocksize=BLOCK))
                    finally:
                        ftp_close(ftp)
                    got = count[0]
                if got != size:
                    raise BenchError(f"downloaded {got} bytes of {size}")
                self.add("down", who, size / secs / MB)
                log(f"  S3 download {who:<7} {size / secs / MB:,.1f} MB/s")
                self.client.delete_object(Bucket=self.bucket, Key=key)
            except Exception as e:  # noqa: BLE001
                self.errors.append((rnd, who, repr(e)))
                log(f"  S3 {who} FAILED: {e!r}")


# --------------------------------------------------------------------------------------------------------
# output


ROWS = [
    # key, label (with {size}, {small}, {tiny}), number format
    ("up_curl", "upload {size}, curl `-T` (MB/s)", "{:,.0f}"),
    ("up_lftp", "upload {size}, lftp `put` (MB/s)", "{:,.0f}"),
    ("up_py", "upload {size}, ftplib `storbinary` (MB/s)", "{:,.0f}"),
    ("up_py2", "upload 2 × {size}, 2 ftplib sessions at once, aggregate (MB/s)", "{:,.0f}"),
    ("down_curl", "download {size}, curl (MB/s)", "{:,.0f}"),
    ("down_lftp", "download {size}, lftp `get` (MB/s)", "{:,.0f}"),
    ("down_py", "download {size}, ftplib `retrbinary` (MB/s)", "{:,.0f}"),
    ("small_py1", "{small} × 4 KiB STOR, one ftplib session (files/s)", "{:,.0f}"),
    ("small_py4", "{small} × 4 KiB STOR, 4 ftplib sessions at once (files/s)", "{:,.0f}"),
    ("small_nagle", "{nagle} × 4 KiB STOR, one ftplib session, Nagle on as ftplib leaves it (files/s)", "{:,.1f}"),
    ("small_lftp", "{small} × 4 KiB, lftp `mput`, login included (files/s)", "{:,.0f}"),
    ("logins", "logins/s, 4 ftplib clients (connect, AUTH TLS, USER, PASS, QUIT)", "{:,.1f}"),
    ("login_p50", "… login latency p50, connect to 230 (ms)", "{:,.1f}"),
    ("login_p99", "… login latency p99 (ms)", "{:,.1f}"),
    ("tiny_stor_total_p50", "{tiny} × 1-byte STOR with curl: total p50 (ms)", "{:,.1f}"),
    ("tiny_stor_total_p99", "… total p99 (ms)", "{:,.1f}"),
    ("tiny_stor_beyond_p50", "… total − control connection's TCP and TLS handshakes, p50 (ms)", "{:,.1f}"),
    ("tiny_stor_beyond_p99", "… the same, p99 (ms)", "{:,.1f}"),
    ("tiny_stor_slow", "… transfers where that exceeds 100 ms (count)", "{:,.0f}"),
    ("tiny_retr_total_p50", "{tiny} × 1-byte RETR with curl: total p50 (ms)", "{:,.1f}"),
    ("tiny_retr_total_p99", "… total p99 (ms)", "{:,.1f}"),
    ("tiny_retr_beyond_p50", "… total − control connection's TCP and TLS handshakes, p50 (ms)", "{:,.1f}"),
    ("tiny_retr_beyond_p99", "… the same, p99 (ms)", "{:,.1f}"),
    ("tiny_retr_slow", "… transfers where that exceeds 100 ms (count)", "{:,.0f}"),
    ("idle_kib", "memory per idle logged-in session, PSS (KiB)", "{:,.1f}"),
]

REF_ROWS = [
    ("ref_tls_up", "raw TLS stream client → server, {size}, Python ssl (OpenSSL) both ends, 256 KiB buffers (MB/s)"),
    ("ref_tls_down", "raw TLS stream server → client, {size} (MB/s)"),
    ("ref_dd", "disk: `dd if=/dev/zero bs=1M count={size_mib} conv=fdatasync` (MB/s)"),
]


def cell(values, fmt):
    good = [v for v in values if v is not None]
    if not good:
        return "failed", None
    med = statistics.median(good)
    runs = ", ".join("failed" if v is None else fmt.format(v) for v in values)
    text = f"{fmt.format(med)} ({runs})" if len(values) > 1 else fmt.format(med)
    return text, med


def size_text(mib):
    return f"{mib // 1024} GiB" if mib % 1024 == 0 and mib >= 1024 else f"{mib} MiB"


def command_output(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
    except Exception:  # noqa: BLE001
        return ""


def machine_lines(settings):
    lscpu = command_output(["lscpu"])
    model = re.search(r"^Model name:\s*(.+)$", lscpu, re.M)
    mem_kib = int(re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()).group(1))
    commit = command_output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]).strip() or "unknown"
    dirty = command_output(["git", "-C", str(REPO), "status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock"])
    built = datetime.fromtimestamp(settings.wharf_bin.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    built += f", SHA-256 {sha256_file(settings.wharf_bin)[:12]}"
    proftpd = command_output(["proftpd", "-v"]).strip()
    curl = command_output(["curl", "--version"]).splitlines()[0] if command_output(["curl", "--version"]) else "?"
    lftp_version = re.search(r"Version\s+(\S+)", command_output(["lftp", "--version"]))
    lftp = f"lftp {lftp_version.group(1) if lftp_version else '?'}"
    return [
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- wharf: commit `{commit}`" + (" (src/ has uncommitted changes)" if dirty.strip() else "")
        + f", binary `{settings.wharf_bin}` built {built}",
        f"- machine: {model.group(1).strip() if model else platform.processor()}, {os.cpu_count()} cores, "
        f"{mem_kib / MIB:.0f} GiB RAM, kernel {platform.release()}",
        f"- clients: {curl.split(' (')[0]} ({curl.split()[4] if len(curl.split()) > 4 else '?'}), {lftp} (GnuTLS), "
        f"Python {platform.python_version()} ({ssl.OPENSSL_VERSION}); server: {proftpd}",
    ]


def render(settings, bench, s3, elapsed):
    r = bench.r
    subs = {"size": size_text(settings.size_mib), "small": f"{settings.small_files:,}", "tiny": settings.tiny,
            "nagle": min(100, settings.small_files),
            "size_mib": settings.size_mib}
    out = ["# Clients benchmark: wharf and ProFTPD with curl, lftp and Python ftplib", ""]
    out += machine_lines(settings)
    if bench.loads:
        out.append("- load average (1, 5, 15 min) at the start of each round: " + "; ".join(
            f"round {i + 1}: {load}" for i, load in enumerate(bench.loads))
            + " (1-minute figure: the first shows other work before the run; later ones include the bench's own "
            "previous round, which keeps it near 1 to 1.5 on two cores, so well above 2 means other work shared "
            "the cores)")
    out += [
        f"- rounds: {settings.rounds} (medians, all runs in parentheses; the order of the two servers flips every "
        f"round); MB = 10^6 bytes; run took {elapsed / 60:.1f} min" + (" (QUICK mode)" if settings.quick else ""),
        "",
        "| measurement | ProFTPD | wharf | wharf/ProFTPD |",
        "| --- | --- | --- | ---: |",
    ]
    for key, label, fmt in ROWS:
        pro, pro_med = cell(r.values.get(key, {}).get("ProFTPD", []), fmt)
        wh, wh_med = cell(r.values.get(key, {}).get("wharf", []), fmt)
        ratio = "—"
        if pro_med and wh_med is not None and pro_med != 0:
            ratio = f"{wh_med / pro_med:.2f}"
        out.append(f"| {label.format(**subs)} | {pro} | {wh} | {ratio} |")
    if "idle_master" in r.values:
        text, _ = cell(r.values["idle_master"].get("ProFTPD", []), "{:,.1f}")
        out.append(f"| … ProFTPD's master process, growth per session (KiB) | {text} | — | — |")
    out += ["", "Throughput, files/s and logins/s: higher is better; times, counts and memory: lower is better.", ""]
    out += ["References, same run:", "", "| reference | median (runs) |", "| --- | --- |"]
    for key, label in REF_ROWS:
        text, _ = cell(r.values.get(key, {}).get("ref", []), "{:,.0f}")
        out.append(f"| {label.format(**subs)} | {text} |")
    suite = getattr(bench, "raw_tls_suite", "")
    if suite:
        out += ["", f"The raw TLS stream negotiated {suite}."]

    out += ["", "## Where the curl per-transfer time goes (all rounds, ms)", "",
            "Each 1-byte transfer is a new curl process: TCP connect, AUTH (SSL, then TLS), the handshake, USER, "
            "PASS, PBSZ, PROT, PWD, EPSV, TYPE I, STOR or RETR (for RETR also SIZE), the data connection's "
            "resumed handshake, 226. Each cell is p50 / p99 / max of the wait for that reply after its command "
            "was sent (for `data → 226`: after curl's last action on the data connection), from "
            "`curl --trace-ascii --trace-time`; (n) counts waits over 100 ms. curl's own `-w` timers cannot "
            "split an FTP transfer: the data connection overwrites time_connect, and time_appconnect does not "
            "mark the control connection's handshake, so the handshake's end is taken from the trace as well.", ""]
    columns = [(sv, kind) for kind in ("STOR", "RETR") for sv in ("ProFTPD", "wharf")
               if r.samples.get(("steps", sv, kind))]
    if columns:
        out.append("| reply | " + " | ".join(f"{sv} {kind}" for sv, kind in columns) + " |")
        out.append("| --- |" + " --- |" * len(columns))
        seen = []
        for sv, kind in columns:
            for step in r.samples[("steps", sv, kind)]:
                if step not in seen:
                    seen.append(step)
        for step in seen:
            cells = []
            for sv, kind in columns:
                waits = sorted(r.samples[("steps", sv, kind)].get(step, []))
                if not waits:
                    cells.append("—")
                    continue
                slow = sum(1 for w in waits if w > 100)
                cells.append(f"{percentile(waits, 50):.1f} / {percentile(waits, 99):.1f} / {waits[-1]:.1f}"
                             + (f" ({slow})" if slow else ""))
            out.append(f"| {step} | " + " | ".join(cells) + " |")

    slow = r.samples.get("slow", [])
    if slow:
        out += ["", "Transfers whose time beyond the control connection's handshakes exceeded 100 ms, with the "
                "longest silence in curl's trace (the first 15 per server). A silence between `Connecting to …`/`ftp_perform "
                "ends …` and `Trying …` is curl waiting before it even opens the data connection: curl 7.88 can sit "
                "out its happy-eyeballs timer (200 ms by default) there when the EPSV reply was already read, "
                "which a fast server makes likely; `--happy-eyeballs-timeout-ms 50` shrinks it to 50 ms. A silence "
                "after `send TYPE I` against ProFTPD is curl polling only the data connection, whose TLS handshake "
                "ProFTPD leaves until the transfer command, until the same timer expires.", "",
                "| server | command | round | # | total (ms) | beyond handshakes (ms) | longest silence (ms) | "
                "after | before |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
        for server in ("ProFTPD", "wharf"):
            mine = [row for row in slow if row[0] == server]
            for sv, kind, rnd, i, total, bey, gap, before, after in mine[:15]:
                out.append(f"| {sv} | {kind} | {rnd} | {i} | {total:.1f} | {bey:.1f} | {gap:.1f} | "
                           f"`{before.replace('|', '/')}` | `{after.replace('|', '/')}` |")
            if len(mine) > 15:
                out.append(f"| {server}: {len(mine) - 15} more | | | | | | | | |")

    out += ["", "## Checks and notes", ""]
    for server in ("ProFTPD", "wharf"):
        for line in r.notes.get(server, []):
            out.append(f"- {server}: {line}")
        resumed, fresh = r.samples.get(("resumed", server), (0, 0))
        if resumed or fresh:
            out.append(f"- {server}: ftplib data connections that resumed the control connection's TLS session: "
                       f"{resumed} of {resumed + fresh} (single-session big transfers)")
    out.append("- every upload's stored size was checked, and every small file's bytes; a failure is listed below")
    out.append("- downloads read `down.bin`, which both servers hold in the page cache (the bench reads it "
               "through once after storing it): wharf writes uploads with O_DIRECT, so without that its first "
               "download would come from the disk and ProFTPD's from memory")
    out.append("- ProFTPD runs with mod_delay on (Debian's default), which pads USER/PASS replies; wharf verifies "
               "an argon2id hash per login (ProFTPD: SHA-512 crypt)")
    if r.errors:
        out += ["", "## Failures", ""]
        for rnd, server, key, message in r.errors:
            out.append(f"- round {rnd + 1}, {server}, {key}: {message}")

    if s3 is not None:
        out += ["", "## S3 backend: wharf on S3 against boto3 directly", "",
                f"Endpoint {settings.s3['endpoint']}, bucket {settings.s3['bucket']}; {size_text(settings.size_mib)} "
                f"of fresh random bytes per upload; boto3 multipart with 8 MiB parts, 4 in flight; wharf with "
                f"part size 8 MiB, 4 parts in flight, driven by ftplib. Download: one streamed get_object read "
                f"to its end against ftplib RETR.", "",
                "| measurement | boto3 direct | wharf (S3) | wharf/direct |", "| --- | --- | --- | ---: |"]
        for key, label in (("up", "upload (MB/s)"), ("down", "download (MB/s)")):
            d, dm = cell(s3.values.get(key, {}).get("direct", []), "{:,.0f}")
            w, wm = cell(s3.values.get(key, {}).get("wharf", []), "{:,.0f}")
            ratio = f"{wm / dm:.2f}" if dm and wm is not None else "—"
            out.append(f"| {label} | {d} | {w} | {ratio} |")
        for rnd, who, message in s3.errors:
            out.append(f"- S3 round {rnd + 1}, {who}: {message}")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------------------


def main(argv):
    if len(argv) >= 2 and argv[1] == "raw-tls-server":
        raw_tls_server(argv[2], argv[3])
        return 0
    if len(argv) != 3 or argv[1] != "--work":
        print(__doc__, file=sys.stderr)
        return 2
    settings = Settings(argv[2])
    if not settings.wharf_bin.is_file() or not os.access(settings.wharf_bin, os.X_OK):
        raise BenchError(f"no wharf binary at {settings.wharf_bin}; build it (cargo build --release --bins) "
                         f"or set WHARF_BIN")
    os.chmod(settings.work, 0o755)  # ProFTPD's sessions (nobody) must reach their folder
    procs = Processes(settings.work)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    try:
        cert, key = settings.work / "cert.pem", settings.work / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "30", "-subj", "/CN=127.0.0.1"],
                       check=True, capture_output=True)
        bench = Bench(settings, procs)
        bench.prepare_sources()
        log("starting wharf and ProFTPD")
        wharf = Wharf(settings, procs)
        proftpd = ProFTPD(settings, procs, cert, key)
        log(f"wharf on {wharf.host}:{wharf.port}, ProFTPD on {proftpd.host}:{proftpd.port} "
            f"(passive {proftpd.passive[0]}-{proftpd.passive[1]})")
        servers = [wharf, proftpd]
        for server in servers:
            bench.prepare_server(server)
        for rnd in range(settings.rounds):
            bench.round(rnd, servers, cert, key)
        s3 = None
        if settings.s3_enabled:
            s3 = S3Bench(settings, procs)
            for rnd in range(settings.rounds):
                s3.run_round(rnd)
        elif any(os.environ.get(k) for k in ("WHARF_BENCH_S3_ENDPOINT", "WHARF_BENCH_S3_BUCKET")):
            log("S3 part skipped: it needs WHARF_BENCH_S3_ENDPOINT, WHARF_BENCH_S3_BUCKET, AWS_ACCESS_KEY_ID, "
                "AWS_SECRET_ACCESS_KEY and AWS_REGION")
        report = render(settings, bench, s3, time.perf_counter() - started)
        settings.out.parent.mkdir(parents=True, exist_ok=True)
        settings.out.write_text(report)
        print(report)
        log(f"written to {settings.out}")
        return 1 if bench.r.errors or (s3 and s3.errors) else 0
    finally:
        procs.stop_all()


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except BenchError as e:
        print(f"clients-bench: {e}", file=sys.stderr)
        sys.exit(1)
