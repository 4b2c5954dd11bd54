"""The HTML report in a real headless Chromium, driven over the DevTools protocol.

Checks that the page renders with no console errors and no script, that the
chart and every section are there, and that the numbers on the page equal SQL
run over the same ledger. Screenshots (light, dark) and a PDF print go to
``artifacts/`` for CI to keep.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import require_servers
from test_report import NOW, PERIOD, make_events, write_ledger

from llm_cost_tracker.report import build_report, render

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--remote-debugging-port=0",
    "--window-size=1200,900",
]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    message = "headless Chromium is not installed (apt-get install -y chromium)"
    if require_servers():
        pytest.fail(message)
    pytest.skip(message)


class DevTools:
    """A minimal Chrome DevTools Protocol client over one page's websocket."""

    def __init__(self, ws_url: str) -> None:
        import websocket  # websocket-client, in the dev extra

        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        call_id = self.next_id
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv())
            self.events.append(message)
            if message.get("method") == method:
                return message
        raise TimeoutError(method)

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    profile = tmp_path / "chromium-profile"
    process = subprocess.Popen(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
            pages = [t for t in json.load(reply) if t.get("type") == "page"]
        tools = DevTools(pages[0]["webSocketDebuggerUrl"])
        try:
            yield tools
        finally:
            tools.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _sql(db: Path, query: str, *params: Any) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(db)
    try:
        return connection.execute(query, params).fetchall()
    finally:
        connection.close()


def _decimal(value: Any) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value or 0))


def _close(a: Decimal, b: Decimal) -> bool:
    return abs(a - b) < Decimal("1e-9")


EXTRACT = """(() => {
  const value = (el) => el ? el.getAttribute('data-value') : null;
  const rows = (sel) => Array.from(document.querySelectorAll(sel));
  return {
    sections: rows('section').map(s => s.id),
    scripts: document.querySelectorAll('script').length,
    cards: Object.fromEntries(rows('#totals .card').map(c => [c.dataset.key, c.dataset.value])),
    bars: rows('#daily-chart rect.bar').map(r => [r.dataset.day, r.dataset.provider, r.dataset.value]),
    models: rows('#models tbody tr').map(r => [r.dataset.provider, r.dataset.model,
        r.cells[2].textContent.replace(/,/g, ''), value(r.cells[5])]),
    features: rows('#tag-feature tbody tr').map(r => [r.classList.contains('untagged') ? null : r.cells[0].textContent,
        r.cells[1].textContent.replace(/,/g, ''), value(r.cells[2])]),
    top: rows('#top-calls tbody tr').map(r => r.dataset.callId),
    saved: value(document.querySelector('[data-key=cache_saved]')),
    width: document.documentElement.scrollWidth,
    height: document.documentElement.scrollHeight,
    dark: getComputedStyle(document.body).backgroundColor,
  };
})()"""


def test_report_renders_in_chromium_and_matches_sql(browser: DevTools, tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    url = f"sqlite:///{db}"
    write_ledger(url, make_events(400))
    page = tmp_path / "report.html"
    page.write_text(render(build_report(url, period=PERIOD, group_by=["feature"], now=NOW), "html"))

    browser.send("Runtime.enable")
    browser.send("Log.enable")
    browser.send("Page.enable")
    browser.send("Page.navigate", url=page.as_uri())
    browser.wait_for("Page.loadEventFired")
    data = browser.evaluate(EXTRACT)

    problems = [
        e
        for e in browser.events
        if e.get("method") == "Runtime.exceptionThrown"
        or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    assert problems == []
    assert data["scripts"] == 0  # the hostile tag value stayed text
    assert data["sections"] == [
        "totals",
        "daily",
        "models",
        "tag-feature",
        "top-calls",
        "cache-savings",
        "budgets",
        "data-quality",
        "prices",
    ]

    window = (
        PERIOD.start.strftime("%Y-%m-%d %H:%M:%S.%f"),
        PERIOD.end.strftime("%Y-%m-%d %H:%M:%S.%f"),
    )
    where = "occurred_at >= ? AND occurred_at < ?"
    calls, cost = _sql(
        db, f"SELECT COUNT(*), SUM(total_cost) FROM llm_cost_tracker_calls WHERE {where}", *window
    )[0]
    assert int(data["cards"]["calls"]) == calls
    assert _close(Decimal(data["cards"]["cost"]), _decimal(cost))

    daily = _sql(
        db,
        f"""SELECT substr(occurred_at, 1, 10), provider, SUM(total_cost) FROM llm_cost_tracker_calls
            WHERE {where} GROUP BY 1, 2 ORDER BY 1, 2""",
        *window,
    )
    assert len(data["bars"]) == len(daily)
    for (day, provider, value), (sql_day, sql_provider, sql_cost) in zip(
        sorted(data["bars"]), daily, strict=True
    ):
        assert (day, provider) == (sql_day, sql_provider)
        assert _close(Decimal(value), _decimal(sql_cost))

    models = {
        (p, m): (n, None if c is None else _decimal(c))
        for p, m, n, c in _sql(
            db,
            f"SELECT provider, model, COUNT(*), SUM(total_cost) FROM llm_cost_tracker_calls WHERE {where} GROUP BY 1, 2",
            *window,
        )
    }
    assert len(data["models"]) == len(models)
    for provider, model, shown_calls, shown_cost in data["models"]:
        sql_calls, sql_cost = models[(provider, model)]
        assert int(shown_calls) == sql_calls
        if sql_cost is None:  # no call of this model has a price: "unknown", not $0.00
            assert shown_cost is None
        else:
            assert _close(Decimal(shown_cost), sql_cost)

    features = {
        v: (n, _decimal(c))
        for v, n, c in _sql(
            db,
            f"""SELECT t.value, COUNT(*), SUM(c.total_cost) FROM llm_cost_tracker_calls c
                LEFT JOIN llm_cost_tracker_call_tags t ON t.call_id = c.id AND t.key = 'feature'
                WHERE c.{where.replace(" AND ", " AND c.")} GROUP BY t.value""",
            *window,
        )
    }
    assert len(data["features"]) == len(features)
    for value, shown_calls, shown_cost in data["features"]:
        sql_calls, sql_cost = features[value]
        assert int(shown_calls) == sql_calls
        assert _close(Decimal(shown_cost), sql_cost)
    assert "<script>alert(1)</script>" in [f[0] for f in data["features"]]

    top = _sql(
        db,
        f"SELECT id FROM llm_cost_tracker_calls WHERE {where} AND total_cost IS NOT NULL ORDER BY total_cost DESC LIMIT 20",
        *window,
    )
    assert data["top"] == [r[0] for r in top]

    saved = _sql(
        db,
        f"""SELECT SUM(cr.quantity * (inp.unit_price - cr.unit_price)) FROM llm_cost_tracker_calls c
            JOIN llm_cost_tracker_call_line_items cr ON cr.call_id = c.id AND cr.component = 'cache_read'
            JOIN llm_cost_tracker_call_line_items inp ON inp.call_id = c.id AND inp.component = 'input'
            WHERE c.{where.replace(" AND ", " AND c.")}""",
        *window,
    )[0][0]
    assert abs(Decimal(data["saved"]) - _decimal(saved)) < Decimal("1e-8")

    ARTIFACTS.mkdir(exist_ok=True)
    clip = {"x": 0, "y": 0, "width": data["width"], "height": data["height"], "scale": 1}
    shot = browser.send(
        "Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip
    )
    (ARTIFACTS / "report.png").write_bytes(base64.b64decode(shot["data"]))

    browser.send(
        "Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": "dark"}]
    )
    dark = browser.evaluate("getComputedStyle(document.body).backgroundColor")
    assert dark != data["dark"]  # the dark palette applies
    shot = browser.send(
        "Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip
    )
    (ARTIFACTS / "report-dark.png").write_bytes(base64.b64decode(shot["data"]))

    pdf = browser.send("Page.printToPDF", printBackground=False)
    printed = base64.b64decode(pdf["data"])
    assert printed.startswith(b"%PDF")
    (ARTIFACTS / "report.pdf").write_bytes(printed)
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000
    assert os.access(ARTIFACTS / "report-dark.png", os.R_OK)
