"""The S3 server of wharf's S3-backend tests: moto's S3 on a free loopback port.

Prints one JSON line ({"endpoint": ...}) once it serves, then runs until its standard input closes (the
test process ended). Moto accepts any credentials; its optional signature checking is not used because it
rejects valid signatures of requests whose query holds a '/' (ListObjectsV2 with delimiter '/').
"""

import json
import socket
import sys

from moto.server import ThreadedMotoServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print(json.dumps({"endpoint": f"http://127.0.0.1:{port}"}), flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
