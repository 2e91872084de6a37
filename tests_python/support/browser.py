"""Headless Chromium for tests that must see a page as a browser renders it (stdlib only).

- `chromium_path()`: Debian's `chromium`, installed by the set-up step (`make setup-browser`,
  which `make test` runs), never from here.
- `screenshot(url_or_path, png, width, height)` and `dump_dom(url_or_path)`: one-shot
  command-line runs; `--virtual-time-budget` lets JavaScript-rendered pages finish first.
- `open_page(width, height)`: a live page driven over the Chrome DevTools Protocol
  (`goto`, `evaluate` JavaScript, `wait_for` a JavaScript condition, `screenshot`), through a
  minimal RFC 6455 WebSocket client, so no websocket package is needed.

Every run gets a fresh profile directory and is kept offline from Google's services
(no sync, component updates, background networking or QUIC). `--no-sandbox` is added only
when running as root, where Chromium refuses to start with its sandbox.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

DEFAULT_BINARY = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
)


def chromium_path() -> str:
    """The Chromium binary: $ML_EVAL_CHROMIUM, `chromium` on PATH, or Debian's /usr/bin/chromium."""
    found = os.environ.get("ML_EVAL_CHROMIUM") or shutil.which("chromium")
    if found:
        return found
    if Path(DEFAULT_BINARY).exists():
        return DEFAULT_BINARY
    raise RuntimeError("chromium is not installed: run `make setup-browser` (Debian's package, as root)")


def to_url(url_or_path: str | Path) -> str:
    """A URL as is; a file path (optionally with `#fragment`) as an absolute file:// URL."""
    text = str(url_or_path)
    if "://" in text or text.startswith(("about:", "data:")):
        return text
    path, _, fragment = text.partition("#")
    return Path(path).resolve().as_uri() + (f"#{fragment}" if fragment else "")


def _flags(profile: str, width: int, height: int) -> list[str]:
    sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []
    return [*FLAGS, *sandbox, f"--user-data-dir={profile}", f"--window-size={width},{height}"]


def _run_once(extra: list[str], url_or_path: str | Path, width: int, height: int, timeout: float) -> str:
    with tempfile.TemporaryDirectory(prefix="ml-eval-chromium-") as profile:
        command = [
            chromium_path(),
            *_flags(profile, width, height),
            *extra,
            to_url(url_or_path),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"chromium exited {done.returncode}: {last}")
    return done.stdout


def screenshot(
    url_or_path: str | Path, png: str | Path, width: int = 1600, height: int = 1000, budget_ms: int = 15000
) -> Path:
    """Render the page for `budget_ms` of virtual time and save a PNG of the viewport."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    extra = [
        f"--virtual-time-budget={budget_ms}",
        "--run-all-compositor-stages-before-draw",
        f"--screenshot={png}",
    ]
    _run_once(extra, url_or_path, width, height, timeout=budget_ms / 1000 + 120)
    if not png.exists():
        raise RuntimeError(f"chromium wrote no screenshot to {png}")
    return png


def dump_dom(url_or_path: str | Path, budget_ms: int = 15000) -> str:
    """The page's DOM (as HTML) after `budget_ms` of virtual time."""
    extra = [f"--virtual-time-budget={budget_ms}", "--run-all-compositor-stages-before-draw", "--dump-dom"]
    return _run_once(extra, url_or_path, 1600, 1000, timeout=budget_ms / 1000 + 120)


class _WebSocket:
    """The client side of RFC 6455, enough for DevTools: text messages, ping/pong, close."""

    def __init__(self, url: str, timeout: float = 60):
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {parts.path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            response += chunk
        head, _, self.buffer = response.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"DevTools refused the WebSocket: {head.splitlines()[0].decode()}")

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buffer)))
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        header = bytes([0x80 | opcode])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        elif len(payload) < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", len(payload))
        mask = os.urandom(4)  # clients must mask every frame
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def send(self, text: str) -> None:
        self._send_frame(0x1, text.encode())

    def receive(self) -> str:
        message = b""
        while True:
            first, second = self._read(2)
            opcode, length = first & 0x0F, second & 0x7F
            if length == 126:
                length = struct.unpack("!H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if second & 0x80 else b""
            payload = self._read(length)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                raise ConnectionError("DevTools closed the connection")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode in (0x0, 0x1, 0x2):
                message += payload
                if first & 0x80:
                    return message.decode()

    def close(self) -> None:
        try:  # noqa: SIM105  (the socket may be gone already; closing must not raise)
            self._send_frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()


class Page:
    """One browser tab driven over the DevTools Protocol."""

    def __init__(self, ws: _WebSocket):
        self.ws, self.next_id, self.events = ws, 0, []

    def call(self, method: str, **params) -> dict:
        """Send a DevTools command and return its result (events that arrive meanwhile are kept)."""
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.receive())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error'].get('message')}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def goto(self, url_or_path: str | Path, timeout: float = 60) -> None:
        """Navigate and wait for the load event."""
        self.events.clear()
        self.call("Page.navigate", url=to_url(url_or_path))
        deadline = time.monotonic() + timeout
        while not any(e["method"] == "Page.loadEventFired" for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url_or_path} did not load within {timeout}s")
            self.events.append(json.loads(self.ws.receive()))

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = (details.get("exception") or {}).get("description") or details.get("text")
            raise RuntimeError(f"JavaScript error: {text}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30, interval: float = 0.25):
        """Poll a JavaScript expression until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"still false after {timeout}s: {expression}")
            time.sleep(interval)

    def screenshot(self, png: str | Path) -> Path:
        """Save a PNG of the viewport."""
        png = Path(png)
        png.parent.mkdir(parents=True, exist_ok=True)
        png.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return png


@contextmanager
def open_page(width: int = 1600, height: int = 1000, scale: float = 1, timeout: float = 60) -> Iterator[Page]:
    """Start headless Chromium with a DevTools port and yield its first tab as a `Page`.

    The viewport is width x height CSS pixels; screenshots have `scale` device pixels per
    CSS pixel (2 for sharper text).
    """
    with tempfile.TemporaryDirectory(prefix="ml-eval-chromium-") as profile:
        stderr = open(Path(profile) / "chromium.log", "wb")  # noqa: SIM115 - closed below
        process = subprocess.Popen(
            [chromium_path(), *_flags(profile, width, height), "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,  # its own process group, so its helpers stop with it
        )
        ws = None
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + timeout
            while not (port_file.exists() and port_file.read_text().strip()):
                if process.poll() is not None or time.monotonic() > deadline:
                    log_tail = (Path(profile) / "chromium.log").read_text(errors="replace")[-500:]
                    raise RuntimeError(f"chromium did not open its DevTools port: {log_tail}")
                time.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout) as response:
                targets = json.load(response)
            target = next(t for t in targets if t.get("type") == "page")
            ws = _WebSocket(target["webSocketDebuggerUrl"], timeout=timeout)
            page = Page(ws)
            page.call("Page.enable")
            page.call("Runtime.enable")
            page.call(
                "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=scale, mobile=False
            )
            yield page
        finally:
            if ws is not None:
                ws.close()
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            stderr.close()
