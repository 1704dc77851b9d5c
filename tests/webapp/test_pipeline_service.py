"""PipelineService without HTTP: all-or-nothing creation (13.6), no global start lock (13.7),
delete during start (13.3), typed statuses and their OpenAPI example (15.3)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from coral_inference.pipelines.runner import PipelineStartError, PipelineState
from coral_inference.pipelines.status import PipelineStatus, example_status
from coral_inference.webapp.errors import ApiError, ConflictError
from coral_inference.webapp.services.pipelines import PipelineService, PipelineSpec
from coral_inference.webapp.services.store import PipelineRecord, PipelineStore

from .fakes import FakeRunner, workflow
from .support import web_config


class SlowSourceRunner(FakeRunner):
    """Opening ``rtsp://slow/…`` blocks (an unresponsive camera) until terminated."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.released = threading.Event()

    def start(self) -> None:
        if str(self.source).startswith("rtsp://slow/"):
            self._state = PipelineState.starting
            self.released.wait(30)
            if self._state is PipelineState.terminated:
                raise PipelineStartError(f"pipeline {self.pipeline_id} terminated while starting")
        super().start()

    def terminate(self) -> None:
        self._state = PipelineState.terminated
        self.released.set()


@pytest.fixture
def service(tmp_path):
    from coral_inference.runtime import init

    context = init(web_config(tmp_path), source="test")
    store = PipelineStore(Path(tmp_path) / "var" / "p.sqlite3")
    svc = PipelineService(context, store, downloader=None, runner_factory=SlowSourceRunner)
    yield svc
    FakeRunner.instances.clear()


def run(coro):
    return asyncio.run(coro)


def spec(source: str) -> PipelineSpec:
    return PipelineSpec(workflow=workflow(), source=source)


def test_a_failed_database_write_starts_nothing_and_a_retry_makes_one_pipeline(
    service, monkeypatch
):
    async def scenario():
        await service.store.open()
        await service.load()
        original = service.store.save

        async def broken(record):
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(service.store, "save", broken)
        with pytest.raises(ApiError) as refused:
            await service.create(spec("rtsp://cam/1"))
        assert refused.value.status == 503 and refused.value.code == "database_write_failed"
        assert (
            FakeRunner.instances == []
            and await service.list() == []
            and service.active_count() == 0
        )
        monkeypatch.setattr(service.store, "save", original)
        created = await service.create(spec("rtsp://cam/1"))
        assert [p["id"] for p in await service.list()] == [created["id"]]
        assert [r.id for r in await service.store.all()] == [created["id"]]
        assert len(FakeRunner.instances) == 1
        await service.close()
        await service.store.close()

    run(scenario())


def test_an_unresponsive_camera_blocks_neither_other_starts_nor_its_own_delete(service):
    async def scenario():
        await service.store.open()
        await service.load()
        slow = asyncio.create_task(service.create(spec("rtsp://slow/cam")))
        await asyncio.sleep(0.2)
        began = time.monotonic()
        fast = await asyncio.wait_for(service.create(spec("rtsp://cam/2")), 5)
        assert fast["state"] == "running" and time.monotonic() - began < 2
        assert service.active_count() == 2  # the starting one counts against the limit
        starting = next(p for p in await service.list() if p["id"] != fast["id"])
        began = time.monotonic()
        await service.delete(starting["id"])
        assert time.monotonic() - began < 2
        with pytest.raises(ConflictError):
            await slow
        assert [p["id"] for p in await service.list()] == [fast["id"]]
        assert [r.id for r in await service.store.all()] == [fast["id"]]
        assert service.active_count() == 1
        await service.close()
        await service.store.close()

    run(scenario())


def test_statuses_are_one_typed_model_and_the_openapi_example_is_a_real_object():
    example = example_status()
    assert PipelineStatus.model_validate(example.model_dump(mode="json")) == example
    with pytest.raises(ValueError):
        PipelineStatus.model_validate(
            {**example.model_dump(mode="json"), "x_min": 1}
        )  # extra fields refused
    with pytest.raises(ValueError):
        PipelineStatus.model_validate({**example.model_dump(mode="json"), "state": "exploded"})
    from coral_inference.webapp import schemas

    shown = schemas.PipelineStatus.model_json_schema()["examples"][0]
    assert schemas.PipelineStatus.model_validate(shown).model_dump(mode="json") == shown
    assert set(shown) == set(schemas.PipelineStatus.model_fields)


def test_records_hold_typed_states_and_old_databases_gain_the_new_column(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:  # a database from before placement existed
        db.execute(
            "CREATE TABLE pipelines (id TEXT PRIMARY KEY, name TEXT NOT NULL,"
            " workflow TEXT NOT NULL, workflow_file TEXT, source TEXT NOT NULL,"
            " source_kind TEXT NOT NULL, max_fps REAL, parameters TEXT NOT NULL,"
            " preview_output TEXT, desired_state TEXT NOT NULL, last_state TEXT,"
            " last_error TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL)"
        )
        db.execute(
            "INSERT INTO pipelines VALUES ('a', 'n', '{\"steps\": []}', NULL, 'x.mp4', 'file',"
            " NULL, '{}', NULL, 'running', 'running', NULL, 1, 1)"
        )

    async def scenario():
        store = PipelineStore(path)
        await store.open()
        (record,) = await store.all()
        assert record.placement == {} and record.desired_state == "running"
        assert type(record.source_kind).__name__ == "SourceKind"
        record.desired_state = "paused"
        assert type(record.desired_state).__name__ == "DesiredState"
        await store.save(
            PipelineRecord(
                id="b",
                name="n",
                workflow={"steps": []},
                source="0",
                source_kind="camera",
                placement={"npu_core_mask": "2"},
            )
        )
        await store.update("a", desired_state=record.desired_state)
        rows = {r.id: r for r in await store.all()}
        assert rows["b"].placement == {"npu_core_mask": "2"} and rows["a"].desired_state == "paused"
        await store.close()

    run(scenario())
