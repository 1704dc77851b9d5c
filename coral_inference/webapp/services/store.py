"""Persisted pipeline definitions: SQLite in WAL mode through aiosqlite.

A row holds what is needed to start a pipeline again after a restart (workflow,
source, parameters) and what the operator asked for (``desired_state``): rows
the operator left ``running`` or ``paused`` come back at start with their ids.
"""

from __future__ import annotations

import enum
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite

from coral_inference.pipelines.status import DesiredState, PipelineState, SourceKind

SCHEMA = """
CREATE TABLE IF NOT EXISTS pipelines (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    workflow TEXT NOT NULL,
    workflow_file TEXT,
    source TEXT NOT NULL,
    source_kind TEXT NOT NULL,
    max_fps REAL,
    parameters TEXT NOT NULL,
    preview_output TEXT,
    desired_state TEXT NOT NULL,
    last_state TEXT,
    last_error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    placement TEXT
)
"""
# Columns added after the first release: (name, SQL type), added to older databases at open.
ADDED_COLUMNS = (("placement", "TEXT"),)


@dataclass
class PipelineRecord:
    id: str
    name: str
    workflow: dict[str, Any]
    source: str  # as the pipeline reads it: a path, a URL or a camera index as text
    source_kind: SourceKind
    workflow_file: str | None = None
    max_fps: float | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    preview_output: str | None = None
    desired_state: DesiredState = DesiredState.running
    last_state: PipelineState | None = None
    last_error: str | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    placement: dict[str, Any] = field(default_factory=dict)  # npu_core_mask, cpu_affinity

    def __setattr__(self, name: str, value: Any) -> None:
        # States are typed: a value read from the database or set by the service becomes its enum.
        if name in _ENUM_FIELDS and value is not None and not isinstance(value, _ENUM_FIELDS[name]):
            value = _ENUM_FIELDS[name](value)
        super().__setattr__(name, value)

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["workflow"] = json.dumps(self.workflow)
        row["parameters"] = json.dumps(self.parameters)
        row["placement"] = json.dumps(self.placement)
        for name in _ENUM_FIELDS:
            row[name] = row[name].value if row[name] is not None else None
        return row

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> PipelineRecord:
        data = dict(row)
        data["workflow"] = json.loads(data["workflow"])
        data["parameters"] = json.loads(data["parameters"])
        data["placement"] = json.loads(data.get("placement") or "{}")
        if data.get("last_state") not in (None, *(s.value for s in PipelineState)):
            data["last_state"] = None
        if data.get("source_kind") == "url":  # an early name of downloaded sources
            data["source_kind"] = "download"
        return cls(**data)


_ENUM_FIELDS: dict[str, type[enum.Enum]] = {
    "source_kind": SourceKind,
    "desired_state": DesiredState,
    "last_state": PipelineState,
}


class PipelineStore:
    """Async CRUD over the ``pipelines`` table; one connection, serialised by aiosqlite."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path)
        self._db.row_factory = aiosqlite.Row
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.execute(SCHEMA)
        async with self._db.execute("PRAGMA table_info(pipelines)") as cursor:
            present = {row[1] for row in await cursor.fetchall()}
        for name, sql_type in ADDED_COLUMNS:
            if name not in present:
                await self._db.execute(f"ALTER TABLE pipelines ADD COLUMN {name} {sql_type}")
        await self._db.commit()

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError(f"pipeline store {self.path} is not open")
        return self._db

    async def ping(self) -> None:
        async with self.db.execute("SELECT 1") as cursor:
            await cursor.fetchone()

    async def journal_mode(self) -> str:
        async with self.db.execute("PRAGMA journal_mode") as cursor:
            row = await cursor.fetchone()
        assert row is not None  # PRAGMA journal_mode always answers one row
        return str(row[0])

    async def save(self, record: PipelineRecord) -> None:
        record.updated_at = time.time()
        row = record.to_row()
        columns = ", ".join(row)
        placeholders = ", ".join(f":{k}" for k in row)
        await self.db.execute(
            f"INSERT OR REPLACE INTO pipelines ({columns}) VALUES ({placeholders})", row
        )
        await self.db.commit()

    async def update(self, pipeline_id: str, **values: Any) -> None:
        values["updated_at"] = time.time()
        values = {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in values.items()}
        assignments = ", ".join(f"{k} = :{k}" for k in values)
        await self.db.execute(
            f"UPDATE pipelines SET {assignments} WHERE id = :id", {**values, "id": pipeline_id}
        )
        await self.db.commit()

    async def get(self, pipeline_id: str) -> PipelineRecord | None:
        async with self.db.execute(
            "SELECT * FROM pipelines WHERE id = ?", (pipeline_id,)
        ) as cursor:
            row = await cursor.fetchone()
        return PipelineRecord.from_row(row) if row is not None else None

    async def all(self) -> list[PipelineRecord]:
        async with self.db.execute("SELECT * FROM pipelines ORDER BY created_at") as cursor:
            rows = await cursor.fetchall()
        return [PipelineRecord.from_row(r) for r in rows]

    async def delete(self, pipeline_id: str) -> None:
        await self.db.execute("DELETE FROM pipelines WHERE id = ?", (pipeline_id,))
        await self.db.commit()
