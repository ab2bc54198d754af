#!/usr/bin/env python3
"""A stand-in for a slow plotting web API, for the README story test.

Listens on 127.0.0.1 (port from argv[1], 0 picks one), answers every POST
after DELAY seconds with {"plotted": <the request's JSON>}, writes the port
it got to argv[2], and exits after argv[3] seconds at the latest. With
argv[4], appends every request's JSON to that file, one line each."""
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


server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Plot)
with open(sys.argv[2], "w") as f:
    f.write(str(server.server_address[1]))
threading.Timer(float(sys.argv[3]), server.shutdown).start()
server.serve_forever()
