"""PipelineStore: WAL mode and round trips."""

from __future__ import annotations

import asyncio

from coral_inference.webapp.services.store import PipelineRecord, PipelineStore


def test_records_round_trip_in_a_wal_database(tmp_path):
    async def scenario():
        store = PipelineStore(tmp_path / "db" / "p.sqlite3")
        await store.open()
        assert await store.journal_mode() == "wal"
        record = PipelineRecord(
            id="abc",
            name="n",
            workflow={"steps": [], "outputs": []},
            source="0",
            source_kind="camera",
            parameters={"t": 0.5},
            max_fps=5,
        )
        await store.save(record)
        await store.update("abc", desired_state="paused", last_state="paused")
        again = await store.get("abc")
        listed = await store.all()
        await store.delete("abc")
        gone = await store.get("abc")
        await store.close()
        return again, listed, gone

    again, listed, gone = asyncio.run(scenario())
    assert again.workflow == {"steps": [], "outputs": []} and again.parameters == {"t": 0.5}
    assert again.desired_state == "paused" and again.max_fps == 5
    assert [r.id for r in listed] == ["abc"] and gone is None
