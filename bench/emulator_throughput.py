"""Throughput and concurrency of the local Polar (``python -m polar_emulator``).

Run: ``.venv/bin/python bench/emulator_throughput.py [--seconds 5] [--connections 64]``

The emulator runs in its own process so the load generator does not share its GIL. A token comes
from the real OAuth flow (consent form + ``POST /v1/oauth2/token``). Then:

(a) requests/s of ``GET /v1/organizations/`` over many keep-alive connections, no faults;
(b) a fault ``latency_ms=100`` on that path and 250 requests fired at once: the server's request
    log gives each request's duration, which with the client's finish times gives the maximum
    number of requests in flight at the server (and the wall time shows whether any queued);
(c) baseline: the same load against a bare ASGI app under the same uvicorn (httptools + uvloop),
    so ``ratio`` says how much of the framework's ceiling the emulator reaches.

The last line is ``key=value`` pairs: ``rps=… inflight=… wall_ms=… baseline_rps=… ratio=…``.
Goals: rps ≥ 1000, inflight ≥ 200 without queueing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from polar_emulator.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URI  # noqa: E402

PATH = "/v1/organizations/"
BURST = 250
LATENCY_MS = 100

BARE_APP = textwrap.dedent(
    """
    import json, socket, sys, uvicorn
    BODY = json.dumps({"items": [], "pagination": {"total_count": 0, "max_page": 0}}).encode()
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(BODY)).encode())]})
        await send({"type": "http.response.body", "body": BODY})
    sock = socket.socket(); sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(sys.argv[1])))
    print("ready", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                  backlog=2048)).run(sockets=[sock])
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def process(args: list[str], ready_url: str):
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_ready(ready_url)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def oauth_token(base: str) -> str:
    """The real authorization-code flow: consent form, then the token endpoint (client_secret_post)."""
    params = {
        "response_type": "code",
        "client_id": DEMO_CLIENT_ID,
        "redirect_uri": DEMO_REDIRECT_URI,
        "scope": "openid organizations:read",
        "state": "bench",
    }
    with httpx.Client(base_url=base, timeout=10) as http:
        consent = http.post(
            "/oauth2/authorize", params=params, data={"user": "demo@polar.local", "action": "allow"}
        )
        assert consent.status_code == 302, consent.text
        code = parse_qs(urlparse(consent.headers["location"]).query)["code"][0]
        token = http.post(
            "/v1/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": DEMO_REDIRECT_URI,
                "client_id": DEMO_CLIENT_ID,
                "client_secret": DEMO_CLIENT_SECRET,
            },
        )
        assert token.status_code == 200, token.text
        return token.json()["access_token"]


# -- a minimal keep-alive HTTP/1.1 client (httpx would be the bottleneck on a small machine) ----


class Conn:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def get(self, target: str, token: str | None) -> int:
        assert self.reader is not None and self.writer is not None
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.writer.write(f"GET {target} HTTP/1.1\r\nHost: {self.host}\r\n{auth}\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def throughput(port: int, token: str | None, seconds: float, connections: int) -> tuple[float, int]:
    """Requests/s over ``connections`` keep-alive connections for ``seconds``; also the non-200 count."""
    conns = [Conn("127.0.0.1", port) for _ in range(connections)]
    await asyncio.gather(*(c.open() for c in conns))
    done = bad = 0
    stop = time.perf_counter() + seconds

    async def worker(conn: Conn) -> None:
        nonlocal done, bad
        while time.perf_counter() < stop:
            if await conn.get(PATH, token) != 200:
                bad += 1
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - started
    for c in conns:
        c.close()
    return done / elapsed, bad


async def burst(port: int, token: str) -> tuple[list[tuple[str, float]], float, list[int]]:
    """Fire BURST requests at once on pre-opened connections; (target, finish time), wall time, statuses."""
    conns = [Conn("127.0.0.1", port) for _ in range(BURST)]
    await asyncio.gather(*(c.open() for c in conns))
    finished: list[tuple[str, float]] = []

    async def one(i: int, conn: Conn) -> int:
        target = f"{PATH}?burst={i}"
        status = await conn.get(target, token)
        finished.append((f"burst={i}", time.time()))
        return status

    started = time.perf_counter()
    statuses = await asyncio.gather(*(one(i, c) for i, c in enumerate(conns)))
    wall = time.perf_counter() - started
    for c in conns:
        c.close()
    return finished, wall, list(statuses)


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    best = current = 0
    for _, delta in points:
        current += delta
        best = max(best, current)
    return best


def run(seconds: float, connections: int) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    py = sys.executable
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env_note = f"cpus={os.cpu_count()}"
    with process(
        [py, "-m", "polar_emulator", "--port", str(port)], f"{base}/.well-known/openid-configuration"
    ):
        token = oauth_token(base)
        asyncio.run(throughput(port, token, 0.5, connections))  # warm-up
        httpx.post(f"{base}/_emulator/reset")
        token = oauth_token(base)
        rps, bad = asyncio.run(throughput(port, token, seconds, connections))
        print(f"(a) GET {PATH} with an OAuth token, {connections} keep-alive connections, {seconds:.0f}s:")
        print(f"    {rps:,.0f} requests/s ({bad} non-200)")

        httpx.post(f"{base}/_emulator/reset")
        token = oauth_token(base)
        httpx.post(
            f"{base}/_emulator/faults", json={"path": PATH, "latency_ms": LATENCY_MS}
        ).raise_for_status()
        finished, wall, statuses = asyncio.run(burst(port, token))
        log = httpx.get(f"{base}/_emulator/requests", timeout=30).json()
        durations = {r["query"]: r["duration_ms"] / 1000 for r in log if r["query"].startswith("burst=")}
        intervals = [(end - durations[q], end) for q, end in finished if q in durations]
        inflight = max_overlap(intervals)
        ok = sum(1 for s in statuses if s == 200)
        print(f"(b) {BURST} requests at once with a {LATENCY_MS} ms fault latency:")
        print(f"    wall {wall * 1000:.0f} ms, {ok}/{BURST} OK, max in flight at the server: {inflight}")
        print(f"    (no queueing ⇔ wall ≈ {LATENCY_MS}-200 ms and in flight ≈ {BURST})")

    bare_port = free_port()
    with process([py, "-c", BARE_APP, str(bare_port)], f"http://127.0.0.1:{bare_port}/"):
        asyncio.run(throughput(bare_port, None, 0.5, connections))
        baseline, _ = asyncio.run(throughput(bare_port, None, seconds, connections))
    ratio = rps / baseline if baseline else 0.0
    print(
        f"(c) bare ASGI app under the same uvicorn: {baseline:,.0f} requests/s; emulator/bare = {ratio:.2f}"
    )
    print(
        f"    goals: rps >= 1000 ({'met' if rps >= 1000 else 'NOT met'}), "
        f"inflight >= 200 ({'met' if inflight >= 200 else 'NOT met'}); {env_note}"
    )
    print(
        f"rps={rps:.0f} inflight={inflight} wall_ms={wall * 1000:.0f} "
        f"baseline_rps={baseline:.0f} ratio={ratio:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    run(args.seconds, args.connections)


if __name__ == "__main__":
    main()
