"""Running the app on uvicorn: in the foreground (``task=serve``) or in a thread (tests,
benchmarks, notebooks: :class:`BackgroundServer`)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from factory.errors import FactoryError


def check_port(host: str, port: int) -> None:
    """Refuse a port another process holds (uvicorn would only log it and exit)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise FactoryError(f"cannot listen on {host}:{port} ({exc.strerror}); pick "
                               f"another port, e.g. `serve.port={port + 1}`") from None


class BackgroundServer:
    """Uvicorn serving ``app`` in a daemon thread; ``port=0`` takes a free port.

    ``with BackgroundServer(app) as server: httpx.get(server.url + "/health")``
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0,
                 log_level: str = "warning", access_log: bool = False) -> None:
        self.config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                     access_log=access_log, lifespan="on")
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, name="factory-serve-uvicorn",
                                       daemon=True)
        self.url = ""

    def start(self, timeout: float = 60.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise FactoryError(f"the server did not start on {self.config.host}:"
                                   f"{self.config.port} (see the log above)")
            time.sleep(0.01)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        return self

    def stop(self, timeout: float = 60.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
