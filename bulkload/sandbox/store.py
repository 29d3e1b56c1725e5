"""The call records: kept in memory, indexed by every unique property, and
optionally written through to SQLite so they survive a restart.

Writes of one request are committed to SQLite in one transaction before the
response is sent, so a test that kills the sandbox (or the loader) can read
exactly what had landed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from bulkload.sandbox.schema import PropertyDef
from bulkload.sandbox.wire import iso_from_ms

FIRST_OBJECT_ID = 50_000_000_001  # HubSpot record ids are 11-digit numbers by now

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS records (
    object_id INTEGER PRIMARY KEY,
    id_property TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    writes INTEGER NOT NULL,
    properties TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS properties (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL
);
"""


class Record:
    """One call. `properties` holds its stored values (a cleared value is removed),
    including hs_object_id, hs_createdate and hs_lastmodifieddate."""

    __slots__ = ("created_ms", "id_property", "object_id", "properties", "updated_ms", "writes")

    def __init__(
        self,
        object_id: int,
        id_property: str,
        created_ms: int,
        updated_ms: int,
        writes: int,
        properties: dict[str, str],
    ) -> None:
        self.object_id = object_id
        self.id_property = id_property  # the idProperty it was created by
        self.created_ms = created_ms
        self.updated_ms = updated_ms
        self.writes = writes
        self.properties = properties


class RecordStore:
    """Records by object id, plus one value -> record index per unique property."""

    def __init__(self, unique_names: Iterable[str], path: str | None = None) -> None:
        self.records: dict[int, Record] = {}
        self.index: dict[str, dict[str, Record]] = {name: {} for name in unique_names}
        self.next_id = FIRST_OBJECT_ID
        self._dirty: list[Record] = []
        self._db: sqlite3.Connection | None = None
        if path is not None:
            self._db = _open(path)
            self._load()

    # --- reads

    def find(self, prop: str, value: str) -> Record | None:
        return self.index[prop].get(value)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records.values())

    # --- writes

    def add_unique(self, name: str) -> None:
        """Index a unique property (records loaded from SQLite may already hold values)."""
        if name in self.index:
            return
        self.index[name] = {
            value: record
            for record in self.records.values()
            if (value := record.properties.get(name)) is not None
        }

    def create(self, id_property: str, values: dict[str, str], now_ms: int, now_iso: str) -> Record:
        """A new record from validated `values`, which gain the three system properties.

        The record keeps `values` itself (minus cleared ones): the dict was
        built for this one write, and the caller sends it straight back.
        Unique-value conflicts must have been ruled out by the caller.
        """
        object_id = self.next_id
        self.next_id += 1
        values["hs_object_id"] = str(object_id)
        values["hs_createdate"] = now_iso
        values["hs_lastmodifieddate"] = now_iso
        props = values
        if "" in values.values():
            props = {k: v for k, v in values.items() if v != ""}
        record = Record(object_id, id_property, now_ms, now_ms, 1, props)
        self.records[object_id] = record
        for name, index in self.index.items():
            value = props.get(name)
            if value is not None:
                index[value] = record
        if self._db is not None:
            self._dirty.append(record)
        return record

    def update(self, record: Record, values: dict[str, str], now_ms: int, now_iso: str) -> None:
        """Apply validated `values` ("" clears) to `record`; `values` gains the system properties."""
        props = record.properties
        # updatedAt always moves forward, even when the clock has not.
        if now_ms > record.updated_ms:
            record.updated_ms = now_ms
        else:
            record.updated_ms += 1
            now_iso = iso_from_ms(record.updated_ms)
        values["hs_object_id"] = props["hs_object_id"]
        values["hs_createdate"] = props["hs_createdate"]
        values["hs_lastmodifieddate"] = now_iso
        # With a single unique property the record was found by its value, which
        # `values` repeats: nothing to reindex (the common case, skipped for speed).
        if len(self.index) > 1:
            for name, index in self.index.items():
                new = values.get(name)
                if new is None:
                    continue
                old = props.get(name)
                if old != new:
                    if old is not None and index.get(old) is record:
                        del index[old]
                    if new != "":
                        index[new] = record
        props.update(values)
        if "" in values.values():
            for name, value in values.items():
                if value == "":
                    del props[name]
        record.writes += 1
        if self._db is not None:
            self._dirty.append(record)

    def commit(self) -> None:
        """Persist the records written since the last commit, in one transaction."""
        if self._db is None or not self._dirty:
            return
        rows = [
            (
                r.object_id,
                r.id_property,
                r.created_ms,
                r.updated_ms,
                r.writes,
                orjson.dumps(r.properties),
            )
            for r in {id(r): r for r in self._dirty}.values()
        ]
        self._dirty.clear()
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    def save_property(self, prop: PropertyDef) -> None:
        if self._db is None:
            return
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO properties VALUES (?, ?)",
                (prop.name, orjson.dumps(prop.to_json())),
            )

    def saved_properties(self) -> list[dict[str, Any]]:
        if self._db is None:
            return []
        rows = self._db.execute("SELECT definition FROM properties ORDER BY rowid").fetchall()
        return [orjson.loads(row[0]) for row in rows]

    def clear(self) -> None:
        self.records.clear()
        for index in self.index.values():
            index.clear()
        self._dirty.clear()
        if self._db is not None:
            with self._db:
                self._db.execute("DELETE FROM records")

    def close(self) -> None:
        if self._db is not None:
            self.commit()
            self._db.close()
            self._db = None

    # --- persistence

    def _load(self) -> None:
        assert self._db is not None
        rows = self._db.execute(
            "SELECT object_id, id_property, created_ms, updated_ms, writes, properties FROM records"
        )
        for object_id, id_property, created_ms, updated_ms, writes, raw in rows:
            record = Record(
                object_id, id_property, created_ms, updated_ms, writes, orjson.loads(raw)
            )
            self.records[object_id] = record
            self.next_id = max(self.next_id, object_id + 1)
        self.reindex()

    def reindex(self) -> None:
        for name, index in self.index.items():
            index.clear()
            for record in self.records.values():
                value = record.properties.get(name)
                if value is not None:
                    index[value] = record


def _open(path: str) -> sqlite3.Connection:
    # The server thread owns the connection; the Python API reaches it only
    # through that thread's event loop, so sharing the object is safe.
    db = sqlite3.connect(path, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    # NORMAL survives a killed process (the case tests care about), not a power cut.
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(_SCHEMA_SQL)
    return db
