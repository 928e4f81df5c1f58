"""A real HTTP receiver for webhook tests: http.server on 127.0.0.1, in a thread."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["TOKEN", "NeverAnswers", "Receiver"]

#: in every receiver's URL path, as Slack's carry theirs: rows, errors and logs must not show it
TOKEN = "sEcReT-T0KEN"


class Receiver:
    """A real HTTP server on 127.0.0.1 that records each POST body and answers it with
    the next of `answers` (then 200). Requests from number `hold_from` on (0: the first)
    wait for `release` before they are answered."""

    def __init__(self, answers: Sequence[int] = (), *, hold_from: int | None = None) -> None:
        self.bodies: list[Any] = []
        self.answers = list(answers)
        self.release = threading.Event()
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver._arrived:
                    receiver.bodies.append(body)
                    number = len(receiver.bodies) - 1
                    status = receiver.answers.pop(0) if receiver.answers else 200
                    receiver._arrived.notify_all()
                if hold_from is not None and number >= hold_from:
                    receiver.release.wait(30)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, requests: int) -> bool:
        """Whether `requests` requests have come in (waiting up to 30 s for them)."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.bodies) >= requests, 30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/{TOKEN}"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class NeverAnswers:
    """A receiver that accepts every connection and never answers (a hung webhook): it
    counts the connections it was offered."""

    def __init__(self) -> None:
        import socket

        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._held: list[Any] = []
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._held.append(connection)  # read nothing, answer nothing

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/services/T000/{TOKEN}"

    def stop(self) -> None:
        self._listener.close()
        for connection in self._held:
            connection.close()
