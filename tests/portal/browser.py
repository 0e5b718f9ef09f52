"""Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright from a thread of its own.

Playwright's sync API keeps an asyncio event loop running in the thread that started it, and
Django refuses database calls from a thread with a running loop (``SynchronousOnlyOperation``).
Rather than switch that check off for the whole process (``DJANGO_ALLOW_ASYNC_UNSAFE``), the
browser lives in a dedicated thread and the test thread talks to it through ``Remote`` proxies:
each call on a proxy runs in the browser thread and returns its result (Playwright objects wrapped
again), so tests read like plain Playwright while the test thread stays free for the ORM.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class BrowserThread:
    """Owns Playwright and one Chromium; runs submitted callables in its thread, one at a time."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], Any], queue.Queue] | None] = queue.Queue()
        ready: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="playwright", daemon=True)
        self._thread.start()
        ok, value = ready.get(timeout=60)
        if not ok:
            raise value
        self.browser = Remote(self, value)

    def _run(self, ready: queue.Queue) -> None:
        from playwright.sync_api import sync_playwright

        try:
            playwright = sync_playwright().start()
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except BaseException as exc:  # report start-up failures to the test thread
            ready.put((False, exc))
            return
        ready.put((True, browser))
        while (job := self._jobs.get()) is not None:
            fn, reply = job
            try:
                reply.put((True, fn()))
            except BaseException as exc:
                reply.put((False, exc))
        browser.close()
        playwright.stop()

    def call(self, fn: Callable[[], Any]) -> Any:
        reply: queue.Queue = queue.Queue()
        self._jobs.put((fn, reply))
        ok, value = reply.get(timeout=120)
        if not ok:
            raise value
        return value

    def expect(self, target: Any, **kwargs: Any) -> "Remote":
        """``playwright.sync_api.expect`` for a proxied page or locator."""
        from playwright.sync_api import expect

        return Remote(self, self.call(lambda: expect(_unwrap(target), **kwargs)))

    def download(self, page: "Remote", action: Callable[[Any], Any], to: Any) -> str:
        """Run ``action(page)`` (a click) and save the download it starts to ``to``."""
        raw = _unwrap(page)

        def run() -> str:
            with raw.expect_download() as info:
                action(raw)
            info.value.save_as(str(to))
            return str(to)

        return self.call(run)

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=30)


def _unwrap(value: Any) -> Any:
    if isinstance(value, Remote):
        return object.__getattribute__(value, "_obj")
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    return value


def _wrap(owner: BrowserThread, value: Any) -> Any:
    module = type(value).__module__ or ""
    if module.startswith("playwright."):
        return Remote(owner, value)
    if isinstance(value, list):
        return [_wrap(owner, v) for v in value]
    return value


class Remote:
    """A Playwright object living in the browser thread; attribute reads and calls run there."""

    def __init__(self, owner: BrowserThread, obj: Any) -> None:
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_obj", obj)

    def __getattr__(self, name: str) -> Any:
        owner: BrowserThread = object.__getattribute__(self, "_owner")
        obj = object.__getattribute__(self, "_obj")
        value = owner.call(lambda: getattr(obj, name))
        if callable(value) and not isinstance(value, type):
            def method(*args: Any, **kwargs: Any) -> Any:
                a, k = _unwrap(args), _unwrap(kwargs)
                return _wrap(owner, owner.call(lambda: value(*a, **k)))
            return method
        return _wrap(owner, value)

    def __repr__(self) -> str:
        return f"Remote({object.__getattribute__(self, '_obj')!r})"
