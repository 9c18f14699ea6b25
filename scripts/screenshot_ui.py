"""Screenshot the web UI with the bundled model for the docs: docs/web-ui.png and docs/web-ui-gallery.png.

Starts `kaiga serve` on a free loopback port with a throw-away data folder, generates a few images
through the page in Debian's chromium (Playwright), rates one, and shoots the Generate and Gallery tabs.

    .venv/bin/python scripts/screenshot_ui.py
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from kaiga.server.ui import CHROMIUM_FLAGS

DOCS = Path(__file__).resolve().parent.parent / "docs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as home:
        server = subprocess.Popen([sys.executable, "-m", "kaiga.cli", "serve", "--port", str(port)],
                                  env={**os.environ, "KAIGA_HOME": home})
        try:
            for _ in range(300):
                try:
                    httpx.get(url + "/v1/models", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=list(CHROMIUM_FLAGS))
                page = browser.new_page(viewport={"width": 1000, "height": 820})
                page.goto(url + "/")
                page.wait_for_function("document.querySelectorAll('select.samplers option').length > 0")
                page.wait_for_function("document.querySelectorAll('.style-pick option').length > 0")
                for prompt, style in (("a yellow dog on the beach at sunset", ""), ("a red car in the city", "watercolor:0.7,neon:0.3")):
                    page.fill("#generate-form textarea[name=prompt]", prompt)
                    page.fill("#generate-form input[name=seed]", "7")
                    page.fill("#generate-form input[name=n]", "4")
                    page.fill("#generate-form input[name=style]", style)
                    page.click("#generate-form button[type=submit]")
                    page.wait_for_selector("#generate .status-text:has-text('image(s)')", timeout=300_000)
                page.wait_for_function("[...document.querySelectorAll('#generate .results img')]"
                                       ".every((i) => i.complete && i.naturalWidth > 0)")
                page.screenshot(path=DOCS / "web-ui.png")
                page.click("nav [data-tab=gallery]")
                page.wait_for_selector("#gallery .results figure:nth-child(8)")
                page.click("#gallery .results figure:nth-child(2)")
                page.click("#details .rating button[title='rate 5']")
                page.wait_for_selector("#details .rating button:nth-child(5):has-text('★')")
                page.screenshot(path=DOCS / "web-ui-gallery.png")
                browser.close()
        finally:
            server.terminate()
            server.wait(30)
    print(f"wrote {DOCS / 'web-ui.png'} and {DOCS / 'web-ui-gallery.png'}")


if __name__ == "__main__":
    main()
