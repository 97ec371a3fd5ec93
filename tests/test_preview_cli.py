"""The live preview through the real CLI: a client that stops reading never holds up a run, and the page in a
real browser (Debian's chromium, headless, through chromium-driver) shows the live image and the record."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import ROOT
from test_preview import PHOTOS, get, wait_until


def write_clip(path: Path, photos: list[Path], frames: int, size=(640, 480)) -> Path:
    import cv2

    pictures = [cv2.resize(cv2.imread(str(p)), size, interpolation=cv2.INTER_AREA) for p in photos]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, size)
    for index in range(frames):
        writer.write(pictures[index % len(pictures)])
    writer.release()
    return path


class Run:
    """`edgenet classify ...` in a subprocess, its preview's address read off stderr."""

    def __init__(self, *args: str, stdout=subprocess.PIPE):
        command = [sys.executable, "-m", "edgenet", "classify", *args]
        self.process = subprocess.Popen(
            command, cwd=str(ROOT), stdout=stdout, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
        )
        self.lines: list[str] = []
        self.url = None
        for line in self.process.stderr:
            self.lines.append(line)
            found = re.match(r"preview: (http://\S+)", line)
            if found:
                self.url = found.group(1)
                break
        assert self.url, "".join(self.lines)
        self._drain = threading.Thread(target=lambda: self.lines.extend(self.process.stderr), daemon=True)
        self._drain.start()

    def wait_for_line(self, text: str, deadline_s: float = 60) -> None:
        wait_until(lambda: any(text in line for line in self.lines), deadline_s)

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        out, _ = self.process.communicate(timeout=timeout)
        self._drain.join(timeout=5)
        return self.process.returncode, out or ""


def test_a_client_that_stops_reading_never_holds_up_the_run(images, tmp_path):
    """A client asks for the stream with a tiny receive buffer and never reads: every frame of the video
    still gets its record, and the run ends (the server hangs up on it)."""
    frames = 300
    clip = write_clip(tmp_path / "clip.avi", [images / name for name in PHOTOS], frames)
    run = Run(
        "--video",
        str(clip),
        "--model",
        "v1-0.25-128",
        "--format",
        "jsonl",
        "--serve",
        "127.0.0.1:0",
        "--serve-fps",
        "60",
    )
    port = int(run.url.rsplit(":", 1)[1].strip("/"))
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", port))
    stalled.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
    try:
        code, out = run.finish()
    finally:
        stalled.close()
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0, "".join(run.lines)
    assert [r["frame"] for r in records] == list(range(frames))


def chromium():
    """Debian's chromium, headless, driven through chromium-driver (`make test` installs both)."""
    for binary in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        if not Path(binary).exists():
            pytest.fail(
                f"{binary} is missing: `make test` installs chromium and chromium-driver", pytrace=False
            )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--no-proxy-server",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def test_the_page_shows_the_live_image_and_the_record_in_a_real_browser(images, tmp_path):
    """An image run served with a token, kept up after the run (--serve-linger inf): chromium loads
    /?token=..., the page's live image decodes (naturalWidth > 0) and the record is shown; Ctrl-C ends it."""
    from selenium.webdriver.support.ui import WebDriverWait

    photo = images / "pets.jpg"
    run = Run(
        str(photo),
        "--model",
        "v1-0.25-128",
        "--format",
        "jsonl",
        "--serve",
        "127.0.0.1:0",
        "--serve-token",
        "open sesame",
        "--serve-linger",
        "inf",
    )
    try:
        run.wait_for_line("run ended")
        status, _, body = get(run.url + "latest.json", {"Authorization": "Bearer open sesame"})
        assert status == 200
        record = json.loads(body)
        top = record["top_k"][0]
        browser = chromium()
        try:
            browser.get(run.url + "?token=open%20sesame")
            wait = WebDriverWait(browser, 60)
            wait.until(lambda b: b.execute_script("return document.getElementById('live').naturalWidth") > 0)
            wait.until(lambda b: b.find_element("id", "result").text == f"{top['label']} {top['score']:.3f}")
            shown = browser.find_element("id", "record").text
            assert str(photo) in shown and '"latency_ms"' in shown
            width = browser.execute_script("return document.getElementById('live').naturalWidth")
            assert width == 512  # pets.jpg is 512 wide: under 640, sent as it is
            wait.until(lambda b: b.find_element("id", "health").text == "run ended")
        finally:
            browser.quit()
    finally:
        run.process.send_signal(signal.SIGINT)
        code, out = run.finish()
    assert code == 130 and [json.loads(line) for line in out.splitlines()] == [record]
