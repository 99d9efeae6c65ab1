"""`lightsr serve`: a small FastAPI app around :class:`~lightsr.serve.jobs.JobQueue`.

Routes (all JSON except the page, its script and the images):

- ``GET /``, ``/static/*``: the page (hand-written HTML, CSS and JavaScript, no build step).
- ``GET /api/options``: the models offered, precisions, whether colour fix exists, the limits.
- ``POST /api/jobs?model=&tile=&precision=&color_fix=&name=``: the request body is the image
  file itself, streamed into the private folder and cut off at the byte limit (413); the
  pixel limit is checked from the header before decoding (413). Returns the job.
- ``GET /api/jobs/{id}``: state, queue position, timings, sizes, error.
- ``GET /api/jobs/{id}/result``: the full-resolution PNG (as a download with ``?download=1``).

Safety: the server binds to 127.0.0.1 unless told otherwise, and then answers only requests
whose ``Host`` is a loopback name (a web page elsewhere cannot reach it through DNS
rebinding). Browser-supplied file names are only shown and used for the download's name.
"""

from __future__ import annotations

import inspect
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from lightsr.errors import LightSRError
from lightsr.serve.jobs import Job, JobQueue, Limits, Options, UploadTooLarge

__all__ = ["ServeConfig", "create_app", "run"]

STATIC = Path(__file__).resolve().parent / "static"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_CHUNK = 1 << 16


@dataclass(frozen=True)
class ServeConfig:
    """How the server is started (the flags of `lightsr serve`).

    Attributes:
        host, port: where to listen.
        weights: a checkpoint on the server's side, offered as the model ``weights``.
        device: where models run.
        limits: upload limits.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    weights: str | None = None
    device: str = "auto"
    limits: Limits = field(default_factory=Limits)


def _color_fix_available() -> bool:
    from lightsr.inference.upscaler import Upscaler

    return "color_fix" in inspect.signature(Upscaler.upscale).parameters


def _offer(config: ServeConfig) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Model choices: every bundled model, then ``weights`` when the server was given one."""
    from lightsr.models.catalog import MODELS, bundled_models

    models = {name: name for name in bundled_models()}
    info = {
        name: {"scale": MODELS[name].scale, "description": MODELS[name].description}
        for name in models
    }
    if config.weights is not None:
        models["weights"] = config.weights
        info["weights"] = {"scale": None, "description": Path(config.weights).name}
    return models, info


def _job_json(jobs: JobQueue, job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "name": job.name,
        "state": job.state,
        "ahead": jobs.ahead(job),
        "error": job.error,
        "input_size": job.input_size,
        "output_size": job.output_size,
        "scale": job.scale,
        "seconds": (job.finished or 0) - job.started if job.finished and job.started else None,
        "estimate": jobs.estimate(job),
        "options": asdict(job.options),
    }


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _options(request: Request, default_model: str) -> Options:
    q = request.query_params
    tile_text = q.get("tile", "")
    try:
        tile = int(tile_text) if tile_text not in ("", "0", "none") else None
    except ValueError as exc:
        raise LightSRError(f"tile: expected a whole number, got {tile_text!r}") from exc
    return Options(
        model=q.get("model", default_model),
        tile=tile,
        precision=q.get("precision", "fp32"),
        color_fix=q.get("color_fix", "") in ("1", "true", "on"),
    )


async def _receive(request: Request, path: Path, limit: int) -> None:
    """Stream the request body into ``path``; stop at ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise UploadTooLarge(_too_large(int(declared), limit))
    n = 0
    with open(path, "wb") as f:
        async for chunk in request.stream():
            n += len(chunk)
            if n > limit:
                raise UploadTooLarge(_too_large(n, limit, more=True))
            f.write(chunk)
    if n == 0:
        raise LightSRError("the upload is empty; choose an image file")


def _too_large(n: int, limit: int, more: bool = False) -> str:
    size = f"more than {limit / 2**20:.1f} MiB" if more else f"{n / 2**20:.1f} MiB"
    return (
        f"the file is {size}; this server takes at most {limit / 2**20:.1f} MiB per image "
        "(start it with --max-upload-mb to change that)"
    )


def create_app(config: ServeConfig, jobs: JobQueue | None = None) -> FastAPI:
    """The app; ``jobs`` (made from ``config`` when None) is closed when the app shuts down."""
    models, info = _offer(config)
    color_fix = _color_fix_available()
    if jobs is None:
        jobs = JobQueue(models, config.limits, device=config.device, color_fix=color_fix)
    default_model = "safmn-x4" if "safmn-x4" in models else next(iter(models))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        yield
        jobs.close()

    app = FastAPI(title="lightsr", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.jobs = jobs
    if config.host in _LOOPBACK:
        hosts = ["127.0.0.1", "localhost", "[::1]", "::1"]
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/options")
    def options() -> dict[str, Any]:
        from lightsr.runtime import resolve_device

        cuda = resolve_device(config.device).type == "cuda"
        return {
            "models": info,
            "default_model": default_model,
            "precisions": ["fp32", "bf16", "fp16"] if cuda else ["fp32", "bf16"],
            "color_fix": color_fix,
            "max_bytes": config.limits.max_bytes,
            "max_pixels": config.limits.max_pixels,
        }

    @app.post("/api/jobs")
    async def submit(request: Request) -> JSONResponse:
        try:
            opts = _options(request, default_model)
            jobs.check(opts)
        except LightSRError as exc:
            return _error(400, str(exc))
        job_id, upload = jobs.new_upload()
        try:
            await _receive(request, upload, config.limits.max_bytes)
            job = jobs.submit(job_id, request.query_params.get("name", "image"), opts)
        except UploadTooLarge as exc:
            jobs.discard(job_id)
            return _error(413, str(exc))
        except LightSRError as exc:
            jobs.discard(job_id)
            return _error(400, str(exc))
        except BaseException:  # e.g. the browser went away mid-upload
            jobs.discard(job_id)
            raise
        if job.scale is None and opts.model in info:
            job.scale = info[opts.model]["scale"]
        return JSONResponse(_job_json(jobs, job), status_code=201)

    @app.get("/api/jobs/{job_id}")
    def status(job_id: str) -> JSONResponse:
        job = jobs.get(job_id)
        if job is None:
            return _error(404, "no such job (finished jobs are forgotten after a while)")
        return JSONResponse(_job_json(jobs, job))

    @app.get("/api/jobs/{job_id}/result", response_model=None)
    def result(job_id: str, download: int = 0) -> FileResponse | JSONResponse:
        job = jobs.get(job_id)
        if job is None or job.state != "done":
            return _error(404, "no result for this job (yet)")
        disposition = "attachment" if download else "inline"
        return FileResponse(
            job.result,
            media_type="image/png",
            filename=job.download_name,
            content_disposition_type=disposition,
        )

    return app


def run(config: ServeConfig) -> None:
    """Serve until Ctrl-C; the private folder is deleted on the way out."""
    import uvicorn

    app = create_app(config)
    try:
        uvicorn.run(app, host=config.host, port=config.port, log_level="warning")
    finally:
        app.state.jobs.close()
