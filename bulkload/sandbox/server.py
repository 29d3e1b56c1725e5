"""Running the sandbox: `SandboxServer` in a background thread (tests, benchmarks,
`bulkload demo`) and `serve()` in the foreground (the CLI).

Both run uvicorn with httptools and uvloop when installed, no access log and
log level warning: the sandbox must not be what a benchmark measures.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TextIO, TypeVar

import uvicorn

from bulkload.sandbox.app import SandboxApp
from bulkload.sandbox.config import SandboxConfig
from bulkload.sandbox.state import CountersJson, SandboxState

T = TypeVar("T")

# Idle keep-alive connections are kept well beyond httpx's pool expiry, so a
# client never races the server's close of an idle connection (a spurious
# "Server disconnected" that no real HubSpot edge would produce that often).
KEEP_ALIVE_S = 75


class _Uvicorn(uvicorn.Server):
    """A uvicorn server that reports its loop and port once it accepts connections,
    and runs `on_stopped` once it has shut down (before uvicorn re-raises a signal)."""

    def __init__(
        self,
        config: uvicorn.Config,
        on_started: Callable[[Any, int], None],
        on_stopped: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(config)
        self._on_started = on_started
        self._on_stopped = on_stopped
        self.loop: Any = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets=sockets)
        if self.started:
            port = self.servers[0].sockets[0].getsockname()[1]
            self._on_started(self.loop, port)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets=sockets)
        self._on_stopped()


def _uvicorn_config(
    app: SandboxApp, host: str, port: int, *, quiet_logging: bool
) -> uvicorn.Config:
    extra: dict[str, Any] = {"log_config": None} if quiet_logging else {}
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="auto",
        http="auto",
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=2,
        **extra,
    )


class SandboxServer:
    """A sandbox on a loopback port, served from a background thread.

    >>> with SandboxServer(SandboxConfig(tokens=("t",))) as sandbox:
    ...     sandbox.base_url  # doctest: +SKIP
    'http://127.0.0.1:54321'
    """

    def __init__(
        self, config: SandboxConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._initial = config or SandboxConfig()
        self.host = host
        self._requested_port = port
        self.port = 0
        self._state: SandboxState | None = None
        self._server: _Uvicorn | None = None
        self._thread: threading.Thread | None = None
        self._loop: Any = None
        self._started = threading.Event()
        self._failure: BaseException | None = None

    # --- lifecycle

    def start(self) -> SandboxServer:
        if self._thread is not None:
            raise RuntimeError("sandbox already started")
        # A (re)start begins from the initial config; records persist only with store_path.
        self._started.clear()
        self._failure = None
        state = SandboxState(self._initial)
        self._state = state
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        self.port = sock.getsockname()[1]

        def started(loop: Any, _port: int) -> None:
            self._loop = loop
            self._started.set()

        server = _Uvicorn(
            _uvicorn_config(SandboxApp(state), self.host, self.port, quiet_logging=True), started
        )
        self._server = server

        def run() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # reported to start() / stop()
                self._failure = exc
            finally:
                sock.close()
                state.close()
                self._started.set()

        self._thread = threading.Thread(target=run, name=f"sandbox-{self.port}", daemon=True)
        self._thread.start()
        self._started.wait(timeout=30)
        if self._failure is not None or self._loop is None:
            self.stop()
            raise RuntimeError(f"sandbox failed to start: {self._failure!r}")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._thread = None
        self._server = None
        self._loop = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- inspection and control (run on the server's loop)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def config(self) -> SandboxConfig:
        return self._call(lambda state: state.config)

    def configure(self, **changes: Any) -> SandboxConfig:
        """Change config fields at runtime (store_path excepted); returns the new config."""
        return self._call(lambda state: state.configure(**changes))

    def store_records(
        self, id_property: str | None = None, object_type: str = "calls"
    ) -> dict[str, dict[str, str]]:
        """Stored records of `object_type` (any name: `contacts`, `contact`, `0-1`) keyed
        by the id value each was created with (or by `id_property`), each the record's
        properties including hs_object_id and its create/modified timestamps."""
        return self._call(lambda state: state.records(id_property, object_type))

    def create_records(self, object_type: str, records: Iterable[Mapping[str, str]]) -> list[str]:
        """Create records of any object from property values (checked like an upsert's,
        without required properties or validation rules); returns their record ids."""
        rows = [dict(r) for r in records]
        return self._call(lambda state: state.create_records(object_type, rows))

    def record_associations(
        self, from_object: str, object_id: str, to_object: str
    ) -> dict[str, list[int]]:
        """{to record id: association type ids} of one record, e.g.
        record_associations("calls", "50000000001", "contacts") -> {"1000001": [194]}."""
        return self._call(
            lambda state: state.record_associations(from_object, object_id, to_object)
        )

    def owners(self) -> list[dict[str, Any]]:
        """Every owner (archived ones too), as GET /crm/v3/owners shows them."""
        return self._call(lambda state: state.owners_json())

    def counters(self) -> CountersJson:
        return self._call(lambda state: state.counters_json())

    def reset(self, *, store: bool = True, counters: bool = True, limits: bool = True) -> None:
        self._call(lambda state: state.reset(store=store, counters=counters, limits=limits))

    def reset_daily(self) -> None:
        """Zero the daily request count, as HubSpot does at midnight."""
        self._call(lambda state: state.reset_daily())

    def _call(self, fn: Callable[[SandboxState], T]) -> T:
        state = self._state
        if state is None:
            raise RuntimeError("sandbox not started")
        loop = self._loop
        if loop is None or self._thread is None or not self._thread.is_alive():
            return fn(state)
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(state))
            except BaseException as exc:
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(timeout=30)


def serve(
    config: SandboxConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    out: TextIO | None = None,
) -> None:
    """Serve in the foreground until SIGINT/SIGTERM.

    Prints exactly `listening on http://HOST:PORT` (flushed) once connections
    are accepted; with port 0 it is the port the system chose.
    """
    state = SandboxState(config or SandboxConfig())
    stream = out or sys.stdout
    # The store is millions of small dicts of strings and holds no cycles; the
    # cyclic collector would re-walk all of it ever more often as it grows, so a
    # long benchmark would end up measuring the collector. A process of our own:
    # raising the thresholds here affects nobody else.
    gc.set_threshold(200_000, 100, 100)

    def started(_loop: Any, bound_port: int) -> None:
        print(f"listening on http://{host}:{bound_port}", file=stream, flush=True)

    config_ = _uvicorn_config(SandboxApp(state), host, port, quiet_logging=False)
    server = _Uvicorn(config_, started, on_stopped=state.close)
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled: a normal stop
        pass
    finally:
        state.close()
