"""`lightsr serve`: the API, its limits and safety, and the page driven in headless Chromium.

The server runs in this process (uvicorn in a thread) on a free port with small limits; the
browser tests use Debian's Chromium through Playwright (no browser download). Where Chromium
is missing they skip here and fail in CI (the CI guard)."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import lightsr
from lightsr.cli import main
from lightsr.errors import LightSRError
from lightsr.serve.jobs import JobQueue, Limits, Options, safe_name

fastapi = pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from lightsr.serve.app import ServeConfig, _offer, create_app  # noqa: E402

MODEL = "safmn-x2"  # the fastest bundled model
LIMITS = Limits(max_bytes=100_000, max_pixels=40_000)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server() -> Iterator[SimpleNamespace]:
    port = _free_port()
    app = create_app(ServeConfig(port=port, limits=LIMITS))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "the test server did not start"
    jobs = app.state.jobs
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}", jobs=jobs, root=jobs.root)
    srv.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A small photo-like image and its `lightsr upscale` output; files over each limit."""
    d = tmp_path_factory.mktemp("serve")
    rng = np.random.default_rng(23)
    yy, xx = np.mgrid[0:20, 0:28]
    small = np.stack([xx * 9, yy * 12, (xx + yy) * 5], -1) + rng.integers(0, 40, (20, 28, 3))
    lightsr.write_image(d / "small.png", small.clip(0, 255).astype(np.uint8))
    cmd = ["upscale", str(d / "small.png"), "-o", str(d / "ref.png"), "--model", MODEL, "-q"]
    assert main(cmd) == 0
    lightsr.write_image(d / "heavy.png", rng.integers(0, 256, (190, 190, 3), dtype=np.uint8))
    lightsr.write_image(d / "wide.png", np.full((100, 500, 3), 128, np.uint8))
    (d / "notes.png").write_text("not an image")
    assert (d / "heavy.png").stat().st_size > LIMITS.max_bytes  # noise does not compress
    assert (d / "wide.png").stat().st_size < LIMITS.max_bytes
    return SimpleNamespace(
        dir=d, **{n: d / f"{n}.png" for n in ("small", "ref", "heavy", "wide", "notes")}
    )


def _post(url: str, data: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=data, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def _wait(url: str, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = json.loads(_get(f"{url}/api/jobs/{job_id}")[1])
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


# -- the API --------------------------------------------------------------------------------


def test_api_result_is_the_cli_output(server: SimpleNamespace, images: SimpleNamespace) -> None:
    code, job = _post(
        f"{server.url}/api/jobs?model={MODEL}&name=C:%5Cusers%5Cx%2F..%2Fsmall.png",
        images.small.read_bytes(),
    )
    assert code == 201 and job["name"] == "small.png" and job["input_size"] == [28, 20]
    # the browser's name is shown, never used as a path: only input.<ext> in the job folder
    assert sorted(p.name for p in (server.root / job["id"]).iterdir()) == ["input.png"]
    done = _wait(server.url, job["id"])
    assert done["state"] == "done" and done["output_size"] == [56, 40], done
    code, body, headers = _get(f"{server.url}/api/jobs/{job['id']}/result?download=1")
    assert code == 200 and headers["content-type"] == "image/png"
    assert 'filename="small_x2.png"' in headers["content-disposition"]
    assert body == images.ref.read_bytes()  # the same bytes as `lightsr upscale`


def test_api_refusals_are_clear(server: SimpleNamespace, images: SimpleNamespace) -> None:
    url = f"{server.url}/api/jobs?model={MODEL}"
    code, r = _post(url, images.heavy.read_bytes())
    assert code == 413 and "at most 0.1 MiB" in r["error"] and "--max-upload-mb" in r["error"]
    code, r = _post(url, images.wide.read_bytes())
    assert code == 413 and "500x100" in r["error"] and "--max-pixels" in r["error"]
    code, r = _post(url, images.notes.read_bytes())
    assert code == 400 and "not an image" in r["error"]
    code, r = _post(f"{server.url}/api/jobs?model=weights", images.small.read_bytes())
    assert code == 400 and "'weights' is not offered" in r["error"]  # no --weights given
    code, r = _post(f"{url}&tile=abc", images.small.read_bytes())
    assert code == 400 and r["error"].startswith("tile:")
    code, _, _ = _get(f"{server.url}/api/jobs/..%2F..%2Fetc")
    assert code == 404
    code, _, _ = _get(f"{server.url}/api/options", headers={"Host": "evil.example"})
    assert code == 400  # DNS rebinding: only loopback host names are answered
    leftovers = [p for p in server.root.iterdir() if not any(p.glob("input.*"))]
    assert leftovers == []  # refused uploads are deleted at once


def test_weights_are_offered_only_when_given(tmp_path: Path) -> None:
    from lightsr.models.catalog import bundled_models, bundled_weights_path

    models, info = _offer(ServeConfig())
    assert list(models) == bundled_models() and "weights" not in models
    path = str(bundled_weights_path("safmn-x2"))
    models, info = _offer(ServeConfig(weights=path))
    assert models["weights"] == path and info["weights"]["description"] == Path(path).name


def test_queue_runs_jobs_in_order_and_cleans_up(images: SimpleNamespace) -> None:
    jobs = JobQueue({MODEL: MODEL}, LIMITS)
    root = jobs.root
    assert root.stat().st_mode & 0o777 == 0o700
    with pytest.raises(LightSRError, match="not offered"):
        jobs.check(Options(model="safmn-x4"))
    made = []
    with jobs.hold():
        for _ in range(2):
            job_id, upload = jobs.new_upload()
            shutil.copyfile(images.small, upload)
            made.append(jobs.submit(job_id, "a/b.png", Options(MODEL)))
        assert [jobs.ahead(j) for j in made] == [0, 1] and made[1].state == "queued"
    deadline = time.monotonic() + 120
    while made[1].state != "done" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [j.state for j in made] == ["done", "done"] and made[0].finished <= made[1].started
    jobs.close()
    assert not root.exists()
    assert safe_name("../../x y.png") == "x_y.png" and safe_name("..") == "image"


# -- the page in headless Chromium ------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True)
        yield b
        b.close()


def _run_in_page(page: Any, path: Path) -> None:
    page.set_input_files("#files", str(path))
    page.select_option("#scale", "2")
    page.select_option("#model", MODEL)
    page.click("#run")


def test_page_upscales_compares_and_downloads(
    server: SimpleNamespace, images: SimpleNamespace, browser: Any, tmp_path: Path
) -> None:
    page = browser.new_page()
    page.goto(server.url)
    page.wait_for_selector("#model option[value='safmn-x4']", state="attached")
    _run_in_page(page, images.small)
    card = page.locator(".job").first
    card.locator(".compare").wait_for(state="visible", timeout=120_000)
    assert card.get_attribute("data-state") == "done"
    assert "done: 56x40" in card.locator(".status").inner_text()
    slider = card.locator(".slider")
    slider.fill("20")  # the before image is clipped to the slider's position
    assert "80%" in card.locator(".before").evaluate("e => e.style.clipPath")
    with page.expect_download() as dl:
        card.locator(".download").click()
    assert dl.value.suggested_filename == "small_x2.png"
    got = tmp_path / "got.png"
    dl.value.save_as(got)
    a, b = lightsr.read_image(got).astype(int), lightsr.read_image(images.ref).astype(int)
    assert a.shape == b.shape == (40, 56, 3) and np.abs(a - b).max() <= 1
    page.close()


def test_page_takes_dropped_images(
    server: SimpleNamespace, images: SimpleNamespace, browser: Any
) -> None:
    page = browser.new_page()
    page.goto(server.url)
    page.wait_for_selector("#model option[value='safmn-x4']", state="attached")
    make = """bytes => { const dt = new DataTransfer();
        for (const name of ['one.png', 'two.png'])
            dt.items.add(new File([new Uint8Array(bytes)], name, {type: 'image/png'}));
        return dt; }"""
    dt = page.evaluate_handle(make, list(images.small.read_bytes()))
    page.dispatch_event("#drop", "drop", {"dataTransfer": dt})
    page.select_option("#scale", "2")
    page.click("#run")
    for name in ("one", "two"):
        card = page.locator(".job", has_text=f"{name}.png")
        card.locator(".compare").wait_for(state="visible", timeout=120_000)
        assert card.locator(".download").get_attribute("download") == f"{name}_x2.png"
    page.close()


def test_page_shows_the_limit_messages(
    server: SimpleNamespace, images: SimpleNamespace, browser: Any
) -> None:
    page = browser.new_page()
    page.goto(server.url)
    page.wait_for_selector("#model option", state="attached")
    for path, words in ((images.heavy, "at most 0.1 MiB"), (images.wide, "500x100")):
        _run_in_page(page, path)
        page.wait_for_function(
            "w => document.querySelector('#message').textContent.includes(w)", arg=words
        )
        assert page.locator(".job").first.get_attribute("data-state") == "failed"
    assert "--max-pixels" in page.inner_text("#message")
    page.close()


def test_second_tab_waits_then_completes(
    server: SimpleNamespace, images: SimpleNamespace, browser: Any
) -> None:
    tabs = [browser.new_page(), browser.new_page()]
    for tab in tabs:
        tab.goto(server.url)
        tab.wait_for_selector("#model option", state="attached")
    with server.jobs.hold():  # the worker is busy: both jobs queue
        _run_in_page(tabs[0], images.small)
        tabs[0].locator(".job .status", has_text="queued").wait_for()
        _run_in_page(tabs[1], images.small)
        tabs[1].locator(".job .status", has_text="queued, 1 ahead").wait_for()
    for tab in tabs:
        tab.locator(".job .compare").wait_for(state="visible", timeout=120_000)
        assert tab.locator(".job").first.get_attribute("data-state") == "done"
        tab.close()
