"""The station app on an emulated 2G/3G network: issue 15's budget, measured (not a test).

    python -m bench.station [--runs 5] [--latency-ms 2000] [--throughput-kbs 50]
                            [--chromium /usr/bin/chromium] [--json]

The budget: the first load transfers at most 150 KB (compressed); with a 2,000 ms round
trip and 50 KB/s, the first load is usable within 10 s and a later open (from the service
worker's cache) within 1 s.

One ``vledger serve`` subprocess (one worker, default settings) on a fresh SQLite file in
a temporary folder. Setup, untimed: an operator key (what ``vledger keys create`` makes),
then per run an agent onboarded with float and a one-time enrollment code (through the
signed API, as ``tests/test_station_app.py`` does).

Debian's chromium driven by Playwright, a fresh browser context per run (no cache, no
service worker, no key), a phone's viewport. Each measured open is a new page whose CDP
session sets ``Network.emulateNetworkConditions`` (latency ``--latency-ms``, download and
upload ``--throughput-kbs`` x 1,024 bytes/s) on the page **and** on the service worker
(auto-attached through the page's session, throttled before it runs), so the worker's
precache and its API reads pay the same network. The latency is added to each request
(TCP set-up is not emulated); the browser's six connections per host are real. Measured:

1. **first load** (not enrolled): bytes transferred (``encodedDataLength`` of
   ``Network.loadingFinished``, summed: compressed, headers included) by the page, and by
   the service worker precaching the shell; the time from navigation start until the
   enrollment form is usable (``main[data-ready="enroll"]``: the form drawn, words loaded);
   and until the shell is cached (the worker controls the page: it would open offline);
2. **enrolled, cold**: the phone enrolled (the app's own enrollment form, unthrottled),
   then the worker, its caches and the HTTP cache removed (the key in IndexedDB kept, as
   after a browser evicted the cache): the time until home is usable
   (``main[data-ready="home"]``: the station's name and float read through the signed API
   and drawn) and the bytes;
3. **later open** from the worker's cache, the worker stopped first (as after the phone
   slept): not enrolled, until the enrollment form is usable; enrolled, until the shell is
   usable (the menu drawn: every screen reachable) and until home is usable. Caveat: the
   worker restarted for a later open is not auto-attached through the new page's session
   (its ``worker_requests`` stay 0), so home's two signed API reads (network first, by the
   worker) are NOT throttled there: that ``home`` figure is reported but not judged; on
   the emulated network it costs at least one more round trip after the menu.

Times are the page's own clock (``performance.now()`` at the moment a ``MutationObserver``
saw the element, from navigation start), the figures the medians of ``--runs`` runs. The
machine's load average is reported before and after: other processes share the CPU.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.http import HOST, free_port

RUNS_DEFAULT = 5
LATENCY_MS_DEFAULT = 2000
THROUGHPUT_KBS_DEFAULT = 50
CHROMIUM_DEFAULT = "/usr/bin/chromium"
BUDGET_BYTES = 150 * 1024
BUDGET_FIRST_MS = 10_000
BUDGET_LATER_MS = 1_000
START_TIMEOUT_S = 30.0
WAIT_MS = 120_000
"""The longest any measured open may take before the run fails."""
FLOAT_MINOR = 100_000
PHONE = {"width": 360, "height": 640}
STATION = "/station/"
MARKS = """(() => {
  window.__marks = {};
  const seen = () => {
    const main = document.querySelector("main[data-ready]");
    if (main && !(main.dataset.ready in window.__marks)) {
      window.__marks[main.dataset.ready] = performance.now();
    }
    if (!("menu" in window.__marks) && document.querySelector("#menu button[data-screen]")) {
      window.__marks.menu = performance.now();
    }
  };
  new MutationObserver(seen).observe(document, { subtree: true, childList: true,
    attributes: true, attributeFilter: ["data-ready"] });
})();"""
"""Injected before the page's scripts: when each ``data-ready`` screen and the menu
appeared, on the page's clock."""
CONTROLLED = """async () => {
  await navigator.serviceWorker.ready;
  if (!navigator.serviceWorker.controller) {
    await new Promise((done) => navigator.serviceWorker.addEventListener(
      "controllerchange", done, { once: true }));
  }
  return performance.now();
}"""


# -- the server -----------------------------------------------------------------------


@dataclass
class Served:
    base_url: str
    db_url: str
    folder: Path
    operator: Any  # api.client.Client


@contextmanager
def served(folder: Path) -> Iterator[Served]:
    """``vledger serve`` on a fresh SQLite file, and an operator's signing client."""
    from api.client import Client
    from api.keys import create_key

    db_url = f"sqlite:///{folder}/station.db"
    port = free_port()
    command = [sys.executable, "-m", "vledger", "serve", "--host", HOST, "--port", str(port)]
    with (folder / "server.log").open("wb") as log:
        process = subprocess.Popen([*command, "--database", db_url], stdout=log, stderr=log)
        try:
            _wait_healthy(process, port, folder / "server.log")
            key = folder / "operator.pem"
            made = create_key(db_url, "operator", "bench-operator", "ed25519", key)
            base = f"http://{HOST}:{port}"
            with Client.from_key_file(base, made["key_id"], key) as operator:
                yield Served(base, db_url, folder, operator)
        finally:
            process.terminate()
            process.wait(timeout=10)


def _wait_healthy(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"vledger serve exited: see {log}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"vledger serve did not start: see {log}")


def enrollment_code(served: Served) -> str:
    """A new agent with float, and a one-time code to enroll a phone as it."""
    from api.keys import create_key

    name = f"agent-{uuid.uuid4().hex[:8]}"
    made = create_key(served.db_url, "agent", name, "ed25519", served.folder / f"{name}.pem")
    agent = made["principal_id"]
    call = served.operator.call
    call(
        "POST",
        "/v1/parties",
        json_body={"id": agent, "kind": "agent", "name": "Duka la Bench"} | {"currency": "KES"},
    )
    top_up = {"id": str(uuid.uuid4()), "amount_minor": FLOAT_MINOR, "provider": "KCB"}
    call("POST", f"/v1/agents/{agent}/float-topups", json_body=top_up)
    code: str = call("POST", "/v1/enrollments", json_body={"principal_id": agent})["code"]
    return code


# -- one throttled page -----------------------------------------------------------------


@dataclass
class Tally:
    """Bytes over the network (compressed, headers included) and requests, by whom."""

    page_bytes: int = 0
    page_requests: int = 0
    worker_bytes: int = 0
    worker_requests: int = 0
    cached: set[str] = field(default_factory=set)

    @property
    def total_bytes(self) -> int:
        return self.page_bytes + self.worker_bytes


class Throttled:
    """A new page of ``context`` on the emulated network, its service worker included."""

    def __init__(self, context: Any, conditions: dict[str, Any]) -> None:
        self.page = context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.tally = Tally()
        self.conditions = conditions
        self.cdp = context.new_cdp_session(self.page)
        self.cdp.on("Network.responseReceived", self._page_response)
        self.cdp.on("Network.loadingFinished", self._page_finished)
        self.cdp.on("Target.attachedToTarget", self._attached)
        self.cdp.on("Target.receivedMessageFromTarget", self._worker_message)
        self.cdp.send("Network.enable")
        self.cdp.send("Network.emulateNetworkConditions", conditions)
        self.cdp.send(
            "Target.setAutoAttach",
            {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": False},
        )
        self._sent = 0

    def _page_response(self, event: dict[str, Any]) -> None:
        response = event["response"]
        if response.get("fromServiceWorker") or response.get("fromDiskCache"):
            self.tally.cached.add(event["requestId"])

    def _page_finished(self, event: dict[str, Any]) -> None:
        if event["requestId"] not in self.tally.cached:
            self.tally.page_bytes += int(event["encodedDataLength"])
            self.tally.page_requests += 1

    def _to_worker(self, session: str, method: str, params: dict[str, Any] | None = None) -> None:
        self._sent += 1
        message = json.dumps({"id": self._sent, "method": method, "params": params or {}})
        self.cdp.send("Target.sendMessageToTarget", {"sessionId": session, "message": message})

    def _attached(self, event: dict[str, Any]) -> None:
        """A service worker (or another worker): throttle it, then let it run."""
        session = event["sessionId"]
        self._to_worker(session, "Network.enable")
        self._to_worker(session, "Network.emulateNetworkConditions", self.conditions)
        if event.get("waitingForDebugger"):
            self._to_worker(session, "Runtime.runIfWaitingForDebugger")

    def _worker_message(self, event: dict[str, Any]) -> None:
        message = json.loads(event["message"])
        if message.get("method") == "Network.loadingFinished":
            self.tally.worker_bytes += int(message["params"]["encodedDataLength"])
            self.tally.worker_requests += 1

    def open(self, url: str, *marks: str) -> dict[str, float]:
        """Navigate; the page's time (ms from navigation start) of each mark: a screen
        name (``main[data-ready=...]``) or ``menu``."""
        self.page.add_init_script(MARKS)
        self.page.goto(url, wait_until="commit")
        for mark in marks:
            self.page.wait_for_function("(m) => window.__marks && m in window.__marks", arg=mark)
        found: dict[str, float] = self.page.evaluate("() => window.__marks")
        return {mark: found[mark] for mark in marks}

    def controlled_ms(self) -> float:
        """When a service worker (with the shell cached) controlled the page."""
        at: float = self.page.evaluate(CONTROLLED)
        return at

    def close(self) -> None:
        self.cdp.detach()
        self.page.close()


# -- one run --------------------------------------------------------------------------


def _unthrottled_enroll(context: Any, base: str, code: str) -> None:
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(base + STATION)
    page.wait_for_selector('main[data-ready="enroll"]', state="attached")
    page.fill("#code", code)
    page.click("#enroll")
    page.wait_for_selector('main[data-ready="home"]', state="attached")
    page.close()


def _forget_the_shell(context: Any, base: str) -> None:
    """Remove the service worker, its caches and the HTTP cache; keep IndexedDB (the key)."""
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send(
        "Storage.clearDataForOrigin",
        {"origin": base, "storageTypes": "service_workers,cache_storage"},
    )
    cdp.send("Network.enable")
    cdp.send("Network.clearBrowserCache")
    cdp.detach()
    page.close()


def _stop_workers(context: Any) -> None:
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("ServiceWorker.enable")
    cdp.send("ServiceWorker.stopAllWorkers")
    cdp.detach()
    page.close()


def _measured(
    context: Any, conditions: dict[str, Any], url: str, *marks: str, wait_worker: bool = False
) -> dict[str, float]:
    opened = Throttled(context, conditions)
    try:
        found = opened.open(url, *marks)
        if wait_worker:
            found["offline_ready"] = opened.controlled_ms()
            opened.page.wait_for_timeout(500)  # the last precache answers' events
        tally = opened.tally
        found |= {"page_bytes": tally.page_bytes, "page_requests": tally.page_requests}
        found |= {"worker_bytes": tally.worker_bytes, "worker_requests": tally.worker_requests}
        found["bytes"] = tally.total_bytes
        return found
    finally:
        opened.close()


def one_run(browser: Any, served: Served, conditions: dict[str, Any]) -> dict[str, Any]:
    """The measured opens of one fresh context (see the module's docstring)."""
    url = served.base_url + STATION
    context = browser.new_context(viewport=PHONE, service_workers="allow")
    try:
        first = _measured(context, conditions, url, "enroll", wait_worker=True)
        _stop_workers(context)
        later_new = _measured(context, conditions, url, "enroll")
        _unthrottled_enroll(context, served.base_url, enrollment_code(served))
        _stop_workers(context)
        later = _measured(context, conditions, url, "menu", "home")
        _forget_the_shell(context, served.base_url)
        cold = _measured(context, conditions, url, "menu", "home", wait_worker=True)
    finally:
        context.close()
    return {
        "first": first,
        "later_not_enrolled": later_new,
        "later_enrolled": later,
        "enrolled_cold": cold,
    }


# -- the runs -------------------------------------------------------------------------


def medians(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per open and figure, the median over the runs."""
    return {
        open_: {key: statistics.median(r[open_][key] for r in runs) for key in runs[0][open_]}
        for open_ in runs[0]
    }


def verdict(median: dict[str, dict[str, float]]) -> dict[str, bool]:
    return {
        "first_load_bytes": median["first"]["bytes"] <= BUDGET_BYTES,
        "first_load_usable": median["first"]["enroll"] <= BUDGET_FIRST_MS,
        "enrolled_cold_usable": median["enrolled_cold"]["home"] <= BUDGET_FIRST_MS,
        "later_open_not_enrolled": median["later_not_enrolled"]["enroll"] <= BUDGET_LATER_MS,
        "later_open_shell": median["later_enrolled"]["menu"] <= BUDGET_LATER_MS,
    }


def run(runs: int, latency_ms: int, throughput_kbs: int, chromium: str) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    bytes_per_s = throughput_kbs * 1024
    conditions = {
        "offline": False,
        "latency": latency_ms,
        "downloadThroughput": bytes_per_s,
        "uploadThroughput": bytes_per_s,
    }
    load_before = os.getloadavg()
    found: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench_station_") as folder,
        served(Path(folder)) as s,
        sync_playwright() as driver,
    ):
        browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            version = browser.version
            found = [one_run(browser, s, conditions) for _ in range(runs)]
        finally:
            browser.close()
    median = medians(found)
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": load_before,
            "load_after": os.getloadavg(),
        },
        "chromium": version,
        "conditions": conditions,
        "runs": runs,
        "each": found,
        "median": median,
        "met": verdict(median),
    }


def _report(out: dict[str, Any], show: Callable[[str], None] = print) -> None:
    m = out["median"]
    kb: Callable[[float], str] = lambda n: f"{n / 1024:.1f} KB"  # noqa: E731
    s: Callable[[float], str] = lambda ms: f"{ms / 1000:.2f} s"  # noqa: E731
    first, cold = m["first"], m["enrolled_cold"]
    show(f"chromium {out['chromium']}, {out['runs']} runs, medians; load {out['machine']}")
    show(
        f"first load: {kb(first['bytes'])} ({kb(first['page_bytes'])} page in"
        f" {first['page_requests']:.0f} requests + {kb(first['worker_bytes'])} precache in"
        f" {first['worker_requests']:.0f}); enroll form usable {s(first['enroll'])};"
        f" offline-ready {s(first['offline_ready'])}"
    )
    show(
        f"enrolled, cold: home usable {s(cold['home'])} (menu {s(cold['menu'])}),"
        f" {kb(cold['bytes'])}"
    )
    show(f"later open, not enrolled: enroll form {s(m['later_not_enrolled']['enroll'])}")
    later = m["later_enrolled"]
    show(
        f"later open, enrolled: menu {s(later['menu'])}, home {s(later['home'])},"
        f" {kb(later['bytes'])}"
    )
    show("met: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in out["met"].items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.station",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=RUNS_DEFAULT)
    parser.add_argument("--latency-ms", type=int, default=LATENCY_MS_DEFAULT)
    parser.add_argument("--throughput-kbs", type=int, default=THROUGHPUT_KBS_DEFAULT)
    parser.add_argument("--chromium", default=CHROMIUM_DEFAULT)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    out = run(args.runs, args.latency_ms, args.throughput_kbs, args.chromium)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        _report(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
