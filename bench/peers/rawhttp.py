"""A raw-socket HTTP/1.1 client for the benchmarks: one keep-alive
connection, answers framed by Content-Length. Python's http.client costs
more per call than jobqd does per request, which would hide what is
measured."""
import socket


class Http:
    """One keep-alive connection; answers framed by Content-Length."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def request(self, method, path, body=None):
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        data = body.encode() if body else b""
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        self.sock.sendall(head.encode() + b"\r\n" + data)
        while b"\r\n\r\n" not in self.buf:
            self.recv()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self.buf) < length:
            self.recv()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, body

    def recv(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("jobqd closed the connection")
        self.buf += chunk
