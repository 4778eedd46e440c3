"""The processes a test "pod" runs: an HTTP app that answers with what it received (its peer and
headers, as JSON), a TCP echo server, a client, and a wait for ports; run as
`python pod_apps.py http|echo|call|tcp-call|wait ...` inside a network namespace."""

from __future__ import annotations

import json
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import StreamRequestHandler, ThreadingTCPServer
from urllib.request import ProxyHandler, build_opener


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({
            "peer": self.client_address[0],
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
        }).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Lines(StreamRequestHandler):
    banner = b""  # a server-first protocol (MySQL, SMTP) speaks before the client does

    def handle(self) -> None:
        self.wfile.write(self.banner)
        for line in self.rfile:
            self.wfile.write(b"echo " + line)


def main(args: list[str]) -> None:
    what = args[0]
    if what == "http":  # http HOST PORT
        ThreadingHTTPServer.daemon_threads = True
        ThreadingHTTPServer((args[1], int(args[2])), _Echo).serve_forever()
    elif what in ("echo", "banner"):  # echo|banner HOST PORT
        _Lines.banner = b"220 banner first\n" if what == "banner" else b""
        ThreadingTCPServer.allow_reuse_address = True
        ThreadingTCPServer.daemon_threads = True
        ThreadingTCPServer((args[1], int(args[2])), _Lines).serve_forever()
    elif what == "call":  # call URL: no proxy whatever the environment says
        opener = build_opener(ProxyHandler({}))
        with opener.open(args[1], timeout=10) as response:
            sys.stdout.write(json.dumps({"status": response.status,
                                         "body": json.loads(response.read())}))  # fmt: skip
    elif what == "tcp-call":  # tcp-call HOST PORT TEXT HOLD: send a line, read it back, hold
        with socket.create_connection((args[1], int(args[2])), timeout=10) as sock:
            replies = sock.makefile("rb")
            if args[3] == "-":  # wait for the server to speak first
                sys.stdout.write(replies.readline().decode())
            else:
                sock.sendall(args[3].encode() + b"\n")
                sys.stdout.write(replies.readline().decode())
            sys.stdout.flush()
            time.sleep(float(args[4]))
    elif what == "wait":  # wait SECONDS PORT...: until each port on 127.0.0.1 accepts
        deadline = time.monotonic() + float(args[1])
        for port in map(int, args[2:]):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        sys.exit(f"port {port} did not open in {args[1]}s")
                    time.sleep(0.1)


if __name__ == "__main__":
    main(sys.argv[1:])
