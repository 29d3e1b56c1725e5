"""SandboxProcess: the sandbox in a child Python process, driven over HTTP.

A sandbox in a thread shares the GIL with the code under test; a benchmark of
the loader against it would partly measure the sandbox. This runs
`python -m bulkload.sandbox` instead and offers the same inspection and
control methods as SandboxServer through the `/_sandbox/` admin endpoints.
The clock cannot cross a process boundary, so a config with an injected clock
is refused.
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

import httpx

from bulkload.sandbox.config import SandboxConfig, system_clock


class SandboxProcess:
    """`python -m bulkload.sandbox` on a loopback port, with SandboxServer's methods."""

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        python: str = sys.executable,
        start_timeout_s: float = 30.0,
    ) -> None:
        self._config = config or SandboxConfig()
        if self._config.clock is not system_clock:
            raise ValueError(
                "a SandboxProcess runs on the system clock; use SandboxServer to inject one"
            )
        self.host = host
        self._requested_port = port
        self.port = 0
        self._python = python
        self._timeout = start_timeout_s
        self._proc: subprocess.Popen[str] | None = None
        self._admin: httpx.Client | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("sandbox not started")
        return self._proc.pid

    def start(self) -> SandboxProcess:
        if self._proc is not None:
            raise RuntimeError("sandbox already started")
        fields = self._config.to_json()
        command = [
            self._python, "-m", "bulkload.sandbox",
            "--host", self.host, "--port", str(self._requested_port),
            "--config-json", json.dumps(fields),
        ]  # fmt: skip
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self._proc = proc
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], self._timeout)
        line = proc.stdout.readline().strip() if ready else ""
        if not line.startswith("listening on http://"):
            self.stop()
            raise RuntimeError(f"sandbox process did not start (said {line!r})")
        self.port = int(line.rsplit(":", 1)[1])
        self._admin = httpx.Client(base_url=self.base_url, timeout=30)
        return self

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        proc = self._proc
        self._proc = None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)  # a graceful stop: the SQLite store is closed
        deadline = time.monotonic() + 15
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- the admin endpoints

    def _request(self, method: str, action: str, **kwargs: Any) -> Any:
        if self._admin is None:
            raise RuntimeError("sandbox not started")
        response = self._admin.request(method, f"/_sandbox/{action}", **kwargs)
        if response.status_code == 400:
            raise ValueError(response.json()["error"])
        response.raise_for_status()
        return response.json()

    @property
    def config(self) -> dict[str, Any]:
        """The running config as JSON (SandboxServer.config gives the SandboxConfig)."""
        result: dict[str, Any] = self._request("GET", "config")
        return result

    def configure(self, **changes: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._request("POST", "config", json=changes)
        return result

    def store_records(
        self, id_property: str | None = None, object_type: str = "calls"
    ) -> dict[str, dict[str, str]]:
        params = {"object_type": object_type}
        if id_property:
            params["id_property"] = id_property
        records: dict[str, dict[str, str]] = self._request("GET", "store", params=params)["records"]
        return records

    def create_records(self, object_type: str, records: Iterable[Mapping[str, str]]) -> list[str]:
        body = {"object_type": object_type, "records": [dict(r) for r in records]}
        ids: list[str] = self._request("POST", "records", json=body)["ids"]
        return ids

    def record_associations(
        self, from_object: str, object_id: str, to_object: str
    ) -> dict[str, list[int]]:
        params = {"from": from_object, "id": object_id, "to": to_object}
        links: dict[str, list[int]] = self._request("GET", "associations", params=params)["results"]
        return links

    def owners(self) -> list[dict[str, Any]]:
        owners: list[dict[str, Any]] = self._request("GET", "owners")["results"]
        return owners

    def counters(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "counters")
        return result

    def reset(self, *, store: bool = True, counters: bool = True, limits: bool = True) -> None:
        self._request(
            "POST", "reset", json={"store": store, "counters": counters, "limits": limits}
        )

    def reset_daily(self) -> None:
        self._request("POST", "reset-daily")
