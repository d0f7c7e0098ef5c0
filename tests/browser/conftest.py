"""Browser tests: the real platform on a free loopback port, driven by Debian's Chromium through
Playwright, the way people use the pages.

Fixtures:
- ``live_platform`` (per test): the web app (``create_app`` on a werkzeug server thread), a
  ``python worker.py`` subprocess, a committed PostgreSQL database, this test process's Redis and the
  local Polar (the ``emulator`` fixture) with an OAuth client registered for the live port. It
  yields a :class:`tests.browser.live.LivePlatform`.
- ``browser`` (per test process, for this package's tests): one Chromium, found on the PATH,
  never downloaded.
- ``new_page`` (per test): opens a page on a fresh browser context (its own cookies) at the live
  platform's base URL; ``page`` is the first one. A failing test leaves a full-page screenshot of each
  page it opened, and the worker's log, under ``test-artifacts/``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_lib
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright
from polar_emulator import EmulatorServer
from rq import Worker
from werkzeug.serving import BaseWSGIServer, make_server

from app import create_app
from provisioning.config import Settings
from provisioning.db import Database
from tests.browser.live import LivePlatform
from tests.committed import platform_env

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
# Playwright's default wait for every action, navigation and expect(); a slow step (a provisioning
# run) passes its own longer timeout.
TIMEOUT_MS = 10_000
WORKER_START_TIMEOUT = 30.0
REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


# -- test outcomes, for the screenshots of failing tests -----------------------------------------


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    if report.failed and report.when == "call" and "new_page" in getattr(item, "fixturenames", ()):
        report.sections.append(("browser", f"screenshot: {artifact_path(item, '.png', create=False)}"))
    return report


def _failed(node: pytest.Item) -> bool:
    """Whether the test body (or a fixture's set-up) failed; teardowns run after this is known."""
    reports = node.stash.get(REPORTS, {})
    return any(r.failed for r in reports.values())


def artifact_path(node: pytest.Item, suffix: str, *, create: bool = True) -> Path:
    """``test-artifacts/<the test's node id, made a file name><suffix>``."""
    if create:
        ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / (re.sub(r"[^A-Za-z0-9_.-]+", "_", node.nodeid).strip("_") + suffix)


# -- the live platform ---------------------------------------------------------------------------


def _stop_with_this_process() -> None:
    """Run in the worker's child before exec: Linux sends it SIGTERM if the test process dies."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    main_thread = threading.current_thread() is threading.main_thread()
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_stop_with_this_process if main_thread and sys.platform == "linux" else None,
        )


def _wait_for_worker(process: subprocess.Popen[bytes], redis_url: str, log_path: Path) -> None:
    """Until the worker has registered in Redis (it listens on the queue), or fail with its log."""
    connection = redis_lib.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while not Worker.all(connection=connection):
            if process.poll() is not None:
                pytest.fail(f"worker.py exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"worker.py did not start within {WORKER_START_TIMEOUT}s:\n{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.05)
    finally:
        connection.close()


def _stop_worker(process: subprocess.Popen[bytes]) -> None:
    process.terminate()  # RQ's warm shutdown: the job under way finishes first
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def live_platform(
    request: pytest.FixtureRequest,
    committing_database: Database,
    pg_url: str,
    redis_url: str,
    emulator: EmulatorServer,
    tmp_path: Path,
) -> Iterator[LivePlatform]:
    """The platform on a free loopback port: web app, worker, committed database, Redis and the local
    Polar. Everything it started is stopped, and the database emptied, after the test."""
    # The port first: the OAuth client's redirect URI names it, and the app's settings name the client.
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app=None, threaded=True)
    base_url = f"http://127.0.0.1:{server.server_port}"
    redirect_uri = f"{base_url}/polar/callback"
    registered = httpx.post(
        f"{emulator.url}/_emulator/clients",
        json={"name": "Connect Polar (browser tests)", "redirect_uris": [redirect_uri]},
        timeout=10,
    )
    registered.raise_for_status()
    client = registered.json()
    env = platform_env(pg_url=pg_url, redis_url=redis_url, polar_url=emulator.url, public_base_url=base_url)
    env |= {
        "POLAR_OAUTH_CLIENT_ID": client["client_id"],
        "POLAR_OAUTH_CLIENT_SECRET": client["client_secret"],
        "POLAR_OAUTH_REDIRECT_URI": redirect_uri,
    }
    settings = Settings.from_env(env)

    worker_log = tmp_path / "worker.log"
    worker = _start_worker(env, worker_log)  # starts while the app is built
    thread: threading.Thread | None = None
    try:
        app = create_app(settings, database=committing_database)
        server.app = app
        thread = threading.Thread(target=server.serve_forever, name="live-platform", daemon=True)
        thread.start()
        _wait_for_worker(worker, redis_url, worker_log)
        yield LivePlatform(
            base_url=base_url,
            app=app,
            settings=settings,
            env=env,
            database=committing_database,
            polar=emulator,
            polar_client_id=client["client_id"],
            polar_client_secret=client["client_secret"],
            worker_log=worker_log,
        )
    finally:
        _stop_worker(worker)
        if thread is not None:
            server.shutdown()
        server.server_close()
        if _failed(request.node) and worker_log.exists():
            shutil.copyfile(worker_log, artifact_path(request.node, ".worker.log"))


# -- the browser ---------------------------------------------------------------------------------


# Package scope, not session: while Playwright's sync API runs, its event loop counts as running in
# the main thread, and asyncio.run() there raises. Stopped after this package's last test, it leaves
# the test process's other tests (xdist sends them to the same process) as it found them; the
# browser tests come in a row, so a process still starts one browser for them.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """One headless Chromium per test process for the browser tests: Debian's ``chromium`` package
    (Playwright never downloads one here). Missing, it fails the tests under CI (``CI`` set) and
    skips them elsewhere."""
    executable = shutil.which("chromium")
    if executable is None:
        message = "chromium is not on the PATH: the browser tests need Debian's (`apt-get install chromium`)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    # Chromium's sandbox refuses to run as root (CI's containers).
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    expect.set_options(timeout=TIMEOUT_MS)
    browser = playwright.chromium.launch(executable_path=executable, args=args)
    yield browser
    browser.close()


@pytest.fixture
def new_page(
    request: pytest.FixtureRequest, browser: Browser, live_platform: LivePlatform
) -> Iterator[Callable[[], Page]]:
    """Opens a page on a fresh browser context (a browser of its own: cookies, session) at the live
    platform; call it twice for two people side by side. Screenshots of each on failure."""
    contexts: list[BrowserContext] = []
    pages: list[Page] = []

    def open_page() -> Page:
        context = browser.new_context(
            base_url=live_platform.base_url, viewport={"width": 1280, "height": 900}
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        pages.append(page)
        return page

    yield open_page
    try:
        if _failed(request.node):
            for number, page in enumerate(pages, start=1):
                suffix = ".png" if number == 1 else f"-{number}.png"
                try:
                    page.screenshot(path=artifact_path(request.node, suffix), full_page=True)
                except Exception as exc:  # a crashed page: the report still says what failed
                    print(f"no screenshot of page {number}: {exc}", file=sys.stderr)
    finally:
        for context in contexts:
            context.close()


@pytest.fixture
def page(new_page: Callable[[], Page]) -> Page:
    """A page on a fresh browser context at the live platform (``page.goto("/login")``)."""
    return new_page()
