"""The portal's records: kept in memory per object, indexed by every unique
property, and optionally written through to one SQLite file (records of every
object, created properties, associations, owners) so they survive a restart.

Writes of one request are committed to SQLite in one transaction before the
response is sent, so a test that kills the sandbox (or the loader) can read
exactly what had landed. The file holds personal data (call records carry phone
numbers), so it and its -wal/-shm companions are mode 0600 whatever the umask.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from bulkload.sandbox.schema import PropertyDef
from bulkload.sandbox.wire import iso_from_ms

FIRST_OBJECT_ID = 50_000_000_001  # HubSpot record ids are 11-digit numbers by now
CALLS_TYPE_ID = "0-48"

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
CREATE TABLE IF NOT EXISTS object_properties (
    object_type TEXT NOT NULL,
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    PRIMARY KEY (object_type, name)
);
CREATE TABLE IF NOT EXISTS associations (
    from_type TEXT NOT NULL,
    from_id INTEGER NOT NULL,
    to_type TEXT NOT NULL,
    to_id INTEGER NOT NULL,
    category TEXT NOT NULL,
    type_id INTEGER NOT NULL,
    PRIMARY KEY (from_type, from_id, to_type, to_id, category, type_id)
);
CREATE TABLE IF NOT EXISTS owners (
    id TEXT PRIMARY KEY,
    definition TEXT NOT NULL
);
"""

AssociationRow = tuple[str, int, str, int, str, int]  # from type, id, to type, id, category, type


class Database:
    """The SQLite file behind every store of one sandbox (records table `records`,
    one `object_type` column; the calls-only layout of older stores reads as calls)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.conn = _open(path)

    # --- records

    def records(self, type_id: str) -> list[tuple[int, str, int, int, int, bytes]]:
        return self.conn.execute(
            "SELECT object_id, id_property, created_ms, updated_ms, writes, properties "
            "FROM records WHERE object_type = ?",
            (type_id,),
        ).fetchall()

    def save_records(self, type_id: str, rows: list[tuple[Any, ...]]) -> None:
        with self.conn:
            self.conn.executemany(
                "INSERT OR REPLACE INTO records "
                "(object_id, id_property, created_ms, updated_ms, writes, properties, object_type) "
                f"VALUES (?, ?, ?, ?, ?, ?, '{type_id}')",
                rows,
            )

    def clear(self) -> None:
        with self.conn:
            self.conn.execute("DELETE FROM records")
            self.conn.execute("DELETE FROM associations")

    # --- created properties

    def save_property(self, type_id: str, prop: PropertyDef) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO object_properties VALUES (?, ?, ?)",
                (type_id, prop.name, orjson.dumps(prop.to_json())),
            )

    def saved_properties(self, type_id: str) -> list[dict[str, Any]]:
        rows = []
        if type_id == CALLS_TYPE_ID:  # stores written before there were other objects
            rows += self.conn.execute("SELECT definition FROM properties ORDER BY rowid").fetchall()
        rows += self.conn.execute(
            "SELECT definition FROM object_properties WHERE object_type = ? ORDER BY rowid",
            (type_id,),
        ).fetchall()
        return [orjson.loads(row[0]) for row in rows]

    # --- associations

    def associations(self) -> list[AssociationRow]:
        return self.conn.execute(
            "SELECT from_type, from_id, to_type, to_id, category, type_id FROM associations"
        ).fetchall()

    def save_associations(self, added: list[AssociationRow], removed: list[AssociationRow]) -> None:
        with self.conn:
            if removed:
                self.conn.executemany(
                    "DELETE FROM associations WHERE from_type = ? AND from_id = ? AND to_type = ? "
                    "AND to_id = ? AND category = ? AND type_id = ?",
                    removed,
                )
            if added:
                self.conn.executemany(
                    "INSERT OR IGNORE INTO associations VALUES (?, ?, ?, ?, ?, ?)", added
                )

    # --- owners

    def owners(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT definition FROM owners").fetchall()
        return [orjson.loads(row[0]) for row in rows]

    def save_owners(self, owners: list[dict[str, Any]], removed: list[str]) -> None:
        with self.conn:
            self.conn.executemany("DELETE FROM owners WHERE id = ?", [(i,) for i in removed])
            self.conn.executemany(
                "INSERT OR REPLACE INTO owners VALUES (?, ?)",
                [(o["id"], orjson.dumps(o)) for o in owners],
            )

    def close(self) -> None:
        self.conn.close()


class Record:
    """One record. `properties` holds its stored values (a cleared value is removed),
    including hs_object_id and the object's create and last-modified timestamps."""

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
    """One object's records by object id, plus one value -> record index per unique
    property (and per id key, such as contacts' lower-cased `email`)."""

    def __init__(
        self,
        unique_names: Iterable[str],
        db: Database | None = None,
        *,
        type_id: str = CALLS_TYPE_ID,
        first_id: int = FIRST_OBJECT_ID,
        created: str = "hs_createdate",
        modified: str = "hs_lastmodifieddate",
    ) -> None:
        self.type_id = type_id
        self.created_name = created
        self.modified_name = modified
        self.records: dict[int, Record] = {}
        self.index: dict[str, dict[str, Record]] = {name: {} for name in unique_names}
        self.first_id = first_id
        self.next_id = first_id
        self._dirty: list[Record] = []
        self._db = db
        if db is not None:
            self._load()

    # --- reads

    def find(self, prop: str, value: str) -> Record | None:
        return self.index[prop].get(value)

    def get(self, object_id: int) -> Record | None:
        return self.records.get(object_id)

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

    def create(
        self,
        id_property: str,
        values: dict[str, str],
        now_ms: int,
        now_iso: str,
        object_id: int | None = None,
    ) -> Record:
        """A new record from validated `values`, which gain the three system properties.

        The record keeps `values` itself (minus cleared ones): the dict was
        built for this one write, and the caller sends it straight back.
        Unique-value conflicts must have been ruled out by the caller.
        `object_id` is given only for seeded records (deterministic ids).
        """
        if object_id is None:
            object_id = self.next_id
            self.next_id += 1
        elif object_id >= self.next_id:
            self.next_id = object_id + 1
        values["hs_object_id"] = str(object_id)
        values[self.created_name] = now_iso
        values[self.modified_name] = now_iso
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
        values[self.created_name] = props[self.created_name]
        values[self.modified_name] = now_iso
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
        self._db.save_records(self.type_id, rows)

    def save_property(self, prop: PropertyDef) -> None:
        if self._db is not None:
            self._db.save_property(self.type_id, prop)

    def saved_properties(self) -> list[dict[str, Any]]:
        return self._db.saved_properties(self.type_id) if self._db is not None else []

    def clear(self) -> None:
        """Forget every record (the caller clears the database once for all stores)."""
        self.records.clear()
        for index in self.index.values():
            index.clear()
        self._dirty.clear()
        self.next_id = self.first_id

    # --- persistence

    def _load(self) -> None:
        assert self._db is not None
        for object_id, id_property, created_ms, updated_ms, writes, raw in self._db.records(
            self.type_id
        ):
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


def _private(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.chmod(path, 0o600)


def _open(path: str) -> sqlite3.Connection:
    # Create the file 0600 before SQLite sees it (SQLite then gives the -wal and -shm
    # files the database's mode); an existing file is tightened too.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    _private(path)
    # The server thread owns the connection; the Python API reaches it only
    # through that thread's event loop, so sharing the object is safe.
    db = sqlite3.connect(path, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    # NORMAL survives a killed process (the case tests care about), not a power cut.
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(_SCHEMA_SQL)
    columns = {row[1] for row in db.execute("PRAGMA table_info(records)")}
    if "object_type" not in columns:  # a calls-only store from before other objects
        db.execute(
            f"ALTER TABLE records ADD COLUMN object_type TEXT NOT NULL DEFAULT '{CALLS_TYPE_ID}'"
        )
        db.commit()
    for suffix in ("-wal", "-shm"):
        _private(path + suffix)
    return db
