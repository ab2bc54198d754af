#!/usr/bin/env python3
"""The plotting web API of the README's story: a slow stand-in.

    python3 docs/examples/plot_server.py [PORT [PORT_FILE [SECONDS [LOG]]]]

Listens on 127.0.0.1:PORT (default 9000; 0 picks a free one) and answers
every POST after DELAY seconds with {"plotted": <the request's JSON>}. The
README's test passes the rest: PORT_FILE gets the port it listens on,
SECONDS bounds its life, and LOG gets every request's JSON, one line each."""
import http.server
import json
import sys
import threading
import time

DELAY = 0.3
LOG = sys.argv[4] if len(sys.argv) > 4 else None
LOCK = threading.Lock()


class Plot(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if LOG:
            with LOCK, open(LOG, "a") as f:
                f.write(json.dumps(json.loads(body or b"null")) + "\n")
        time.sleep(DELAY)
        out = json.dumps({"plotted": json.loads(body or b"null")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 9000), Plot)
if len(sys.argv) > 2:
    with open(sys.argv[2], "w") as f:
        f.write(str(server.server_address[1]))
if len(sys.argv) > 3:
    threading.Timer(float(sys.argv[3]), server.shutdown).start()
print(f"plot_server: serving POST /plot on 127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()
