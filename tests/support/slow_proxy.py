"""A delaying TCP proxy for tests: makes a real server (Prometheus) answer slowly.

Every accepted connection is held `delay` seconds, then forwarded byte for byte to the
upstream address. Bounded on every side: it listens on 127.0.0.1 only, serves at most
`max_connections` connections at once (extra ones are closed at once), and stops by
itself after `lifetime` seconds, closing whatever is still open. `stop()` (or leaving
the `with` block) stops it earlier and waits for its threads.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from types import TracebackType

__all__ = ["SlowProxy"]

_POLL_SECONDS = 0.1


class SlowProxy:
    def __init__(
        self,
        upstream: tuple[str, int],
        delay: float,
        *,
        lifetime: float = 120.0,
        max_connections: int = 16,
    ) -> None:
        self.upstream = upstream
        self.delay = delay
        #: connections accepted and held (not those refused for being over the bound)
        self.connections = 0
        self._deadline = time.monotonic() + lifetime
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(max_connections)
        self._listener.settimeout(_POLL_SECONDS)
        self.port = int(self._listener.getsockname()[1])
        self._acceptor = threading.Thread(target=self._accept, name="slow-proxy", daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> SlowProxy:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _running(self) -> bool:
        return not self._stopping.is_set() and time.monotonic() < self._deadline

    def stop(self) -> None:
        """Stop accepting, close every connection, wait (bounded) for the threads."""
        self._stopping.set()
        self._acceptor.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        try:
            while self._running():
                try:
                    client, _ = self._listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not self._slots.acquire(blocking=False):
                    client.close()
                    continue
                self.connections += 1
                thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
                self._threads.append(thread)
                thread.start()
        finally:
            with contextlib.suppress(OSError):
                self._listener.close()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            # Waiting on the event, not sleeping, so stop() ends the hold at once.
            if self._stopping.wait(self.delay) or not self._running():
                return
            upstream = socket.create_connection(self.upstream, timeout=5)
            self._pump(client, upstream)
        except OSError:
            pass  # either side went away: nothing to forward any more
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.close()
            self._slots.release()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        other = {client: upstream, upstream: client}
        while self._running():
            readable, _, _ = select.select(list(other), [], [], _POLL_SECONDS)
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                other[sock].sendall(data)
