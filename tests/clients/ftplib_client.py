#!/usr/bin/env python3
"""Python's ftplib.FTP_TLS against wharf, for tests/interop/ftplib.rs.

Usage: ftplib_client.py SCENARIO HOST PORT USER PASSWORD [LOCAL_DIR]

Scenarios:
  full      session-reusing client: uploads every file of LOCAL_DIR into /dir, downloads and compares
            them, checks MLSD facts, NLST, SIZE, REST, RNFR/RNTO, DELE, MKD/RMD. Prints "ok".
  plain     stock FTP_TLS (no TLS session reuse on data connections): one STOR, one RETR, one NLST.
            Prints "ok", or "refused <reply>" with the server's final reply when it refuses the data
            connection.

Any failed check raises, so the exit status is non-zero and the traceback says what went wrong.
"""

import ftplib
import io
import os
import ssl
import sys

TIMEOUT = 30


class ReusingFTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS whose data connections resume the control connection's TLS session (RFC 4217 §10.2)."""

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size


def context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect(cls, host, port, user, password):
    ftp = cls(context=context(), timeout=TIMEOUT)
    ftp.encoding = "utf-8"
    ftp.connect(host, int(port))
    ftp.auth()
    ftp.login(user, password)
    ftp.prot_p()
    return ftp


def fetch(ftp, path, rest=None):
    out = io.BytesIO()
    ftp.retrbinary(f"RETR {path}", out.write, rest=rest)
    return out.getvalue()


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def full(host, port, user, password, local_dir):
    ftp = connect(ReusingFTP_TLS, host, port, user, password)
    check(ftp.mkd("dir") == "/dir", "MKD reply names the new directory")

    local = {}
    for name in sorted(os.listdir(local_dir)):
        with open(os.path.join(local_dir, name), "rb") as f:
            local[name] = f.read()
    for name, data in local.items():
        reply = ftp.storbinary(f"STOR dir/{name}", io.BytesIO(data))
        check(reply.startswith("226"), f"STOR {name}: {reply}")
        back = fetch(ftp, f"dir/{name}")
        check(back == data, f"RETR {name}: {len(back)} bytes back for {len(data)} sent")
        check(ftp.size(f"dir/{name}") == len(data), f"SIZE {name}")

    facts = dict(ftp.mlsd("dir", facts=["type", "size", "modify", "perm"]))
    check(set(facts) == set(local), f"MLSD names {sorted(facts)} != {sorted(local)}")
    for name, data in local.items():
        f = facts[name]
        check(f.get("type") == "file", f"MLSD type of {name}: {f}")
        check(f.get("size") == str(len(data)), f"MLSD size of {name}: {f}")
        modify = f.get("modify", "")
        check(len(modify) >= 14 and modify[:14].isdigit(), f"MLSD modify of {name}: {f}")
        check("r" in f.get("perm", ""), f"MLSD perm of {name}: {f}")
    root = dict(ftp.mlsd("/", facts=["type"]))
    check(root.get("dir", {}).get("type") == "dir", f"MLSD of / shows dir as a directory: {root}")

    names = sorted(os.path.basename(n) for n in ftp.nlst("dir"))
    check(names == sorted(local), f"NLST names {names}")

    big = max(local, key=lambda n: len(local[n]))
    offset = len(local[big]) // 3
    tail = fetch(ftp, f"dir/{big}", rest=offset)
    check(tail == local[big][offset:], f"REST {offset} + RETR {big}: {len(tail)} bytes")

    small = min(local, key=lambda n: len(local[n]))
    check(ftp.rename(f"dir/{small}", "dir/renamed.bin").startswith("250"), "RNFR/RNTO")
    check(fetch(ftp, "dir/renamed.bin") == local[small], "renamed file keeps its content")
    check(ftp.delete("dir/renamed.bin").startswith("250"), "DELE")
    try:
        ftp.size("dir/renamed.bin")
        raise AssertionError("SIZE of a deleted file must fail")
    except ftplib.error_perm as e:
        check(str(e).startswith("550"), f"SIZE of a deleted file: {e}")

    check(ftp.mkd("empty") == "/empty", "MKD empty")
    ftp.cwd("empty")
    check(ftp.pwd() == "/empty", "PWD after CWD")
    ftp.cwd("/")
    check(ftp.rmd("empty").startswith("250"), "RMD")
    check("empty" not in ftp.nlst(), "RMD removed the directory")
    ftp.quit()
    print("ok")


def plain(host, port, user, password):
    ftp = connect(ftplib.FTP_TLS, host, port, user, password)
    data = b"plain ftplib data connection\n" * 100
    try:
        ftp.storbinary("STOR plain.txt", io.BytesIO(data))
        check(fetch(ftp, "plain.txt") == data, "RETR after STOR")
        check("plain.txt" in ftp.nlst(), "NLST")
    except ftplib.error_perm as e:
        print(f"refused {e}")
        return
    except (OSError, EOFError) as e:
        # The server ends a refused data connection without a TLS close_notify, so ftplib's unwrap()
        # fails before it reads the final reply; that reply is still waiting on the control connection.
        try:
            reply = ftp.getresp()
        except ftplib.error_perm as refusal:
            print(f"refused {refusal}")
            return
        raise AssertionError(f"data connection failed ({e!r}) but the server said {reply!r}")
    ftp.quit()
    print("ok")


def main():
    scenario, host, port, user, password = sys.argv[1:6]
    if scenario == "full":
        full(host, port, user, password, sys.argv[6])
    elif scenario == "plain":
        plain(host, port, user, password)
    else:
        raise SystemExit(f"unknown scenario {scenario}")


if __name__ == "__main__":
    main()
