"""Roboflow models into ``inference``'s own cache, with ``inference``'s own download code.

``coral-runtime models import project/version`` calls ``fetch_roboflow_model``: it asks
``inference`` (through ``coral_inference.compat``) to download the model version the
way its model registry does — same API requests (``API_BASE_URL``), same cache layout
(``$MODEL_CACHE_DIR/<project>/<version>/``) — and returns that directory, which
``coral_inference.models.importing`` then reads without importing ``inference``.
This lives in the CLI layer because the models layer must never import ``inference``.
Coral has no HTTP code of its own for Roboflow.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from coral_inference import compat
from coral_inference.models.importing.errors import ModelImportError
from coral_inference.models.importing.roboflow_cache import is_roboflow_cache_dir


class RoboflowFetchError(ModelImportError):
    """The Roboflow model could not be fetched (no API key, unknown id, network)."""


def cache_dir_for(model_id: str) -> Path:
    """Where inference keeps ``model_id``: ``$MODEL_CACHE_DIR/<project>/<version>``."""
    parts = model_id.strip("/").split("/")
    project, version = parts[-2], parts[-1]
    return Path(os.environ.get("MODEL_CACHE_DIR", "/tmp/cache")) / project / version


def fetch_roboflow_model(model_id: str, *, progress: bool = True) -> Path:
    """Download ``model_id`` into inference's cache (or reuse it there) and return its directory."""
    cached = cache_dir_for(model_id)
    if is_roboflow_cache_dir(cached):
        return cached
    api_key = os.environ.get("ROBOFLOW_API_KEY") or os.environ.get("API_KEY")
    if not api_key:
        raise RoboflowFetchError(
            f"{model_id}: fetching a Roboflow model needs your API key: export "
            "ROBOFLOW_API_KEY=... "
            "(Roboflow app -> Settings -> API keys), or give the directory of a model inference "
            "already "
            f"cached (e.g. {cached})"
        )

    compat.require_inference()
    roboflow_api = compat.import_module("inference.core.roboflow_api")
    exceptions = compat.import_module("inference.core.exceptions")
    cache_mod = compat.import_module("inference.core.cache.model_artifacts")
    dataset_id, version_id = model_id.strip("/").split("/")[-2:]
    endpoint = f"{dataset_id}/{version_id}"
    try:
        if progress:
            _say(f"fetching {endpoint} from Roboflow ({roboflow_api.API_BASE_URL}) ...")
        api_data = roboflow_api.get_roboflow_model_data(
            api_key=api_key,
            model_id=endpoint,
            endpoint_type=roboflow_api.ModelEndpointType.ORT,
            device_id="coral-import",
        )
        ort = api_data.get("ort") if isinstance(api_data, dict) else None
        if not isinstance(ort, dict) or "model" not in ort or "environment" not in ort:
            raise RoboflowFetchError(
                f"{model_id}: Roboflow's answer has no ONNX ('ort') weights for this version; only "
                "models "
                f"trained on Roboflow with ONNX export can be imported"
            )
        environment = roboflow_api.get_from_url(ort["environment"])
        with _byte_bar(f"downloading the weights of {endpoint}", progress):
            weights = roboflow_api.get_from_url(ort["model"], json_response=False)
        if progress:
            _say(f"downloaded {len(weights.content) / 1e6:.1f} MB of weights")
        weights_file = (
            "yolov5s_weights.onnx"
            if "yolov5" in str(ort.get("type", "")).lower()
            else "weights.onnx"
        )
        if "classes" in ort:
            cache_mod.save_text_lines_in_cache(
                content=ort["classes"], file="class_names.txt", model_id=endpoint
            )
        cache_mod.save_bytes_in_cache(content=weights.content, file=weights_file, model_id=endpoint)
        cache_mod.save_json_in_cache(
            content=environment, file="environment.json", model_id=endpoint
        )
        if "type" in ort:
            cache_mod.save_json_in_cache(
                content={"model_type": ort["type"]}, file="model_type.json", model_id=endpoint
            )
    except exceptions.RoboflowAPINotAuthorizedError as exc:
        raise RoboflowFetchError(
            f"{model_id}: Roboflow refused the API key ({exc}); check ROBOFLOW_API_KEY belongs to "
            "the "
            f"workspace that owns the model"
        ) from None
    except exceptions.RoboflowAPINotNotFoundError as exc:
        raise RoboflowFetchError(
            f"{model_id}: Roboflow does not know this model ({exc}); check the project id and "
            "version number "
            f"(Roboflow app -> Deploy), e.g. my-project/3"
        ) from None
    except exceptions.RoboflowAPIConnectionError as exc:
        raise RoboflowFetchError(
            f"{model_id}: cannot reach Roboflow at {roboflow_api.API_BASE_URL} ({exc}); when "
            "offline, give the "
            f"directory of a model inference already cached instead"
        ) from None
    cached = (
        Path(cache_mod.get_cache_dir(model_id=endpoint))
        if hasattr(cache_mod, "get_cache_dir")
        else cached
    )
    if not is_roboflow_cache_dir(cached):
        raise RoboflowFetchError(
            f"{model_id}: downloaded, but {cached} does not hold the weights inference saved"
        )
    return cached


def _say(line: str) -> None:

    Console(stderr=True).print(line, markup=False, highlight=False)


@contextmanager
def observe_downloads(on_bytes: Callable[[int, int | None], None]) -> Iterator[None]:
    """Call ``on_bytes(received, total)`` as the bodies of HTTP responses fetched with ``requests``
    inside this block arrive (``total`` from Content-Length, None when the server sends none).

    inference downloads with a plain ``requests.get`` (no ``stream``, no hooks), so there is no
    progress argument to pass. But ``requests`` dispatches a session's ``response`` hooks *before*
    it reads a non-streamed body, and every ``requests.get`` builds its session's hooks with
    ``requests.sessions.default_hooks()``: for the length of this block that function adds a hook
    that counts the bytes urllib3 hands over. inference's download code runs unchanged. The swap is
    process-wide while the block lasts, so it is for the CLI (one download at a time), not servers.
    """
    # requests comes with inference (not a Coral dependency); ~0.4 s to import
    import requests.sessions

    sessions: Any = requests.sessions  # default_hooks is requests' own, not re-exported
    original = sessions.default_hooks

    def count(response: Any, *args: Any, **kwargs: Any) -> Any:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        raw = response.raw
        received = 0

        def seen(data: bytes) -> bytes:
            nonlocal received
            received += len(data)
            on_bytes(received, total)
            return data

        read, read_chunked = raw.read, getattr(raw, "read_chunked", None)
        raw.read = lambda *a, **k: seen(read(*a, **k))
        if read_chunked is not None:  # chunked bodies bypass read() in urllib3 2
            raw.read_chunked = lambda *a, **k: (seen(chunk) for chunk in read_chunked(*a, **k))
        on_bytes(0, total)
        return response

    def hooks() -> dict[str, list[Any]]:
        table = original()
        table["response"].append(count)
        return table

    sessions.default_hooks = hooks
    try:
        yield
    finally:
        sessions.default_hooks = original


@contextmanager
def _byte_bar(what: str, enabled: bool) -> Iterator[None]:
    """A byte progress bar (size, speed, time left) while inference downloads."""
    if not enabled:
        yield
        return

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(what, total=None)
        with observe_downloads(lambda done, total: bar.update(task, completed=done, total=total)):
            yield
