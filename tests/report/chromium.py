"""Load an HTML file in headless Chromium (Debian package ``chromium``) and read what a reader would see, over the
DevTools protocol: console errors, each image's rendered size, the page text, horizontal overflow, a screenshot."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--remote-debugging-port=0", "--remote-allow-origins=*"]
PROBE = """JSON.stringify({
  images: Array.from(document.images).map(i => ({alt: i.alt, natural: i.naturalWidth,
                                                   width: i.getBoundingClientRect().width,
                                                   height: i.getBoundingClientRect().height})),
  text: document.body.innerText,
  overflow: document.documentElement.scrollWidth - window.innerWidth,
  scrollBoxes: document.querySelectorAll('div.scroll').length})"""


class ChromiumUnavailable(RuntimeError):
    """Chromium is not installed or does not start here."""


def binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    raise ChromiumUnavailable("chromium is not installed (Debian package 'chromium'; .ci/run installs it as root)")


def inspect(page: Path, profile: Path, width: int = 800, height: int = 1000, timeout: float = 60) -> dict:
    """Open ``page`` at ``width`` × ``height``; return console/exception errors, the PROBE result and a PNG."""
    from websockets.sync.client import connect

    profile.mkdir(parents=True, exist_ok=True)
    log = profile / "chromium.log"  # a file, not a pipe: chromium's chatter can never fill it and block it
    with open(log, "w") as fh:
        proc = subprocess.Popen([binary(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                                 "about:blank"], stdout=subprocess.DEVNULL, stderr=fh)
    try:
        port = _devtools_port(proc, log, timeout)
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        with connect(ws_url, max_size=None, open_timeout=timeout) as ws:
            return _drive(ws, page, timeout)
    finally:
        proc.kill()
        proc.wait(timeout=30)


def _devtools_port(proc: subprocess.Popen, log: Path, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", log.read_text(errors="replace"))
        if m:
            return int(m[1])
        if proc.poll() is not None:
            raise ChromiumUnavailable(f"chromium exited with code {proc.returncode} before DevTools started")
        time.sleep(0.1)
    raise ChromiumUnavailable("chromium did not open its DevTools port")


def _drive(ws, page: Path, timeout: float) -> dict:
    ids = iter(range(1, 10 ** 6))
    errors: list[str] = []

    def call(method: str, params: dict | None = None) -> dict:
        i = next(ids)
        ws.send(json.dumps({"id": i, "method": method, "params": params or {}}))
        while True:
            msg = _receive(ws, timeout, errors)
            if msg.get("id") == i:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    for domain in ("Page", "Runtime", "Log"):
        call(f"{domain}.enable")
    call("Page.navigate", {"url": page.resolve().as_uri()})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _receive(ws, timeout, errors).get("method") == "Page.loadEventFired":
            break
    else:
        raise TimeoutError(f"{page} did not finish loading in {timeout} s")
    probe = json.loads(call("Runtime.evaluate", {"expression": PROBE, "returnByValue": True})["result"]["value"])
    shot = call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    return {**probe, "errors": errors, "screenshot": base64.b64decode(shot["data"])}


def _receive(ws, timeout: float, errors: list[str]) -> dict:
    msg = json.loads(ws.recv(timeout=timeout))
    method, params = msg.get("method"), msg.get("params", {})
    if method == "Runtime.exceptionThrown":
        errors.append(params["exceptionDetails"].get("text", "exception"))
    elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
    elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
        errors.append(params["entry"].get("text", ""))
    return msg
