"""Issue 13.8: a downloaded video lives exactly as long as a pipeline refers to it.

Deleting a pipeline deletes its download (``test_served_app.py``). Here the two other
ways a download could outlive its pipeline: a create that fails after the download
(the start fails, the box is full), and a server that died between downloading and
saving (or in the middle of a delete) — its next start prunes what no pipeline refers to.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from coral_inference.pipelines.status import SourceKind
from coral_inference.webapp.errors import ApiError
from coral_inference.webapp.services import downloads
from coral_inference.webapp.services.downloads import VideoDownloader
from coral_inference.webapp.services.pipelines import PipelineService, PipelineSpec
from coral_inference.webapp.services.store import PipelineRecord, PipelineStore
from tests.webapp.fakes import FakeRunner, workflow
from tests.webapp.support import web_config

URL = "https://cams.example/clips/door.mp4"


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch):
    monkeypatch.setattr(downloads, "BACKOFF_S", 0.0)


def make_service(tmp_path: Path, **config) -> PipelineService:
    from coral_inference.runtime import init

    context = init(web_config(tmp_path, **config), source="test")
    videos = Path(context.config.services.pipelines.videos_dir)
    downloader = VideoDownloader(
        videos,
        timeout_s=5,
        retries=0,
        max_bytes=10_000,
        transport=httpx.MockTransport(lambda request: httpx.Response(200, content=b"v" * 500)),
    )
    store = PipelineStore(tmp_path / "var" / "p.sqlite3")
    return PipelineService(context, store, downloader=downloader, runner_factory=FakeRunner)


def downloads_in(service: PipelineService) -> list[str]:
    folder = service.downloader.directory
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@pytest.fixture(autouse=True)
def _forget_fakes():
    yield
    FakeRunner.instances.clear()


def test_a_create_whose_start_fails_keeps_no_download(tmp_path):
    service = make_service(tmp_path)

    async def scenario():
        await service.store.open()
        await service.load()
        with pytest.raises(ApiError) as refused:
            await service.create(
                PipelineSpec.model_validate({"workflow": workflow("fail"), "source": URL})
            )
        assert refused.value.code == "pipeline_start_failed"
        assert await service.list() == []

    asyncio.run(scenario())
    assert downloads_in(service) == []


def test_a_create_refused_for_capacity_after_its_download_keeps_no_download(tmp_path):
    service = make_service(tmp_path)
    service.max_pipelines = 1

    async def scenario():
        await service.store.open()
        await service.load()
        original = service.downloader.fetch

        async def fetch_while_another_starts(url: str) -> Path:
            path = await original(url)
            service._starting.add("other")  # another create took the last slot meanwhile
            return path

        service.downloader.fetch = fetch_while_another_starts  # type: ignore[method-assign]
        with pytest.raises(ApiError) as refused:
            await service.create(
                PipelineSpec.model_validate({"workflow": workflow(), "source": URL})
            )
        assert refused.value.code == "too_many_pipelines"

    asyncio.run(scenario())
    assert downloads_in(service) == []


def test_a_successful_create_keeps_its_download_until_delete(tmp_path):
    service = make_service(tmp_path)

    async def scenario():
        await service.store.open()
        await service.load()
        created = await service.create(
            PipelineSpec.model_validate({"workflow": workflow(), "source": URL})
        )
        assert len(downloads_in(service)) == 1
        await service.delete(created["id"])

    asyncio.run(scenario())
    assert downloads_in(service) == []


def test_a_start_prunes_downloads_no_pipeline_refers_to(tmp_path):
    service = make_service(tmp_path)
    folder = service.downloader.directory
    folder.mkdir(parents=True, exist_ok=True)
    kept = folder / "0123456789ab_door.mp4"
    orphan = folder / "ba9876543210_gate.mp4"
    partial = folder / "aaaaaaaaaaaa_yard.mp4.part"
    operators = folder / "lobby.mp4"  # not a download's name: never touched
    for path in (kept, orphan, partial, operators):
        path.write_bytes(b"v")
    record = PipelineRecord(
        id="p1",
        name="door",
        workflow=workflow(),
        workflow_file=None,
        source=str(kept),
        source_kind=SourceKind.download,
    )

    async def scenario():
        await service.store.open()
        await service.store.save(record)
        await service.load()
        await service.store.close()

    asyncio.run(scenario())
    assert downloads_in(service) == sorted([kept.name, operators.name])
