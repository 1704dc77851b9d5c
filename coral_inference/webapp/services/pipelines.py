"""PipelineService: start, watch, control and persist pipelines; no HTTP in here.

Each pipeline is a ``PipelineRunner`` plus a ``PipelineRecord`` in SQLite. The
service resolves what a client sends into something a runner can read: a
workflow inline or from a file inside ``services.pipelines.workflows_root``, a
video source that is a local file, an HTTP(S) URL (downloaded first), an
RTSP/RTMP stream or a camera index. Every pipeline's output image is published
to the stream hub under the pipeline id, so a viewer can watch any pipeline; the
channels that ``coral/webrtc_preview@v1`` blocks publish inside a worker process
reach the same hub through the shared-memory slots the worker announces.

At start the pipelines the operator left running come back with the same ids;
at stop they are terminated without forgetting that they should run.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from coral_inference import compat
from coral_inference.media.frame_slot import FrameSlot
from coral_inference.pipelines.placement import check_cpus
from coral_inference.pipelines.process_runner import WorkerRunner
from coral_inference.pipelines.runner import (
    PipelineRunner,
    PipelineStartError,
    PipelineState,
    PipelineStateError,
    parse_source,
    redact_source,
)
from coral_inference.pipelines.sources_policy import SourcePolicy, SourceRefusedError
from coral_inference.pipelines.status import PipelineStatus, SourceKind
from coral_inference.pipelines.supervisor import Supervisor, SupervisorSettings
from coral_inference.results import to_jsonable
from coral_inference.webapp.errors import ApiError, ConflictError, InvalidInputError, NotFoundError
from coral_inference.webapp.paths import existing_file_under
from coral_inference.webapp.services.downloads import VideoDownloader
from coral_inference.webapp.services.store import PipelineRecord, PipelineStore
from coral_inference.workflow_check import unwrap_specification

if TYPE_CHECKING:
    from coral_inference.runtime.context import RuntimeContext

logger = logging.getLogger("coral_inference.webapp.pipelines")

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "udp://", "tcp://", "srt://")
HTTP_SCHEMES = ("http://", "https://")
MAX_WORKFLOW_FILES = 500
WATCH_PERIOD_S = 1.0
STOP_JOIN_S = 15.0


class PipelineSpec(BaseModel):
    """What a client asks to run."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "gate camera",
                    "workflow_file": "workflows/detect_and_count.json",
                    "source": "rtsp://192.168.1.64:554/stream1",
                    "max_fps": 15,
                },
                {
                    "workflow": {
                        "version": "1.0",
                        "inputs": [{"type": "WorkflowImage", "name": "image"}],
                        "steps": [],
                        "outputs": [],
                    },
                    "source": "0",
                },
            ]
        },
    )

    name: str | None = Field(
        None, max_length=120, description="A label for people.", examples=["gate camera"]
    )
    workflow: dict[str, Any] | None = Field(
        None, description="Workflow definition inline (give this or workflow_file)."
    )
    workflow_file: str | None = Field(
        None,
        max_length=500,
        description="Workflow JSON file, relative to services.pipelines.workflows_root.",
        examples=["workflows/detect_and_count.json"],
    )
    source: str | int = Field(
        ...,
        description="Video file path, http(s) URL (downloaded first), RTSP/RTMP URL or camera index.",
        examples=["videos/entrance.mp4", "rtsp://192.168.1.64:554/stream1", 0],
    )
    download: bool = Field(
        True, description="Download http(s) sources before reading (false: read as a live stream)."
    )
    max_fps: float | None = Field(None, gt=0, le=240, description="Frame rate cap.", examples=[15])
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Values of the workflow's parameters.",
        examples=[{"confidence": 0.4}],
    )
    preview_output: str | None = Field(
        None,
        max_length=200,
        description="Workflow output shown in the live preview (default: its first image output, else the input).",
        examples=["annotated"],
    )
    npu_core_mask: Literal["0", "1", "2", "0_1", "0_1_2"] | None = Field(
        None,
        description="RKNN NPU cores of this pipeline's worker (default: spread over services.pipelines."
        "npu_core_masks).",
        examples=["1"],
    )
    cpu_affinity: list[Annotated[int, Field(ge=0, le=1023)]] | None = Field(
        None,
        min_length=1,
        max_length=1024,
        description="CPU cores this pipeline's worker may run on.",
        examples=[[2, 3]],
    )

    @model_validator(mode="after")
    def _one_workflow(self) -> PipelineSpec:
        if (self.workflow is None) == (self.workflow_file is None):
            raise ValueError("give exactly one of 'workflow' (inline) or 'workflow_file'")
        if isinstance(self.source, bool):
            raise ValueError("source must be a path, a URL or a camera index")
        return self


class PipelineService:
    def __init__(
        self,
        context: RuntimeContext,
        store: PipelineStore,
        downloader: VideoDownloader,
        *,
        runner_factory: Callable[..., Any] | None = None,
        publish: Callable[[str, np.ndarray], None] | None = None,
        frames: Any = None,
    ):
        cfg = context.config.services.pipelines
        self.context = context
        self.store = store
        self.downloader = downloader
        # Issue 13.9 (helper F): what a key holder may open, decided before anything is opened.
        self.source_policy = SourcePolicy.from_config(context.config.services.pipelines)
        self.workflows_root = Path(cfg.workflows_root)
        self.max_pipelines = cfg.max_pipelines
        self.restore_on_start = cfg.restore_on_start
        # Pipelines run in supervised worker processes unless a runner factory is given
        # (tests) or services.pipelines.isolation is "thread".
        self.supervisor: Supervisor | None = None
        if runner_factory is None and cfg.isolation == "process":
            settings = SupervisorSettings.from_config(
                cfg, Path(context.config.storage.root) / "pipelines"
            )
            self.supervisor = Supervisor(settings)
        self._runner_factory: Callable[..., Any] = runner_factory or PipelineRunner
        self._publish = publish
        self._frames = frames  # StreamService: attach_preview / detach_preview
        # Block channels of each worker, attached read-only: id -> channel -> (slot name, reader).
        self._channels: dict[str, dict[str, tuple[str, FrameSlot]]] = {}
        self._runners: dict[str, Any] = {}
        self._starting: set[str] = set()  # reserved against max_pipelines while their workers start
        # Every record, read once at start and written through: requests never wait on SQLite.
        self._records: dict[str, PipelineRecord] = {}
        self._to_restore: list[PipelineRecord] = []
        self._seen_states: dict[str, str] = {}
        self.restored = asyncio.Event()
        self.restore_errors: dict[str, str] = {}

    @property
    def isolation(self) -> str:
        return "process" if self.supervisor is not None else "thread"

    # ------------------------------------------------------------------ lifecycle

    async def load(self) -> None:
        """Read every persisted pipeline; call once, before serving requests and before ``restore``."""
        self._records = {record.id: record for record in await self.store.all()}
        self._to_restore = [
            r for r in self._records.values() if r.desired_state in ("running", "paused")
        ]
        if self.downloader is not None:
            # Issue 13.8 (helper A): downloads no pipeline refers to (a crash between download
            # and save, a delete the server did not live to finish) go at start.
            keep = [r.source for r in self._records.values() if r.source_kind == "download"]
            removed = await asyncio.to_thread(self.downloader.prune, keep)
            if removed:
                logger.info("removed %d downloaded video(s) no pipeline refers to", len(removed))

    async def restore(self) -> list[str]:
        """Start again every pipeline the operator left running or paused; returns their ids.

        They start side by side: one slow or dead camera does not hold the others back.
        """
        restored: list[str] = []
        try:
            if not self.restore_on_start:
                return restored
            outcomes = await asyncio.gather(*(self._restore_one(r) for r in self._to_restore))
            restored = [r.id for r, ok in zip(self._to_restore, outcomes) if ok]
            if restored:
                logger.info("restored pipelines: %s", ", ".join(restored))
            return restored
        finally:
            self.restored.set()

    async def _restore_one(self, record: PipelineRecord) -> bool:
        try:
            self._starting.add(record.id)
            await self._launch(record)
            if record.desired_state == "paused" and self.supervisor is None:
                await asyncio.to_thread(self._runners[record.id].pause)
            return True
        except Exception as exc:  # one broken pipeline must not keep the others down
            self.restore_errors[record.id] = f"{type(exc).__name__}: {exc}"
            logger.error("pipeline %s not restored: %s", record.id, exc)
            return False
        finally:
            self._starting.discard(record.id)

    async def watch(self) -> None:
        """Persist state changes (a file that ended, a crash) until cancelled."""
        while True:
            await asyncio.sleep(WATCH_PERIOD_S)
            await self.sync_states()
            self.sync_channels()

    async def sync_states(self) -> None:
        for pipeline_id, runner in list(self._runners.items()):
            status = runner.status()
            if self._seen_states.get(pipeline_id) == status["state"]:
                continue
            self._seen_states[pipeline_id] = status["state"]
            values: dict[str, Any] = {
                "last_state": status["state"],
                "last_error": status.get("error"),
            }
            if status["state"] == PipelineState.finished.value:
                values["desired_state"] = "finished"  # a file that ended is not restarted
            try:
                await self._update(pipeline_id, **values)
            except Exception:  # a dropped row (deleted meanwhile) is not an error of the watcher
                logger.debug("state sync of %s", pipeline_id, exc_info=True)

    def sync_channels(self) -> None:
        """Attach the preview channels that blocks publish inside workers to the web process's hub.

        A worker announces each channel with the name of its shared-memory slot; the hub
        reads a new frame from it only when a viewer or a snapshot wants one. A channel
        named like a pipeline (its own preview channel) keeps the pipeline's preview.
        """
        if self._frames is None or self.supervisor is None:
            return
        for pipeline_id, runner in list(self._runners.items()):
            announced = runner.channels() if isinstance(runner, WorkerRunner) else {}
            attached = self._channels.setdefault(pipeline_id, {})
            for channel, slot_name in announced.items():
                current = attached.get(channel)
                if (current is not None and current[0] == slot_name) or channel in self._records:
                    continue
                try:
                    reader = FrameSlot.attach(slot_name)
                except (FileNotFoundError, OSError, ValueError):  # its worker is ending
                    continue
                self._frames.attach_preview(channel, reader)
                if current is not None:
                    current[1].close()
                attached[channel] = (slot_name, reader)
                logger.info("pipeline %s: block preview channel %r attached", pipeline_id, channel)
            for channel in [c for c in attached if c not in announced]:
                self._detach_channel(pipeline_id, channel)

    def _detach_channel(self, pipeline_id: str, channel: str) -> None:
        _, reader = self._channels.get(pipeline_id, {}).pop(channel)
        if self._frames is not None:
            self._frames.detach_preview(channel)  # the hub keeps the channel's last frame
        reader.close()

    async def close(self) -> None:
        """Stop every runner, keeping what the operator wanted for the next start."""
        await self.sync_states()
        runners = list(self._runners.values())
        self._runners.clear()
        await asyncio.gather(*(asyncio.to_thread(_stop, r) for r in runners))
        for pipeline_id in list(self._channels):
            for channel in list(self._channels[pipeline_id]):
                self._detach_channel(pipeline_id, channel)
        self._channels.clear()
        if self.supervisor is not None:
            await asyncio.to_thread(self.supervisor.close)

    async def warm_up(self) -> None:
        """Import inference's pipeline stack off the event loop, so the first pipeline starts fast.

        With workers, this starts their forkserver, which imports inference once for all of them;
        the web process itself never imports inference.
        """

        if compat.inference_info() is None:
            return
        try:
            if self.supervisor is not None:
                await asyncio.to_thread(self.supervisor.warm_up)
            elif self._runner_factory is PipelineRunner:
                # heavy: imports inference's video stack (the adapter module) in a thread
                adapter = "coral_inference.inference_adapter.stream"
                await asyncio.to_thread(importlib.import_module, adapter)
        except Exception as exc:  # reported again when a pipeline starts; the app runs without it
            logger.warning("inference could not be imported: %s", exc)

    # ------------------------------------------------------------------ commands

    async def create(self, spec: PipelineSpec) -> dict[str, Any]:
        """Persist, then start; all or nothing: a failed write starts nothing, a failed start keeps no row."""
        workflow, workflow_file = self._resolve_workflow(spec)
        try:
            check_cpus(spec.cpu_affinity, "cpu_affinity")
        except ValueError as exc:
            raise InvalidInputError(str(exc), code="cpu_unavailable") from None
        self._check_capacity()  # before a download, which may take long
        source, kind = await self._resolve_source(spec)
        try:
            return await self._create_resolved(spec, workflow, workflow_file, source, kind)
        except BaseException:
            if kind == "download" and self.downloader is not None:
                # Issue 13.8 (helper A): a create that fails keeps no downloaded video.
                self.downloader.release(str(source))
            raise

    async def _create_resolved(
        self,
        spec: PipelineSpec,
        workflow: dict[str, Any],
        workflow_file: str | None,
        source: str | int,
        kind: str,
    ) -> dict[str, Any]:
        self._check_capacity()  # no await between this check and the reservation below
        placement = {
            k: v
            for k, v in (("npu_core_mask", spec.npu_core_mask), ("cpu_affinity", spec.cpu_affinity))
            if v is not None
        }
        record = PipelineRecord(
            id=uuid.uuid4().hex[:12],
            name=spec.name or (workflow_file or "inline workflow"),
            workflow=workflow,
            workflow_file=workflow_file,
            source=str(source),
            # Kept as the plain string the policy gave (SourceKind is a str enum).
            source_kind=cast(SourceKind, kind),
            max_fps=spec.max_fps,
            parameters=spec.parameters,
            preview_output=spec.preview_output,
            placement=placement,
        )
        self._starting.add(record.id)
        try:
            try:
                await self.store.save(record)
            except Exception as exc:
                logger.error(
                    "pipeline %s not created: the database write failed: %s", record.id, exc
                )
                raise ApiError(
                    "the pipeline could not be saved, so it was not started (database write failed)",
                    code="database_write_failed",
                    status=503,
                ) from None
            self._records[record.id] = (
                record  # before it runs, so the watcher persists even a short run
            )
            try:
                await self._launch(record)
            except PipelineStartError as exc:
                deleted = record.id not in self._records
                await self._forget(record.id)
                if deleted:
                    raise ConflictError(
                        f"pipeline {record.id} was deleted while it started",
                        code="pipeline_deleted",
                    ) from None
                raise InvalidInputError(
                    str(exc.__cause__ or exc), code="pipeline_start_failed"
                ) from None
            except BaseException:
                await self._forget(record.id)
                raise
        finally:
            self._starting.discard(record.id)
        if record.id not in self._records:  # deleted while starting: its worker is gone too
            raise ConflictError(
                f"pipeline {record.id} was deleted while it started", code="pipeline_deleted"
            )
        return await self.get(record.id)

    async def _forget(self, pipeline_id: str) -> None:
        runner = self._runners.pop(pipeline_id, None)
        if runner is not None:
            await asyncio.to_thread(_stop, runner)
            self._release(pipeline_id, runner)
        self._records.pop(pipeline_id, None)
        self._seen_states.pop(pipeline_id, None)
        try:
            await self.store.delete(pipeline_id)
        except Exception:  # the row stays; it is restored as what it is at the next start
            logger.exception("pipeline %s: its row could not be removed", pipeline_id)

    def _check_capacity(self) -> None:
        if self.active_count() >= self.max_pipelines:
            raise ConflictError(
                f"{self.max_pipelines} pipelines are running already (services.pipelines.max_pipelines); "
                "terminate one first",
                code="too_many_pipelines",
            )

    async def pause(self, pipeline_id: str) -> dict[str, Any]:
        await self._control(pipeline_id, "pause", "paused")
        return await self.get(pipeline_id)

    async def resume(self, pipeline_id: str) -> dict[str, Any]:
        await self._control(pipeline_id, "resume", "running")
        return await self.get(pipeline_id)

    async def terminate(self, pipeline_id: str) -> dict[str, Any]:
        record = await self._record(pipeline_id)
        await self._update(pipeline_id, desired_state="terminated")
        runner = self._runners.get(pipeline_id)
        if runner is not None:
            await asyncio.to_thread(_stop, runner)
        await self.sync_states()
        return await self.get(record.id)

    async def delete(self, pipeline_id: str) -> None:
        record = await self._record(pipeline_id)
        self._records.pop(
            pipeline_id, None
        )  # gone for the API at once, even while its worker stops
        runner = self._runners.pop(pipeline_id, None)
        self._seen_states.pop(pipeline_id, None)
        if runner is not None:
            await asyncio.to_thread(_stop, runner)
            self._release(pipeline_id, runner)
        await self.store.delete(pipeline_id)
        if (
            record.source_kind == "download"
        ):  # issue 13.8 (helper F): the video goes with its pipeline
            self.downloader.release(record.source)

    # ------------------------------------------------------------------ queries

    async def list(self) -> list[dict[str, Any]]:
        records = sorted(self._records.values(), key=lambda r: r.created_at)
        return [self._describe(record) for record in records]

    async def get(self, pipeline_id: str) -> dict[str, Any]:
        return self._describe(await self._record(pipeline_id))

    async def results(self, pipeline_id: str) -> dict[str, Any]:
        await self._record(pipeline_id)
        runner = self._runners.get(pipeline_id)
        result = runner.latest_result() if runner is not None else None
        if result is None:
            raise NotFoundError(
                f"pipeline {pipeline_id} has produced no result yet", code="no_result_yet"
            )
        return {
            "pipeline_id": pipeline_id,
            "frame_id": result.frame_id,
            "frame_timestamp": result.frame_timestamp.isoformat(),
            "outputs": to_jsonable(result.outputs),
        }

    async def latest_image(self, pipeline_id: str) -> np.ndarray:
        record = await self._record(pipeline_id)
        runner = self._runners.get(pipeline_id)
        frames = runner.frames() if runner is not None and hasattr(runner, "frames") else None
        if frames is not None:
            latest = frames.read()
            if latest is None:
                raise NotFoundError(
                    f"pipeline {pipeline_id} has produced no frame yet", code="no_frame_yet"
                )
            return latest[0]
        result = runner.latest_result() if runner is not None else None
        if result is None:
            raise NotFoundError(
                f"pipeline {pipeline_id} has produced no frame yet", code="no_frame_yet"
            )
        return _preview_image(result, record.preview_output)

    def exists(self, pipeline_id: str) -> bool:
        return pipeline_id in self._runners

    def statuses(self) -> list[dict[str, Any]]:
        """Live status of every runner (for metrics and health; no database access)."""
        return [runner.status() for runner in list(self._runners.values())]

    def active_count(self) -> int:
        """Pipelines that hold a worker or threads, or are reserved while they start."""
        active = {pid for pid, r in list(self._runners.items()) if r.state.active}
        return len(active | self._starting)

    def list_workflows(self) -> list[dict[str, Any]]:
        """Workflow JSON files under the workflows root, relative paths, for pickers."""
        root = self.workflows_root
        if not root.is_dir():
            return []
        found = []
        for path in sorted(root.rglob("*.json")):
            if len(found) >= MAX_WORKFLOW_FILES:
                break
            try:
                relative = path.resolve().relative_to(root.resolve())
            except ValueError:  # a symlink leading outside the root
                continue
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue
            definition = unwrap_specification(data)
            if isinstance(definition, dict) and "steps" in definition:
                found.append(
                    {
                        "path": relative.as_posix(),
                        "steps": len(definition["steps"]),
                        "inputs": [
                            i.get("name")
                            for i in definition.get("inputs", [])
                            if isinstance(i, dict)
                        ],
                    }
                )
        return found

    # ------------------------------------------------------------------ internals

    async def _launch(self, record: PipelineRecord) -> None:
        source = record.source if record.source_kind != "camera" else parse_source(record.source)
        kwargs: dict[str, Any] = {
            "pipeline_id": record.id,
            "max_fps": record.max_fps,
            "workflows_parameters": record.parameters,
        }
        if self.supervisor is not None:
            runner = WorkerRunner(
                self.context,
                record.workflow,
                source,
                supervisor=self.supervisor,
                name=record.name,
                preview_output=record.preview_output,
                npu_core_mask=record.placement.get("npu_core_mask"),
                cpu_affinity=record.placement.get("cpu_affinity"),
                start_paused=record.desired_state == "paused",
                **kwargs,
            )
        else:
            runner = self._runner_factory(
                self.context,
                record.workflow,
                source,
                on_result=self._preview_publisher(record.id, record.preview_output),
                **kwargs,
            )
        self._runners[record.id] = runner
        try:
            await asyncio.to_thread(runner.start)
        except BaseException:
            if self._runners.get(record.id) is runner:
                self._runners.pop(record.id, None)
            raise
        if (
            self.supervisor is not None
            and self._frames is not None
            and self._runners.get(record.id) is runner
        ):
            frames = runner.frames()
            if frames is not None:
                self._frames.attach_preview(record.id, frames)

    def _release(self, pipeline_id: str, runner: Any) -> None:
        """A deleted pipeline's preview channel and worker handle are let go."""
        if self._frames is not None and self.supervisor is not None:
            self._frames.detach_preview(pipeline_id)
            for channel in list(self._channels.get(pipeline_id, {})):
                self._detach_channel(pipeline_id, channel)
            self._channels.pop(pipeline_id, None)
        forget = getattr(runner, "forget", None)
        if forget is not None:
            forget()

    def _preview_publisher(
        self, pipeline_id: str, output: str | None
    ) -> Callable[[Any], None] | None:
        if self._publish is None:
            return None
        publish = self._publish

        def on_result(result: Any) -> None:
            publish(pipeline_id, _preview_image(result, output))

        return on_result

    async def _control(self, pipeline_id: str, action: str, desired: str) -> None:
        await self._record(pipeline_id)
        runner = self._runners.get(pipeline_id)
        if runner is None:
            raise ConflictError(
                f"pipeline {pipeline_id} is not running; start a new one",
                code="pipeline_not_running",
            )
        try:
            await asyncio.to_thread(getattr(runner, action))  # a worker answers over its pipe
        except PipelineStateError as exc:
            raise ConflictError(str(exc), code="invalid_pipeline_state") from None
        await self._update(pipeline_id, desired_state=desired)

    async def _update(self, pipeline_id: str, **values: Any) -> None:
        record = self._records.get(pipeline_id)
        if record is None:
            return
        for name, value in values.items():
            setattr(record, name, value)
        await self.store.update(pipeline_id, **values)

    async def _record(self, pipeline_id: str) -> PipelineRecord:
        record = self._records.get(pipeline_id)
        if record is None:
            raise NotFoundError(f"no pipeline with id {pipeline_id!r}", code="pipeline_not_found")
        return record

    def _describe(self, record: PipelineRecord) -> dict[str, Any]:
        runner = self._runners.get(record.id)
        if runner is not None:
            status = runner.status()
        else:
            # Without a runner only an ending state is still true; anything else stopped with the server.
            state = (
                record.last_state
                if record.last_state in ("finished", "failed", "terminated")
                else "stopped"
            )
            status = {
                "id": record.id,
                "state": state,
                "frames": 0,
                "fps": 0.0,
                "inference_latency_ms": None,
                "error": record.last_error or self.restore_errors.get(record.id),
            }
        status = {
            **status,
            "name": record.name,
            "workflow_file": record.workflow_file,
            "source": _public_source(record),
            "source_kind": record.source_kind,
            "max_fps": record.max_fps,
            "desired_state": record.desired_state,
            "preview_channel": record.id,
        }
        status.setdefault("isolation", self.isolation)
        return PipelineStatus.model_validate(status).model_dump(mode="json")

    def _resolve_workflow(self, spec: PipelineSpec) -> tuple[dict[str, Any], str | None]:
        if spec.workflow is not None:
            return _definition(spec.workflow, "the inline workflow"), None
        path = existing_file_under(
            self.workflows_root, spec.workflow_file or "", what="workflow file"
        )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInputError(
                f"workflow file {spec.workflow_file}: not valid JSON: {exc}",
                code="invalid_workflow",
            ) from None
        return _definition(data, f"workflow file {spec.workflow_file}"), spec.workflow_file

    async def _resolve_source(self, spec: PipelineSpec) -> tuple[str | int, str]:
        # Issue 13.9 (helper F): sources_policy decides; refusals read alike whether a file exists or not.
        try:
            checked = self.source_policy.check(spec.source, download=spec.download)
        except SourceRefusedError as exc:
            raise InvalidInputError(str(exc), code=exc.code) from None
        if checked.kind == "download":
            return str(await self.downloader.fetch(str(checked.value))), "download"
        return checked.value, checked.kind


def _definition(data: Any, what: str) -> dict[str, Any]:
    data = unwrap_specification(data)
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("steps"), list)
        or not isinstance(data.get("outputs"), list)
    ):
        raise InvalidInputError(
            f"{what} is not a workflow definition (needs 'steps' and 'outputs' lists)",
            code="invalid_workflow",
        )
    return data


def _preview_image(result: Any, output: str | None) -> np.ndarray:
    try:
        return result.image(output)
    except KeyError:
        return result.image()


def _public_source(record: PipelineRecord) -> str:
    return str(redact_source(record.source))


def _stop(runner: PipelineRunner) -> None:
    runner.terminate()
    runner.join(STOP_JOIN_S)
