"""docs/serve.png: the `lightsr serve` page after one upscale, taken in headless Chromium.

Starts the app in this process on a free port, uploads the project's own sample
``examples/chelsea.png`` (256x192, CC0; provenance in examples/README.md) with the bundled
safmn-x4 at x4, waits for the before/after slider, moves it to 27% (through the cat's left eye)
and saves a screenshot. Needs no ../shared data.

    python benchmarks/serve_screenshot.py [--out docs/serve.png]

Needs Debian's ``chromium`` and the ``playwright`` package (no browser download).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import sync_playwright

from lightsr.serve.app import ServeConfig, create_app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/serve.png")
    args = ap.parse_args()
    image = Path(__file__).resolve().parents[1] / "examples" / "chelsea.png"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(ServeConfig(port=port))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True)
            page = browser.new_page(viewport={"width": 900, "height": 800})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#model option[value='safmn-x4']", state="attached")
            page.select_option("#scale", "4")
            page.select_option("#model", "safmn-x4")
            page.set_input_files("#files", str(image))
            page.click("#run")
            card = page.locator(".job").first
            card.locator(".compare").wait_for(state="visible", timeout=300_000)
            card.locator(".slider").fill("27")
            page.screenshot(path=args.out, full_page=True)
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
