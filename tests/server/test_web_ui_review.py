"""The web UI's review of held images, in a real browser (Debian's chromium through Playwright) against a
real server: a flagged image is absent from the gallery, shown with its note under "held for review", and
the Approve / Reject buttons decide it; every check reads the server's API afterwards."""

from __future__ import annotations

import os
import shutil

import httpx
import pytest

from kaiga.server.ui import CHROMIUM_FLAGS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

if not os.path.exists(CHROMIUM):  # `bash scripts/setup.sh --test` installs it; CI always does
    pytest.skip("chromium is not installed (bash scripts/setup.sh --test installs it)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


def _made(server, prompt, n):
    job = httpx.post(server.url + "/v1/jobs", json={"prompt": prompt, "steps": 1, "seed": 4, "n": n}).json()
    job = server.wait_for_job(job["id"])
    assert job["status"] == "done", job
    return [im["id"] for im in job["images"]]


@pytest.mark.slow  # a browser and a job (~10 s)
def test_held_images_are_reviewed_in_the_gallery(server):
    held = _made(server, "a blue boat, gore", 2)
    g = server.url + "/v1/gallery/images"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_FLAGS))
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url + "/")
        page.click("nav [data-tab=gallery]")
        page.wait_for_function("document.querySelector('#gallery .results').textContent.includes('No images yet')")
        page.check("#gallery-form input[name=held]")
        page.click("#gallery-form button[type=submit]")
        page.wait_for_selector("#gallery figure.held .safety-note")
        notes = page.locator("#gallery .safety-note").all_text_contents()
        assert notes == ["Held for review: flagged by the prompt check (terms gore); shown blurred."] * 2
        page.locator("#gallery figure.held").nth(0).locator("button.approve").click()  # the newest: held[1]
        page.wait_for_function("document.querySelectorAll('#gallery figure.held').length === 1")
        page.locator("#gallery figure.held button.reject").click()
        page.wait_for_function("document.querySelectorAll('#gallery figure.held').length === 0")
        browser.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert httpx.get(f"{g}/{held[1]}").json()["review"] == "approved"
    assert httpx.get(f"{g}/{held[0]}").status_code == 404
    assert [im["id"] for im in httpx.get(g).json()["data"]] == [held[1]]
