"""The workbench's web server: a JSON API over a :class:`~seglab.workbench.project.Project` and the page.

``create_app(root)`` returns a FastAPI application; ``seglab serve`` runs it on uvicorn. Every request
under ``/api`` is answered with JSON: the data, or ``{"error": "one line"}`` with a 4xx status for anything
the server does not understand or refuses (never a stack trace; a bug is a 500 with a one-line message and
its traceback in the server's log). Image files are reached only through ``Project.image_path``, which
refuses paths that leave the project. With a token (required on a non-loopback address) every request
must carry it: header ``X-Seglab-Token`` / ``Authorization: Bearer``, or the cookie the page sets when
opened once with ``?token=``. On a loopback address without a token, the ``Host`` header must name
the loopback (no DNS rebinding), and requests that change anything must be ``application/json`` (which a
cross-site form cannot send).
"""
from __future__ import annotations

import io
import logging
import secrets
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import SeglabError
from . import masks as rle
from .jobs import JobBusy, UnknownJob
from .sam_service import SamService, SamUnavailable

log = logging.getLogger("seglab.workbench")
STATIC = Path(__file__).resolve().parent / "static"
TOKEN_COOKIE = "seglab_token"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
BROWSER_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".bmp": "image/bmp"}
MAX_OBJECTS = 5000
MAX_SEGMENTS = 1000
MAX_UPLOAD_BYTES = 64 << 20
# an upload is the file itself as the body: none of these is a type a cross-site form can send
UPLOAD_TYPES = {"image/png", "image/jpeg", "image/tiff", "image/bmp", "application/octet-stream"}


class ApiError(Exception):
    """A refusal with an HTTP status and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# -- request bodies ----------------------------------------------------------------------------------

class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MaskIn(_Body):
    bbox: list[int] = Field(min_length=4, max_length=4)
    counts: list[int]


class ObjectIn(_Body):
    id: Optional[int] = None
    class_id: int = Field(ge=1, le=255)
    mask: MaskIn
    source: Literal["human", "model"] = "human"
    score: Optional[float] = None


class SaveIn(_Body):
    base_revision: int
    objects: list[ObjectIn] = Field(max_length=MAX_OBJECTS)
    state: Optional[Literal["todo", "done", "review"]] = None


class ClickIn(_Body):
    points: list[list[float]] = Field(default_factory=list, max_length=64)
    labels: list[int] = Field(default_factory=list, max_length=64)
    box: Optional[list[float]] = Field(default=None, min_length=4, max_length=4)
    previous: Optional[str] = Field(default=None, max_length=32)
    mask: Optional[MaskIn] = None  # refine this mask (an object not made by SAM) when there is no previous


class SegmentIn(_Body):
    method: str = Field(max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)
    region: Optional[list[int]] = Field(default=None, min_length=4, max_length=4)  # x0, y0, x1, y1
    drop_background: bool = True


class ClassIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1, max_length=64)


class ClassesIn(_Body):
    classes: list[ClassIn] = Field(min_length=1, max_length=256)


class TaskIn(_Body):
    task: Literal["instance", "semantic"]


class ExportIn(_Body):
    format: Literal["coco", "voc", "yolo"]


class TrainIn(_Body):
    options: dict[str, Any] = Field(default_factory=dict)


# -- helpers -----------------------------------------------------------------------------------------

def _rgb8(image: np.ndarray) -> np.ndarray:
    """Any image seglab reads as ``H x W x 3`` uint8 (what SAM and the page show)."""
    from ..io import to_float_image

    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.dtype == np.uint8 and image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    arr = to_float_image(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return np.round(arr * 255).astype(np.uint8)


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.splitlines()[0].split()) if text else exc.__class__.__name__


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


def _host_name(header: str) -> str:
    """The host of a ``Host`` header without its port (``[::1]:8765`` -> ``[::1]``)."""
    if header.startswith("["):
        return header.split("]")[0] + "]"
    return header.rsplit(":", 1)[0]


def _same(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode(), b.encode())


def _token_of(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-seglab-token") or request.cookies.get(TOKEN_COOKIE)


# -- the application ---------------------------------------------------------------------------------

def create_app(root, *, token: str | None = None, loopback: bool = True,
               sam_factory: Callable[[], object] | None = None, sam_checkpoint="default",
               sam_model: str = "mobile_sam", jobs=None) -> FastAPI:
    """The workbench application over the project folder ``root``.

    ``token``: every request must carry it (``None``: no token, allowed only with ``loopback``);
    ``sam_factory``: builds the SAM predictor on first use (default: ``sam_model`` with ``sam_checkpoint``,
    the official weights in ``$SEGLAB_WEIGHTS``, embeddings cached in ``.seglab/cache/sam``);
    ``jobs``: the :class:`seglab.workbench.jobs.Jobs` runner for training and prediction (default: one
    that runs ``seglab`` in subprocesses).
    """
    from .project import ConflictError, Project, UnknownImageError

    if token is None and not loopback:
        raise SeglabError("a server on a non-loopback address needs a token")
    project = Project.open(root)
    if sam_factory is None:
        sam_factory = SamService.default_factory(checkpoint=sam_checkpoint, name=sam_model,
                                                 cache_dir=project.cache_dir("sam"))
    images_cache: OrderedDict[str, np.ndarray] = OrderedDict()  # the last images SAM and the methods read
    cache_lock = threading.Lock()

    def read_rgb(image_id: str) -> np.ndarray:
        with cache_lock:
            arr = images_cache.get(image_id)
        if arr is None:
            arr = _rgb8(project.read_image(image_id))
            with cache_lock:
                images_cache[image_id] = arr
                while len(images_cache) > 16:
                    images_cache.popitem(last=False)
        return arr

    sam = SamService(sam_factory, read_rgb)
    if jobs is None:
        from .jobs import Jobs

        jobs = Jobs(project)

    app = FastAPI(title="seglab workbench", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.project, app.state.sam, app.state.jobs = project, sam, jobs

    # -- errors: always JSON, one line ---------------------------------------------------------------
    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return error(exc.status, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such resource: {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        return error(exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc: RequestValidationError):
        return error(422, _validation_message(exc))

    @app.exception_handler(ConflictError)
    async def _conflict(request, exc):
        return error(409, _first_line(exc))

    @app.exception_handler(JobBusy)
    async def _busy(request, exc):
        return error(409, _first_line(exc))

    @app.exception_handler(SamUnavailable)
    async def _no_sam(request, exc):
        return error(503, _first_line(exc))

    @app.exception_handler(SeglabError)
    async def _user_error(request, exc):  # ProjectError, ParameterError, InputFileError, ...
        return error(404 if isinstance(exc, (UnknownImageError, UnknownJob)) else 400, _first_line(exc))

    @app.exception_handler(Exception)
    async def _bug(request, exc):
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error(500, f"internal error ({exc.__class__.__name__}); see the server's log")

    # -- access: token, host, content type -----------------------------------------------------------
    @app.middleware("http")
    async def _guard(request: Request, call_next):
        if token is not None:
            given = request.query_params.get("token")
            if request.url.path == "/" and given is not None and _same(given, token):
                resp = RedirectResponse("/", status_code=303)
                resp.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
                return resp
            sent = _token_of(request)
            if sent is None or not _same(sent, token):
                return error(401, "this server needs its token: open the address that 'seglab serve' printed "
                                  "(with ?token=...), or send the X-Seglab-Token header")
        elif loopback:
            host = _host_name(request.headers.get("host", ""))
            if host not in LOOPBACK_HOSTS:
                return error(403, f"host {host!r} refused: this server answers on 127.0.0.1 / localhost only")
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            upload = request.url.path == "/api/upload" and ctype in UPLOAD_TYPES
            if ctype != "application/json" and not upload:
                return error(415, "requests that change something must send JSON (Content-Type: "
                                  "application/json)")
        return await call_next(request)

    # -- page ----------------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # -- project and classes -------------------------------------------------------------------------
    @app.get("/api/project")
    def get_project():
        return {"name": Path(project.root).name, "classes": project.classes, "task": project.task,
                "n_images": len(project.images()), "token_required": token is not None}

    @app.put("/api/classes")
    def put_classes(body: ClassesIn):
        project.set_classes([c.model_dump() for c in body.classes])
        return {"classes": project.classes}

    @app.put("/api/task")
    def put_task(body: TaskIn):
        project.set_task(body.task)
        return {"task": project.task}

    # -- images --------------------------------------------------------------------------------------
    @app.post("/api/upload")
    async def upload(request: Request, name: str):
        size = int(request.headers.get("content-length") or 0)
        if size > MAX_UPLOAD_BYTES:
            raise ApiError(413, f"{name}: {size} bytes; uploads are limited to {MAX_UPLOAD_BYTES >> 20} MiB")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > MAX_UPLOAD_BYTES:
                raise ApiError(413, f"{name}: uploads are limited to {MAX_UPLOAD_BYTES >> 20} MiB")
        if not data:
            raise ApiError(400, f"{name}: empty upload")
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(project.add_image, name, bytes(data), max_bytes=MAX_UPLOAD_BYTES)

    @app.get("/api/images")
    def list_images(sort: Literal["name", "uncertainty", "state"] = "name"):
        items = project.images()
        if sort == "uncertainty":
            items = sorted(items, key=lambda d: -(d.get("uncertainty") if d.get("uncertainty") is not None
                                                  else -1.0))
        elif sort == "state":
            order = {"review": 0, "todo": 1, "done": 2}
            items = sorted(items, key=lambda d: order.get(d.get("state"), 3))
        return {"images": items}

    @app.get("/api/images/{image_id:path}/image")
    def get_image(image_id: str):
        path = project.image_path(image_id)
        mime = BROWSER_TYPES.get(path.suffix.lower())
        if mime is not None:
            return FileResponse(path, media_type=mime, headers={"Cache-Control": "no-cache"})
        return Response(_png(read_rgb(image_id)), media_type="image/png")

    @app.get("/api/images/{image_id:path}/thumbnail")
    def get_thumbnail(image_id: str, size: int = 160):
        if not 16 <= size <= 512:
            raise ApiError(400, f"thumbnail size must be in [16, 512], got {size}")
        return Response(project.thumbnail(image_id, size=size), media_type="image/png",
                        headers={"Cache-Control": "max-age=600"})

    def _shape(image_id: str) -> tuple[int, int]:
        info = project.image_info(image_id)
        return int(info["height"]), int(info["width"])

    def _annotation(image_id: str) -> dict:
        data = project.load(image_id)
        h, w = data["height"], data["width"]
        objects = [{"id": o.get("id"), "class_id": o["class_id"], "mask": rle.encode(o["mask"]),
                    "source": o.get("source", "human"), "score": o.get("score")} for o in data["objects"]]
        return {"id": image_id, "width": w, "height": h, "revision": data["revision"],
                "state": data.get("state"), "uncertainty": data.get("uncertainty"), "objects": objects}

    @app.get("/api/images/{image_id:path}/annotation")
    def get_annotation(image_id: str):
        return _annotation(image_id)

    @app.put("/api/images/{image_id:path}/annotation")
    def put_annotation(image_id: str, body: SaveIn):
        shape = _shape(image_id)
        objects = []
        for o in body.objects:
            mask = rle.decode(o.mask.model_dump(), shape)
            objects.append({"id": o.id, "class_id": o.class_id, "mask": mask, "source": o.source,
                            "score": o.score})
        return {"revision": project.save(image_id, objects, body.base_revision, state=body.state)}  # 409: stale

    # -- SAM -----------------------------------------------------------------------------------------
    @app.post("/api/images/{image_id:path}/embed")
    def embed(image_id: str):
        project.image_path(image_id)
        return {"seconds": sam.embed(image_id)}

    @app.post("/api/images/{image_id:path}/sam")
    def click(image_id: str, body: ClickIn):
        if len(body.points) != len(body.labels):
            raise ApiError(400, f"{len(body.points)} points but {len(body.labels)} labels")
        if not body.points and body.box is None:
            raise ApiError(400, "give at least one point or a box")
        if any(len(p) != 2 for p in body.points) or any(v not in (0, 1) for v in body.labels):
            raise ApiError(400, "points must be [x, y] pairs and labels 1 (object) or 0 (background)")
        project.image_path(image_id)
        t0 = time.perf_counter()
        start = None if body.mask is None else rle.decode(body.mask.model_dump(), _shape(image_id))
        out = sam.click(image_id, body.points or None, body.labels or None, body.box, body.previous, start)
        return {"mask": rle.encode(out["mask"]), "score": out["score"], "logits_id": out["logits_id"],
                "decoder_ms": round(out["seconds"] * 1000, 2),
                "server_ms": round((time.perf_counter() - t0) * 1000, 2)}

    # -- classical methods ---------------------------------------------------------------------------
    @app.get("/api/methods")
    def list_methods():
        from ..classical.registry import methods

        return {"methods": [m.describe() for m in methods() if not _needs_prompts(m)
                            and all(p.type in (int, float, bool, str) for p in m.params)]}

    @app.post("/api/images/{image_id:path}/segment")
    def segment(image_id: str, body: SegmentIn):
        from ..classical.registry import get_method, segment as run

        m = get_method(body.method)
        if _needs_prompts(m) or any(p.type not in (int, float, bool, str) for p in m.params):
            raise ApiError(400, f"method {m.name!r} needs seeds or prompts; use the SAM or brush tools")
        image = read_rgb(image_id)
        h, w = image.shape[:2]
        x0, y0, x1, y1 = body.region if body.region is not None else (0, 0, w, h)
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 - x0 < 2 or y1 - y0 < 2:
            raise ApiError(400, f"region {body.region} is empty inside the {w} x {h} image")
        t0 = time.perf_counter()
        labels = run(image[y0:y1, x0:x1], m.name, **body.params)
        seconds = time.perf_counter() - t0
        values = np.unique(labels)
        if body.drop_background:
            values = values[values != 0] if 0 in values and len(values) > 1 else values
        if len(values) > MAX_SEGMENTS:
            raise ApiError(400, f"{m.name} gave {len(values)} segments (more than {MAX_SEGMENTS}); change its "
                                "parameters or choose a smaller region")
        full = np.zeros((h, w), dtype=bool)
        out = []
        for v in values:
            full[:] = False
            full[y0:y1, x0:x1] = labels == v
            out.append(rle.encode(full))
        return {"masks": out, "seconds": round(seconds, 3)}

    # -- export --------------------------------------------------------------------------------------
    @app.post("/api/export")
    def export(body: ExportIn):
        out = Path(project.root) / "exports"
        target = {"coco": out / "coco.json", "voc": out / "voc", "yolo": out / "yolo"}[body.format]
        getattr(project, f"export_{body.format}")(target)
        return {"format": body.format, "path": str(target.relative_to(Path(project.root)))}

    # -- the loop: training and prediction jobs ------------------------------------------------------
    @app.post("/api/train")
    def train(body: TrainIn):
        return jobs.start_training(body.options)

    @app.post("/api/predict")
    def predict():
        return jobs.start_prediction()

    @app.get("/api/jobs")
    def list_jobs():
        return {"jobs": jobs.list()}

    @app.get("/api/jobs/{job_id}")
    def get_job(job_id: str):
        return jobs.get(job_id)

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel_job(job_id: str):
        return jobs.cancel(job_id)

    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def unknown(rest: str, request: Request):
        raise ApiError(404, f"no such API endpoint: {request.method} /api/{rest}")

    return app


def _needs_prompts(method) -> bool:
    """A method that cannot run without prompts (SAM): the page gives those through its SAM tool."""
    return method.prompts is not None and bool(method.prompts.required)
