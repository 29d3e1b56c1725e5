"""How many 100-input batch upserts per second the sandbox answers.

Starts the sandbox in its own process (SandboxProcess, i.e. `python -m
bulkload.sandbox`: no latency, no rate limit, no faults, validation on), then drives it from this
process with several concurrent keep-alive clients for a few seconds, every
request a valid 100-input upsert with 12 properties per input (a mix of
creates and updates: the bodies cycle). Bodies are serialised before the clock
starts. Prints:

- requests/s seen by the clients (wall clock; on a small machine the clients
  and the server share the cores, so this understates the server);
- the server's CPU time per request, read from /proc, and the requests/s that
  makes on one fully available core: the figure to compare with the target.

`--client httpx` (default) uses httpx.AsyncClient; `--client raw` writes the
pre-built HTTP/1.1 bytes on asyncio streams, so the client costs little.

    .venv/bin/python bench/sandbox_throughput.py [--seconds 10] [--clients 16] [--client raw]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections import Counter

import httpx
import orjson

from bulkload.sandbox import SandboxConfig, SandboxProcess

PATH = "/crm/v3/objects/calls/batch/upsert"
STATUSES = ("COMPLETED", "NO_ANSWER", "BUSY", "FAILED")
DISPOSITIONS = ("f240bbac-87c9-4f6e-bf70-924b57d47db7", "73a0d17f-1163-4015-bdd5-ec830791da20")


def make_body(batch: int, size: int = 100) -> bytes:
    inputs = []
    for i in range(size):
        n = batch * size + i
        inputs.append(
            {
                "idProperty": "external_call_id",
                "id": f"call-{n:09d}",
                "objectWriteTraceId": f"row-{n}",
                "properties": {
                    "hs_timestamp": f"2024-{1 + n % 12:02d}-{1 + n % 28:02d}T{n % 24:02d}:15:30.{n % 1000:03d}Z",
                    "hs_call_title": f"Call with customer {n}",
                    "hs_call_body": "Discussed renewal terms and next steps. " * 4,
                    "hs_call_direction": "OUTBOUND" if n % 2 else "INBOUND",
                    "hs_call_status": STATUSES[n % len(STATUSES)],
                    "hs_call_duration": str(30_000 + n % 600_000),
                    "hs_call_disposition": DISPOSITIONS[n % 2],
                    "hs_call_from_number": f"+1 617 555 {n % 10_000:04d}",
                    "hs_call_to_number": f"+1 857 555 {(n * 7) % 10_000:04d}",
                    "hs_call_recording_url": f"https://recordings.example.com/{n}.mp3",
                    "hubspot_owner_id": str(10_000_000 + 7919 * (1 + n % 25)),
                    "hs_call_has_voicemail": "false",
                },
            }
        )
    return orjson.dumps({"inputs": inputs})


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(
    base_url: str, bodies: list[bytes], seconds: float, clients: int, kind: str, pid: int
) -> tuple[float, float, Counter[int]]:
    """(requests/s by wall clock, server CPU seconds per request, statuses)."""
    statuses: Counter[int] = Counter()
    deadline = 0.0
    next_body = 0

    async def httpx_worker() -> None:
        nonlocal next_body
        headers = {"Authorization": "Bearer bench", "Content-Type": "application/json"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
            while time.perf_counter() < deadline:
                body = bodies[next_body % len(bodies)]
                next_body += 1
                response = await client.post(PATH, content=body)
                statuses[response.status_code] += 1

    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    requests = [
        b"POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer bench\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (PATH.encode(), host.encode(), len(body), body)
        for body in bodies
    ]

    async def raw_worker() -> None:
        nonlocal next_body
        reader, writer = await asyncio.open_connection(host, int(port))
        while time.perf_counter() < deadline:
            writer.write(requests[next_body % len(requests)])
            next_body += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            statuses[int(head[9:12])] += 1
        writer.close()

    worker = raw_worker if kind == "raw" else httpx_worker
    # Warm up: connections open, the first round of creates done.
    deadline = time.perf_counter() + 1.5
    await asyncio.gather(*(worker() for _ in range(clients)))
    statuses.clear()
    cpu_before = cpu_seconds(pid)
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.perf_counter() - start
    done = sum(statuses.values())
    return done / elapsed, (cpu_seconds(pid) - cpu_before) / max(done, 1), statuses


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument(
        "--distinct-batches", type=int, default=500, help="bodies cycled (ids = 100 x this)"
    )
    parser.add_argument("--client", choices=["httpx", "raw"], default="httpx")
    args = parser.parse_args()

    bodies = [make_body(i) for i in range(args.distinct_batches)]
    config = SandboxConfig(tokens=("bench",), rate_limit_max=None)
    with SandboxProcess(config) as sandbox:
        base_url = sandbox.base_url
        rate, cpu_per_request, statuses = asyncio.run(
            drive(base_url, bodies, args.seconds, args.clients, args.client, sandbox.pid)
        )
    print(
        f"sandbox at {base_url}; {args.clients} {args.client} clients for {args.seconds:g} s; "
        f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}"
    )
    print(f"statuses: {dict(statuses)}")
    print(f"clients saw:      {rate:7.0f} requests/s ({rate * 100:.0f} rows/s)")
    print(
        f"server CPU:       {cpu_per_request * 1e6:7.0f} us/request -> "
        f"{1 / cpu_per_request:.0f} requests/s on one core"
    )


if __name__ == "__main__":
    main()
