#!/usr/bin/env python3
"""A BEP 17 HTTP seed for the tests: `GET /seed?info_hash=..&piece=N&ranges=a-b` answers
the bytes a..b (inclusive, relative to piece N) of the torrent's single file. The first
`--busy` requests get `503 Service Unavailable` with the number of seconds to wait in the
body, as BEP 17 says. Prints `{"event": "listening", "port": P}` once it accepts
connections, and one `{"event": "request", ...}` line per request.
"""
import argparse
import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def emit(**fields):
    print(json.dumps(fields), flush=True)


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--file", required=True)
    p.add_argument("--piece-length", type=int, required=True)
    p.add_argument("--info-hash", required=True, help="v1 info-hash, hex")
    p.add_argument("--busy", type=int, default=0, help="answer 503 to this many requests")
    p.add_argument("--retry-after", type=int, default=1)
    args = p.parse_args(argv)
    info_hash = bytes.fromhex(args.info_hash)
    with open(args.file, "rb") as f:
        data = f.read()
    lock = threading.Lock()
    state = {"busy": args.busy}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def reply(self, code, body):
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            url = urllib.parse.urlparse(self.path)
            q = urllib.parse.parse_qs(url.query)
            ih = urllib.parse.unquote_to_bytes(url.query.split("info_hash=")[1].split("&")[0]) \
                if "info_hash=" in url.query else b""
            with lock:
                busy = state["busy"] > 0
                if busy:
                    state["busy"] -= 1
            emit(event="request", path=self.path, busy=busy)
            if ih != info_hash:
                return self.reply(404, b"unknown info_hash")
            if busy:
                return self.reply(503, str(args.retry_after).encode())
            try:
                piece = int(q["piece"][0])
                start = piece * args.piece_length
                end = min(start + args.piece_length, len(data))
                out = b""
                for r in q.get("ranges", ["0-%d" % (end - start - 1)])[0].split(","):
                    a, b = (int(x) for x in r.split("-"))
                    if a > b or start + b >= len(data):
                        return self.reply(400, b"bad range")
                    out += data[start + a:start + b + 1]
            except (KeyError, ValueError):
                return self.reply(400, b"bad request")
            self.reply(200, out)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    emit(event="listening", port=server.server_address[1])
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
