"""A small HTTP server on 127.0.0.1 (an ephemeral port) for the download tests.

Each route serves fixed bytes; it can announce a wrong ``Content-Length`` or none, answer an
error status, or stop after ``pause_at`` bytes of the body until the test resumes it, so that
a test can interrupt a client at a known byte::

    with ReleaseServer() as server:
        url = server.serve("/r.zip", body, pause_at=1000)
        ...                                   # start the client
        assert server.paused("/r.zip").wait(30)
        ...                                   # interrupt it, then
        server.resume("/r.zip")
"""
from __future__ import annotations

import http.server
import threading
from dataclasses import dataclass, field
from typing import Dict, Optional, Union

NO_LENGTH = "none"


@dataclass
class Route:
    """What one path answers."""

    body: bytes
    announced: Optional[Union[int, str]] = None  # None: len(body); NO_LENGTH: no header
    status: int = 200
    pause_at: Optional[int] = None
    paused: threading.Event = field(default_factory=threading.Event)
    resumed: threading.Event = field(default_factory=threading.Event)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the connection closes after each answer

    def do_GET(self):  # noqa: N802 (http.server's naming)
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404, "no such file")
            return
        if route.status != 200:
            self.send_error(route.status)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        if route.announced != NO_LENGTH:
            self.send_header("Content-Length", str(len(route.body) if route.announced is None else route.announced))
        self.end_headers()
        try:
            if route.pause_at is None:
                self.wfile.write(route.body)
                return
            self.wfile.write(route.body[: route.pause_at])
            self.wfile.flush()
            route.paused.set()
            route.resumed.wait(60)
            self.wfile.write(route.body[route.pause_at:])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (it was interrupted)

    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client killed mid-answer is expected here


class ReleaseServer:
    """The server, running in a daemon thread until :meth:`close`."""

    def __init__(self) -> None:
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.routes: Dict[str, Route] = {}
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return "http://127.0.0.1:%d" % self._httpd.server_address[1]

    def serve(self, path: str, body: bytes, **options) -> str:
        """Answer ``path`` with ``body`` (options: the fields of :class:`Route`); its URL."""
        self._httpd.routes[path] = Route(body, **options)
        return self.base_url + path

    def paused(self, path: str) -> threading.Event:
        """Set once an answer on ``path`` has stopped at its ``pause_at`` byte."""
        return self._httpd.routes[path].paused

    def resume(self, path: str) -> None:
        self._httpd.routes[path].resumed.set()

    def close(self) -> None:
        for route in self._httpd.routes.values():
            route.resumed.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> "ReleaseServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
