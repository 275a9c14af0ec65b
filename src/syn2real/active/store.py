"""The label store: labelling requests and the sparse labels that answer them, in one SQLite file.

Per target image it holds the requests of every round (which pixels to label, which selector asked, when)
and the answers (the class of each requested pixel, 255 where the answerer left it, who answered and when).
SQLite in WAL mode with one transaction per change makes every write atomic: a crash mid-round leaves each
round, request and answer either wholly there or absent, and several annotators (processes, threads) can
write at once. An answer is stored at most once per request.

Exchange format (`export` / `import_answers`): a PNG mask per image (the image's sparse labels, 255 elsewhere)
and `answers.json`, a list of answers, each with its request's geometry:
    {"request": 12, "image": "0001TP_006690", "round": 0, "kind": "point", "x": 40, "y": 17, "class": 13}
    {"request": 13, "image": ..., "kind": "region", "x": 8, "y": 30, "width": 5, "height": 3,
     "labels": [[255, 2], [0, 13]]}            # run-length (value, count) pairs over the box, row by row
plus "annotator", "source" ("oracle" | "human") and "answered" (Unix time) on each.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from syn2real.active.requests import Request
from syn2real.io import atomic_write_bytes, atomic_write_json, png_bytes, read_json
from syn2real.errors import DataError
from syn2real.labels import IGNORE

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    name TEXT PRIMARY KEY, height INTEGER NOT NULL, width INTEGER NOT NULL, path TEXT NOT NULL, sha256 TEXT);
CREATE TABLE IF NOT EXISTS rounds (
    round INTEGER PRIMARY KEY, method TEXT NOT NULL, budget TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY, round INTEGER NOT NULL REFERENCES rounds(round),
    image TEXT NOT NULL REFERENCES images(name), kind TEXT NOT NULL,
    x INTEGER NOT NULL, y INTEGER NOT NULL, height INTEGER NOT NULL, width INTEGER NOT NULL,
    mask BLOB NOT NULL, score REAL NOT NULL);
CREATE INDEX IF NOT EXISTS requests_by_image ON requests(image);
CREATE TABLE IF NOT EXISTS answers (
    request INTEGER PRIMARY KEY REFERENCES requests(id), labels BLOB, skipped INTEGER NOT NULL,
    annotator TEXT NOT NULL, source TEXT NOT NULL, answered REAL NOT NULL, seconds REAL);
CREATE TABLE IF NOT EXISTS leases (
    image TEXT PRIMARY KEY REFERENCES images(name), annotator TEXT NOT NULL, expires REAL NOT NULL);
"""
SOURCES = ("oracle", "human")


@dataclass(frozen=True)
class StoredRequest:
    id: int
    round: int
    request: Request

    @property
    def image(self) -> str:
        return self.request.image


@dataclass(frozen=True)
class Answer:
    request: int
    labels: np.ndarray | None  # uint8 over the request's box, IGNORE outside the request or where left open
    skipped: bool
    annotator: str
    source: str
    answered: float


class LabelStore:
    """One SQLite file (`path`); safe to share between threads and processes."""

    def __init__(self, path: str | Path, timeout: float = 30.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._timeout = timeout
        self._connection().executescript(SCHEMA)  # runs as its own transaction
        self._migrate()

    # ---- connections ---------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is not None and self._local.pid != os.getpid():
            db = None  # a forked process (data-loader worker) must not use its parent's connection
        if db is None:
            try:
                db = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
            except sqlite3.DatabaseError as e:
                raise DataError(f"{self.path}: not a syn2real label store ({e})") from None
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, never corrupt
            self._local.db, self._local.pid = db, os.getpid()
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _migrate(self) -> None:
        """Stores written before images had a content hash get the column; their images keep a NULL hash until
        `set_image_hashes` fills it, and until then the oracle can check their size only."""
        with self._transaction() as db:
            columns = {row[1] for row in db.execute("PRAGMA table_info(images)")}
            if "sha256" not in columns:
                db.execute("ALTER TABLE images ADD COLUMN sha256 TEXT")

    def __getstate__(self) -> dict:
        # Data-loader workers get the path, not a connection.
        return {"path": self.path, "timeout": self._timeout}

    def __setstate__(self, state: dict) -> None:
        self.path, self._timeout, self._local = state["path"], state["timeout"], threading.local()

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # ---- images ----------------------------------------------------------------------------------------

    def add_images(self, images: dict[str, tuple[int, int, str | Path]]) -> None:
        """Register target images: name -> (height, width, file path) at native resolution. Re-adding is a
        no-op; a different size is an error (requests are in the registered image's pixels)."""
        with self._transaction() as db:
            for name, (height, width, path) in images.items():
                row = db.execute("SELECT height, width FROM images WHERE name = ?", (name,)).fetchone()
                if row is not None and tuple(row) != (height, width):
                    raise DataError(f"{self.path}: image {name!r} is registered as {row[0]}x{row[1]} (HxW), "
                                    f"not {height}x{width}")
                db.execute("INSERT OR IGNORE INTO images (name, height, width, path) VALUES (?, ?, ?, ?)",
                           (name, int(height), int(width), str(Path(path).resolve())))

    def set_image_hashes(self, hashes: dict[str, str]) -> None:
        """Record the content hash (`syn2real.data.base.pixel_hash`) of registered images that have none yet;
        a different hash for an image that has one is an error (its requests are about the old pixels)."""
        with self._transaction() as db:
            for name, digest in hashes.items():
                row = db.execute("SELECT sha256, path FROM images WHERE name = ?", (name,)).fetchone()
                if row is None:
                    raise DataError(f"{self.path}: unknown image {name!r}")
                if row[0] is not None and row[0] != digest:
                    raise DataError(f"{self.path}: image {name!r} ({row[1]}) has changed since it was registered")
                db.execute("UPDATE images SET sha256 = ? WHERE name = ?", (digest, name))

    def image_hashes(self) -> dict[str, str | None]:
        """name -> content hash, None for images registered before the store kept hashes."""
        return dict(self._connection().execute("SELECT name, sha256 FROM images ORDER BY name"))

    def image_hash(self, image: str) -> str | None:
        row = self._connection().execute("SELECT sha256 FROM images WHERE name = ?", (image,)).fetchone()
        if row is None:
            raise DataError(f"{self.path}: unknown image {image!r}")
        return row[0]

    def images(self) -> dict[str, tuple[int, int]]:
        rows = self._connection().execute("SELECT name, height, width FROM images ORDER BY name")
        return {name: (h, w) for name, h, w in rows}

    def image_path(self, image: str) -> Path:
        row = self._connection().execute("SELECT path FROM images WHERE name = ?", (image,)).fetchone()
        if row is None:
            raise DataError(f"{self.path}: unknown image {image!r}")
        return Path(row[0])

    def image_size(self, image: str) -> tuple[int, int]:
        row = self._connection().execute("SELECT height, width FROM images WHERE name = ?", (image,)).fetchone()
        if row is None:
            raise DataError(f"{self.path}: unknown image {image!r}")
        return row[0], row[1]

    # ---- rounds and requests ---------------------------------------------------------------------------

    def rounds(self) -> dict[int, dict]:
        rows = self._connection().execute("SELECT round, method, budget, created FROM rounds ORDER BY round")
        return {r: {"method": m, "budget": b, "created": c} for r, m, b, c in rows}

    def add_round(self, round_index: int, method: str, budget: str, requests: Iterable[Request]) -> list[int]:
        """Write a whole round of requests in one transaction (all or nothing); returns their ids."""
        requests = list(requests)
        sizes = self.images()
        ids = []
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM rounds WHERE round = ?", (round_index,)).fetchone():
                raise DataError(f"{self.path}: round {round_index} already exists")
            db.execute("INSERT INTO rounds VALUES (?, ?, ?, ?)", (round_index, method, budget, time.time()))
            for r in requests:
                if r.image not in sizes:
                    raise DataError(f"{self.path}: request for unregistered image {r.image!r}")
                height, width = sizes[r.image]
                h, w = r.mask.shape
                if r.x < 0 or r.y < 0 or r.x + w > width or r.y + h > height:
                    raise DataError(f"{self.path}: request box ({r.x}, {r.y}, {w}x{h}) leaves image {r.image!r} "
                                    f"({width}x{height})")
                cursor = db.execute(
                    "INSERT INTO requests (round, image, kind, x, y, height, width, mask, score) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (round_index, r.image, r.kind, r.x, r.y, h, w, np.packbits(r.mask).tobytes(), r.score))
                ids.append(cursor.lastrowid)
        return ids

    def requests(self, image: str | None = None, round_index: int | None = None,
                 open_only: bool = False) -> list[StoredRequest]:
        """Requests, optionally of one image / round, optionally only those without an answer."""
        sql = "SELECT id, round, image, kind, x, y, height, width, mask, score FROM requests"
        where, args = [], []
        if image is not None:
            where.append("image = ?")
            args.append(image)
        if round_index is not None:
            where.append("round = ?")
            args.append(round_index)
        if open_only:
            where.append("id NOT IN (SELECT request FROM answers)")
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._connection().execute(sql + " ORDER BY id", args).fetchall()
        return [_stored_request(row) for row in rows]

    def request(self, request_id: int) -> StoredRequest:
        row = self._connection().execute(
            "SELECT id, round, image, kind, x, y, height, width, mask, score FROM requests WHERE id = ?",
            (request_id,)).fetchone()
        if row is None:
            raise DataError(f"{self.path}: no request {request_id}")
        return _stored_request(row)

    # ---- answers ---------------------------------------------------------------------------------------

    def answer(self, request_id: int, labels: np.ndarray | int | None, annotator: str, source: str = "human",
               skipped: bool = False, seconds: float | None = None, num_classes: int = 19) -> bool:
        """Store the answer to a request; False (and nothing written) when it was answered already.

        `labels`: uint8 over the request's box (pixels outside the request must be IGNORE), or one class id
        for the whole request; None with `skipped` ("unsure"). Classes must be < `num_classes` or IGNORE.
        """
        row = self.answer_row(self.request(request_id), labels, annotator, source, skipped, seconds, num_classes)
        return bool(self.add_answers([row]))

    def answer_row(self, stored: StoredRequest, labels: np.ndarray | int | None, annotator: str,
                   source: str = "human", skipped: bool = False, seconds: float | None = None,
                   num_classes: int = 19) -> tuple:
        """A checked answer to `stored` (arguments as `answer`), ready for `add_answers`; writes nothing."""
        if source not in SOURCES:
            raise DataError(f"answer source must be one of {SOURCES}, got {source!r}")
        request_id, mask = stored.id, stored.request.mask
        if skipped:
            blob = None
        else:
            if labels is None:
                raise DataError(f"request {request_id}: an answer needs labels unless it is skipped")
            array = np.asarray(labels)
            if array.ndim == 0:
                array = np.where(mask, int(array), IGNORE)
            if array.shape != mask.shape:
                raise DataError(f"request {request_id}: labels are {array.shape}, the request's box is {mask.shape}")
            if np.any(array[~mask] != IGNORE):
                raise DataError(f"request {request_id}: labels outside the requested pixels")
            inside = array[mask]
            if np.any((inside >= num_classes) & (inside != IGNORE)) or np.any(array < 0):
                raise DataError(f"request {request_id}: class ids must be in 0..{num_classes - 1} or {IGNORE}")
            blob = array.astype(np.uint8).tobytes()
        return request_id, blob, int(skipped), annotator, source, time.time(), seconds

    def add_answers(self, rows: Iterable[tuple]) -> list[int]:
        """Store checked answers (`answer_row`) in one transaction, all or none; returns the ids of the requests
        answered now (a request answered already keeps its first answer)."""
        new = []
        with self._transaction() as db:
            for row in rows:
                if db.execute("INSERT OR IGNORE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?)", row).rowcount:
                    new.append(row[0])
        return new

    def retract(self, request_id: int, annotator: str) -> bool:
        """Undo: delete `annotator`'s answer to a request; False when there was none of theirs."""
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM answers WHERE request = ? AND annotator = ?", (request_id, annotator))
            return cursor.rowcount == 1

    def answers(self, image: str | None = None) -> list[tuple[StoredRequest, Answer]]:
        sql = ("SELECT r.id, r.round, r.image, r.kind, r.x, r.y, r.height, r.width, r.mask, r.score, "
               "a.labels, a.skipped, a.annotator, a.source, a.answered FROM answers a JOIN requests r "
               "ON a.request = r.id")
        args: tuple = ()
        if image is not None:
            sql += " WHERE r.image = ?"
            args = (image,)
        out = []
        for row in self._connection().execute(sql + " ORDER BY r.id", args).fetchall():
            stored = _stored_request(row[:10])
            blob, skipped, annotator, source, answered = row[10:]
            labels = None if blob is None else np.frombuffer(blob, np.uint8).reshape(stored.request.mask.shape)
            out.append((stored, Answer(stored.id, labels, bool(skipped), annotator, source, answered)))
        return out

    def sparse_label(self, image: str) -> np.ndarray:
        """The image's labels gathered so far, (H, W) uint8, IGNORE where nobody labelled."""
        height, width = self.image_size(image)
        out = np.full((height, width), IGNORE, np.uint8)
        for stored, answer in self.answers(image):
            if answer.labels is None:
                continue
            r = stored.request
            h, w = r.mask.shape
            box = out[r.y:r.y + h, r.x:r.x + w]
            given = answer.labels != IGNORE
            box[given] = answer.labels[given]
        return out

    def requested_mask(self, image: str) -> np.ndarray:
        """(H, W) bool: every pixel requested in any round (what selectors must not ask for again)."""
        height, width = self.image_size(image)
        out = np.zeros((height, width), bool)
        for stored in self.requests(image=image):
            out |= stored.request.full_mask(height, width)
        return out

    def revealed(self, source: str | None = None) -> dict[str, int]:
        """Pixels labelled per image (optionally by one source), counting a pixel once however often answered."""
        counts = {}
        for image in self.images():
            label = np.full(self.image_size(image), False)
            for stored, answer in self.answers(image):
                if answer.labels is None or (source is not None and answer.source != source):
                    continue
                r = stored.request
                h, w = r.mask.shape
                label[r.y:r.y + h, r.x:r.x + w] |= answer.labels != IGNORE
            counts[image] = int(label.sum())
        return counts

    def progress(self, annotator: str | None = None) -> dict:
        """Counts for a progress bar, from one consistent snapshot: requests (total, images, images still open),
        answers (answered, skipped, mean seconds per non-skipped label) and, for `annotator`, their own."""
        db = self._connection()
        db.execute("BEGIN")
        try:
            total, images = db.execute("SELECT COUNT(*), COUNT(DISTINCT image) FROM requests").fetchone()
            open_images = db.execute("SELECT COUNT(DISTINCT image) FROM requests "
                                     "WHERE id NOT IN (SELECT request FROM answers)").fetchone()[0]
            answered, skipped, mean = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(skipped), 0), AVG(CASE WHEN skipped = 0 THEN seconds END) "
                "FROM answers").fetchone()
            out = {"total": total, "answered": answered, "skipped": skipped, "mean_seconds": mean,
                   "images": images, "open_images": open_images}
            if annotator is not None:
                mine, my_mean = db.execute(
                    "SELECT COUNT(*), AVG(CASE WHEN skipped = 0 THEN seconds END) FROM answers WHERE annotator = ?",
                    (annotator,)).fetchone()
                out.update(annotator=annotator, mine=mine, my_mean_seconds=my_mean)
        finally:
            db.execute("COMMIT")
        return out

    # ---- leases (several annotators at once) ----------------------------------------------------------

    def lease(self, annotator: str, seconds: float = 600.0) -> str | None:
        """Give `annotator` an image with open requests that nobody else holds; None when there is none.
        An annotator keeps the image it already holds (its lease is renewed)."""
        now = time.time()
        with self._transaction() as db:
            db.execute("DELETE FROM leases WHERE expires < ?", (now,))
            row = db.execute("SELECT image FROM leases WHERE annotator = ?", (annotator,)).fetchone()
            if row is not None and db.execute(
                    "SELECT 1 FROM requests WHERE image = ? AND id NOT IN (SELECT request FROM answers)",
                    (row[0],)).fetchone():
                db.execute("UPDATE leases SET expires = ? WHERE image = ?", (now + seconds, row[0]))
                return row[0]
            db.execute("DELETE FROM leases WHERE annotator = ?", (annotator,))
            row = db.execute(
                "SELECT DISTINCT image FROM requests WHERE id NOT IN (SELECT request FROM answers) "
                "AND image NOT IN (SELECT image FROM leases) ORDER BY image LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute("INSERT INTO leases VALUES (?, ?, ?)", (row[0], annotator, now + seconds))
            return row[0]

    def release(self, annotator: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM leases WHERE annotator = ?", (annotator,))

    # ---- exchange format --------------------------------------------------------------------------------

    def export(self, out_dir: str | Path) -> Path:
        """Write masks/<image>.png (sparse labels) and answers.json (module docstring) into `out_dir`."""
        out_dir = Path(out_dir)
        (out_dir / "masks").mkdir(parents=True, exist_ok=True)
        for image in self.images():
            atomic_write_bytes(out_dir / "masks" / f"{image}.png", png_bytes(self.sparse_label(image)))
        records = [_answer_record(stored, answer) for stored, answer in self.answers()]
        atomic_write_json(out_dir / "answers.json", records)
        return out_dir

    def import_answers(self, path: str | Path, annotator: str | None = None, num_classes: int = 19) -> int:
        """Store the answers of an answers.json; returns how many were new. Every answer is checked against its
        request before any is stored, and they are stored in one transaction: a bad file changes nothing."""
        path = Path(path)
        records = read_json(path, "answers file")
        if not isinstance(records, list):
            raise DataError(f"{path}: expected a JSON list of answers")
        rows = []
        for i, record in enumerate(records):
            try:
                stored = self.request(int(record["request"]))
                labels = _record_labels(record, stored)
                rows.append(self.answer_row(stored, labels, annotator or record.get("annotator", "import"),
                                            source=record.get("source", "human"),
                                            skipped=bool(record.get("skipped")), num_classes=num_classes))
            except (KeyError, TypeError, ValueError, AttributeError, DataError) as e:
                raise DataError(f"{path}: answer #{i}: {e}") from None
        return len(self.add_answers(rows))


def _stored_request(row) -> StoredRequest:
    request_id, round_index, image, kind, x, y, h, w, blob, score = row
    mask = np.unpackbits(np.frombuffer(blob, np.uint8), count=h * w).reshape(h, w).astype(bool)
    return StoredRequest(request_id, round_index, Request(image, kind, x, y, mask, score))




def run_length(values: np.ndarray) -> list[list[int]]:
    """[[value, count], ...] over a flattened array."""
    flat = values.ravel()
    if flat.size == 0:
        return []
    starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
    counts = np.diff(np.r_[starts, flat.size])
    return [[int(flat[s]), int(c)] for s, c in zip(starts, counts)]


def from_run_length(pairs: list[list[int]], shape: tuple[int, int]) -> np.ndarray:
    values = np.concatenate([np.full(int(c), int(v), np.int64) for v, c in pairs]) if pairs else np.zeros(0)
    if values.size != shape[0] * shape[1]:
        raise ValueError(f"run-length labels cover {values.size} pixels, the request's box has "
                         f"{shape[0] * shape[1]}")
    return values.reshape(shape)


def _answer_record(stored: StoredRequest, answer: Answer) -> dict:
    r = stored.request
    record = {"request": stored.id, "image": r.image, "round": stored.round, "kind": r.kind, "x": r.x, "y": r.y}
    if r.kind == "region":
        record.update(width=r.mask.shape[1], height=r.mask.shape[0])
    if answer.skipped:
        record["skipped"] = True
    elif r.kind == "point":
        record["class"] = int(answer.labels[0, 0])
    else:
        record["labels"] = run_length(answer.labels)
    record.update(annotator=answer.annotator, source=answer.source, answered=answer.answered)
    return record


def _record_labels(record: dict, stored: StoredRequest) -> np.ndarray | int | None:
    r = stored.request
    if record.get("image") != r.image or int(record.get("x", -1)) != r.x or int(record.get("y", -1)) != r.y:
        raise ValueError(f"image/x/y do not match request {stored.id} ({r.image!r} at {r.x}, {r.y})")
    if record.get("skipped"):
        return None
    if r.kind == "point":
        return int(record["class"])
    return from_run_length(record["labels"], r.mask.shape)
