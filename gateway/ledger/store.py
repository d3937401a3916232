"""The durable ledger: forget requests with their guard artifacts, the index version, audit, jobs, versions."""

from __future__ import annotations

import importlib.util
import json
import os
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload

from sqlalchemy import Table, create_engine, delete, event, func, insert, select, update
from sqlalchemy.engine import URL, Connection, Engine, Row, make_url

from gateway.guard.artifacts import ARTIFACTS_FORMAT, EntryArtifacts
from gateway.guard.keyed import TermHasher, new_key
from gateway.guard.types import ForgetEntry
from gateway.ledger import schema as t
from gateway.ledger.actors import current_actor, resolve_actor
from gateway.ledger.calls import DEFAULT_TIMEOUTS, MIGRATION_TIMEOUTS, LedgerTimeouts, check_commit
from gateway.ledger.migrate import upgrade_to_head
from gateway.ledger.records import AuditEvent, ForgetRecord, IndexSnapshot, JobRecord, VersionRecord
from gateway.ledger.states import JOB_ACTIVE_STATES, JOB_TERMINAL_STATES, ForgetStatus, JobState
from gateway.ledger.vault import Sealed, Vault, VaultError

MAX_PAGE = 1000

_JOB_FIELDS = frozenset(
    {
        "state",
        "progress",
        "step",
        "loss",
        "metrics",
        "version_id",
        "error",
        "params",
        "resources",
        "started_at",
        "finished_at",
    }
)


def default_url(home: str | Path) -> str:
    """SQLite under LETHE_HOME, the default store."""
    return f"sqlite:///{Path(home).expanduser().resolve() / 'ledger.db'}"


def _now() -> datetime:
    return datetime.now(UTC)


@overload
def _utc(value: datetime) -> datetime: ...


@overload
def _utc(value: None) -> None: ...


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything the ledger writes is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _filed_by() -> str | None:
    """The API key on whose request a forget request is written (gateway.ledger.actors), if any."""
    acting = current_actor()
    return acting.key_id if acting is not None else None


def _fit(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """`values` unchanged if every backend stores them alike. PostgreSQL refuses a NUL character in text
    and a string longer than its VARCHAR; SQLite keeps both. Refusing them on both backends (ValueError,
    naming the column: the API answers 422) keeps the two stores interchangeable and a bad request from
    ever becoming a 500 on PostgreSQL only."""
    for name, value in values.items():
        if not isinstance(value, str):
            continue
        if "\x00" in value:
            raise ValueError(f"{table.name}.{name} must not contain NUL characters")
        length = getattr(table.c[name].type, "length", None)
        if length is not None and len(value) > length:
            raise ValueError(f"{table.name}.{name} is longer than {length} characters")
    return values


def _forget_status(value: str) -> ForgetStatus:
    # Callers outside the typed tree (tests, a row's text) may still hand a plain string: refuse it by name.
    try:
        return ForgetStatus(value)
    except ValueError:
        raise ValueError(f"forget status must be one of {[s.value for s in ForgetStatus]}, got {value!r}") from None


def _job_state(value: str) -> JobState:
    try:
        return JobState(value)
    except ValueError:
        raise ValueError(f"job state must be one of {[s.value for s in JobState]}, got {value!r}") from None


def _storable_key(value: str) -> bool:
    # A key no backend can store is a key no row has (and PostgreSQL would raise on it in a WHERE).
    return "\x00" not in value


def _engine_url(url: str) -> str | URL:
    """`postgresql://` and `postgres://` (the scheme many platforms hand out) with whichever driver is
    installed: psycopg 3 (the `postgres` extra) first, else psycopg2."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    parsed = make_url(url)
    if parsed.drivername != "postgresql":
        return url
    has = importlib.util.find_spec
    driver = "psycopg" if has("psycopg") is not None or has("psycopg2") is None else "psycopg2"
    return parsed.set(drivername=f"postgresql+{driver}")


def _page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be in 1..{MAX_PAGE}, got {limit}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")


def _sqlite_engine(url: str, timeouts: LedgerTimeouts) -> Engine:
    # A writer waits `lock_s` for another's write lock, then fails (SQLITE_BUSY): never longer than the
    # ingress fence, so a locked file is a quick 503 and not a hang.
    busy_s = timeouts.lock_s
    engine = create_engine(url, connect_args={"timeout": busy_s}, pool_timeout=timeouts.pool_s)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_conn: Any, _record: Any) -> None:  # the driver's connection, the pool's record
        # Let SQLAlchemy's begin event issue BEGIN IMMEDIATE itself (pysqlite would defer it, and a
        # deferred read-then-write transaction fails with SQLITE_BUSY instead of waiting).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_s * 1000)}")  # first: the PRAGMAs below may wait too
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # an acknowledged forget request survives power loss
        cursor.execute("PRAGMA foreign_keys=ON")
        # Deleted content is overwritten, not left in free pages: a shredded key must not be recoverable.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # Take the write lock up front: writers queue on busy_timeout instead of deadlocking.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _postgres_engine(url: str, timeouts: LedgerTimeouts) -> Engine:
    """libpq's connect timeout and the server-side statement, lock and idle-transaction timeouts (as
    startup options, so every pooled session has them from its first statement). What the URL sets
    itself (`?connect_timeout=`, `-c` settings in `?options=`) wins."""
    target = _engine_url(url)
    query = make_url(target).query if isinstance(target, str) else target.query
    ms = {
        "statement_timeout": timeouts.statement_s,
        "lock_timeout": timeouts.lock_s,
        "idle_in_transaction_session_timeout": timeouts.idle_in_transaction_s,
    }
    given = query.get("options", "")
    # Ours first: a setting the URL's own options repeat wins (the server applies them in order).
    ours = [f"-c {name}={int(seconds * 1000)}" for name, seconds in ms.items()]
    options = " ".join([*ours, *([given] if isinstance(given, str) else given)]).strip()
    connect_args: dict[str, Any] = {"options": options}
    if "connect_timeout" not in query:
        connect_args["connect_timeout"] = max(2, round(timeouts.connect_s))  # libpq: whole seconds, >= 2
    return create_engine(target, pool_pre_ping=True, pool_timeout=timeouts.pool_s, connect_args=connect_args)


def _engine(url: str, timeouts: LedgerTimeouts) -> Engine:
    engine = _sqlite_engine(url, timeouts) if url.startswith("sqlite") else _postgres_engine(url, timeouts)
    # A ledger call the caller gave up on (gateway.ledger.calls) must not commit once the database answers.
    event.listen(engine, "commit", check_commit)
    return engine


def _aad(record_id: str) -> bytes:
    """What a sealed value is bound to: moving it to another row makes it fail to open."""
    return f"lethe:{record_id}".encode()


def _counts(payload: dict[str, Any], subject: str | None = None) -> dict[str, int]:
    counts = {key: len(payload.get(key) or ()) for key in ("texts", "qa", "literals")}
    return {**counts, "subject": int(bool(subject))}


def _content_bytes(subject: str | None, payload: dict[str, Any]) -> bytes:
    content = {
        "subject": subject,
        "texts": list(payload.get("texts") or ()),
        "qa": [list(p) for p in payload.get("qa") or ()],
        "literals": list(payload.get("literals") or ()),
    }
    return json.dumps(content, ensure_ascii=False).encode()


def _artifacts(r: Row[Any]) -> EntryArtifacts:
    return EntryArtifacts.from_stored(
        forget_id=r.forget_id,
        action=r.action,
        model_name=r.model_name,
        dim=r.dim,
        terms=r.terms,
        ngram_hashes=r.ngram_hashes,
        output_vectors=r.output_vectors,
        question_vectors=r.question_vectors,
    )


def _insert_sealed(forget_id: str, sealed: Sealed) -> Any:
    """The row that holds a request's content: ciphertext and the wrapped data key that opens it."""
    return insert(t.forget_payloads).values(
        forget_id=forget_id, key_id=sealed.key_id, wrapped_key=sealed.wrapped_key, ciphertext=sealed.ciphertext
    )


def _forget_query() -> Any:
    """forget_requests with their sealed content (none once shredded)."""
    p = t.forget_payloads
    return select(t.forget_requests, p.c.key_id, p.c.wrapped_key, p.c.ciphertext).outerjoin(
        p, p.c.forget_id == t.forget_requests.c.id
    )


class Ledger:
    """The one durable store. Every write is one transaction, committed before the call returns.

    >>> ledger = Ledger.open("sqlite:////tmp/lethe/ledger.db")
    >>> record = ledger.add_forget(entry, build_artifacts(entry, embedder))
    >>> record.index_version == ledger.index_version()
    True
    """

    def __init__(self, engine: Engine, vault: Vault | None = None, timeouts: LedgerTimeouts = DEFAULT_TIMEOUTS) -> None:
        self.engine = engine
        self.vault = vault if vault is not None else Vault.from_environment(os.environ.get("LETHE_HOME", "~/.lethe"))
        self.timeouts = timeouts

    @classmethod
    def open(cls, url: str, vault: Vault | None = None, timeouts: LedgerTimeouts = DEFAULT_TIMEOUTS) -> Ledger:
        """Connect and migrate the schema to head (SQLite: WAL, synchronous=FULL, foreign keys on,
        secure_delete on). `vault`: the master key that seals forgotten content (default: from the
        environment or `$LETHE_HOME/keys/master.key`, see gateway.ledger.vault). `timeouts`: how long
        a call may wait on the database (gateway.ledger.calls); the migration at open may wait longer."""
        path = url.split(":///", 1)[1] if ":///" in url else ""
        in_memory = url.startswith("sqlite") and path in ("", ":memory:")
        if url.startswith("sqlite") and not in_memory:
            db = Path(path)
            db.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # 0600 whatever the umask, before SQLite opens it: SQLite gives the -wal and -shm files the
            # database's mode; the chmods fix files an older version left world-readable.
            os.close(os.open(db, os.O_RDWR | os.O_CREAT, 0o600))
            for part in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
                if part.exists():
                    os.chmod(part, 0o600)
        if in_memory:
            ledger = cls(_engine(url, timeouts), vault, timeouts)  # one private database: one engine
            ledger._migrate()
            return ledger
        migrating = cls(_engine(url, MIGRATION_TIMEOUTS), vault, MIGRATION_TIMEOUTS)
        try:
            migrating._migrate()
        finally:
            migrating.close()
        return cls(_engine(url, timeouts), migrating.vault, timeouts)

    def _migrate(self) -> None:
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                # Two replicas starting together must not both run the migration.
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7412001)")
            upgrade_to_head(conn)
        self._seal_legacy_payloads()

    def close(self) -> None:
        self.engine.dispose()

    # --- forget requests ------------------------------------------------------------------------

    def add_forget(
        self,
        entry: ForgetEntry,
        artifacts: EntryArtifacts,
        *,
        actor: str = "operator",
        content_digest: str | None = None,
    ) -> ForgetRecord:
        """Store a forget request with its guard artifacts and give it the next index version, atomically.
        Its content (subject, texts, qa, literals) is stored only sealed (`forget_payloads`)."""
        if artifacts.forget_id != entry.forget_id:
            raise ValueError(f"artifacts belong to {artifacts.forget_id}, not {entry.forget_id}")
        now = _now()
        payload = {"texts": list(entry.texts), "qa": [list(p) for p in entry.qa], "literals": list(entry.literals)}
        counts = _counts(payload, entry.subject)
        sealed = self.vault.seal(_content_bytes(entry.subject, payload), _aad(entry.forget_id))
        with self.engine.begin() as conn:
            version = self._bump(conn, "index_version")
            conn.execute(
                insert(t.forget_requests).values(
                    _fit(
                        t.forget_requests,
                        {
                            "id": entry.forget_id,
                            "subject": None,
                            "reason": entry.reason,
                            "action": entry.action,
                            "payload": counts,
                            "content_digest": content_digest,
                            "status": ForgetStatus.ENFORCED.value,
                            "created_at": now,
                            "enforced_at": now,
                            "index_version": version,
                            "created_by": _filed_by(),
                        },
                    )
                )
            )
            conn.execute(_insert_sealed(entry.forget_id, sealed))
            conn.execute(
                insert(t.guard_artifacts).values(
                    _fit(
                        t.guard_artifacts,
                        {
                            "forget_id": entry.forget_id,
                            "model_name": artifacts.model_name,
                            "dim": artifacts.dim,
                            "format": artifacts.format,
                            "terms": artifacts.terms_json(),
                            "ngram_hashes": artifacts.ngram_hashes,
                            "output_vectors": artifacts.output_vectors,
                            "question_vectors": artifacts.question_vectors,
                        },
                    )
                )
            )
            self._audit(
                conn,
                actor,
                "forget.added",
                entry.forget_id,
                {"index_version": version, "reason": entry.reason, "action": entry.action},
            )
        return ForgetRecord(
            entry.forget_id,
            entry.subject,
            entry.reason,
            entry.action,
            payload,
            ForgetStatus.ENFORCED,
            now,
            now,
            version,
            counts={k: v for k, v in counts.items() if k != "subject"},
            content_digest=content_digest,
            has_subject=entry.subject is not None,
        )

    def get_forget(self, forget_id: str) -> ForgetRecord | None:
        if not _storable_key(forget_id):
            return None
        with self.engine.connect() as conn:
            row = conn.execute(_forget_query().where(t.forget_requests.c.id == forget_id)).first()
        return self._forget(row) if row else None

    def list_forgets(self, status: ForgetStatus | None = None, limit: int = 100, offset: int = 0) -> list[ForgetRecord]:
        _page(limit, offset)
        q = _forget_query().order_by(t.forget_requests.c.index_version).limit(limit).offset(offset)
        if status is not None:
            q = q.where(t.forget_requests.c.status == _forget_status(status).value)
        with self.engine.connect() as conn:
            return [self._forget(r) for r in conn.execute(q)]

    def set_forget_status(self, ids: Iterable[str], status: ForgetStatus, *, actor: str = "system") -> int:
        """Move forget requests along enforced -> unlearning -> unlearned (or failed); returns rows changed.
        The guard keeps enforcing whatever the status (unlearned weights never switch it off)."""
        status = _forget_status(status)
        ids = list(ids)
        if not ids:
            return 0
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(t.forget_requests).where(t.forget_requests.c.id.in_(ids)).values(status=status.value)
            ).rowcount
            missing = set(ids) - {
                r[0] for r in conn.execute(select(t.forget_requests.c.id).where(t.forget_requests.c.id.in_(ids)))
            }
            if missing:
                raise KeyError(f"unknown forget requests: {sorted(missing)}")
            for forget_id in ids:
                self._audit(conn, actor, "forget.status", forget_id, {"status": status.value})
        return changed

    def shred(self, forget_id: str, *, reason: str, actor: str = "system") -> datetime | None:
        """Crypto-shred one request: delete its sealed content and wrapped data key for good (SQLite
        overwrites the freed pages and checkpoints the WAL; PostgreSQL vacuums the table). The guard keeps
        enforcing it from its hashed artifacts. Returns when it was shredded (None: no such request);
        shredding twice is a no-op."""
        if not _storable_key(forget_id):
            return None
        with self.engine.begin() as conn:
            row = conn.execute(
                select(t.forget_requests.c.shredded_at).where(t.forget_requests.c.id == forget_id)
            ).first()
            if row is None:
                return None
            if row.shredded_at is not None:
                shredded: datetime = _utc(row.shredded_at)
                return shredded
            at = _now()
            conn.execute(delete(t.forget_payloads).where(t.forget_payloads.c.forget_id == forget_id))
            conn.execute(update(t.forget_requests).where(t.forget_requests.c.id == forget_id).values(shredded_at=at))
            self._audit(conn, actor, "forget.shredded", forget_id, {"reason": reason, "shredded_at": at.isoformat()})
        self._purge_deleted()
        return at

    def drop_semantic_rows(self, forget_id: str, *, actor: str = "system") -> bool:
        """Remove a request's sentence embeddings (the residual an inversion attack could read), keeping its
        hashed literals and shingles; the index stops matching it by meaning. Takes effect on replicas at
        their next rebuild from the ledger (restart)."""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(t.guard_artifacts.c.dim).where(t.guard_artifacts.c.forget_id == forget_id)
            ).first()
            if row is None:
                return False
            conn.execute(
                update(t.guard_artifacts)
                .where(t.guard_artifacts.c.forget_id == forget_id)
                .values(output_vectors=b"", question_vectors=b"")
            )
            self._audit(conn, actor, "forget.semantic_dropped", forget_id, {})
        self._purge_deleted()
        return True

    def _purge_deleted(self) -> None:
        """Make deleted rows unrecoverable from the files: SQLite moves WAL pages into the (secure_delete)
        database and truncates the WAL; PostgreSQL vacuums the sealed-content table."""
        if self.engine.dialect.name == "sqlite":
            raw = self.engine.raw_connection()  # outside any transaction (a checkpoint cannot run in one)
            try:
                raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                raw.close()
        elif self.engine.dialect.name == "postgresql":
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM forget_payloads")

    def rewrap(self) -> int:
        """Re-wrap every data key and secret under the vault's current master key (rotation: the vault
        knows the old key as a previous one). Returns how many were re-wrapped."""
        changed = 0
        with self.engine.begin() as conn:
            for r in conn.execute(select(t.forget_payloads)).all():
                if r.key_id == self.vault.key_id:
                    continue
                key_id, wrapped = self.vault.rewrap(r.key_id, r.wrapped_key, _aad(r.forget_id))
                conn.execute(
                    update(t.forget_payloads)
                    .where(t.forget_payloads.c.forget_id == r.forget_id)
                    .values(key_id=key_id, wrapped_key=wrapped)
                )
                changed += 1
            for r in conn.execute(select(t.ledger_secrets)).all():
                if r.key_id == self.vault.key_id:
                    continue
                key_id, wrapped = self.vault.rewrap(r.key_id, r.wrapped, _aad(f"secret:{r.name}"))
                conn.execute(
                    update(t.ledger_secrets)
                    .where(t.ledger_secrets.c.name == r.name)
                    .values(key_id=key_id, wrapped=wrapped)
                )
                changed += 1
            if changed:
                self._audit(conn, "operator", "vault.rewrapped", None, {"key_id": self.vault.key_id, "count": changed})
        self._purge_deleted()
        return changed

    def guard_hasher(self) -> TermHasher:
        """The deployment's guard hash key (made on first use, stored wrapped by the master key): every
        replica hashes with the same one."""
        return TermHasher(self._secret("guard_term_key"))

    def _secret(self, name: str) -> bytes:
        aad = _aad(f"secret:{name}")
        with self.engine.begin() as conn:
            row = conn.execute(select(t.ledger_secrets).where(t.ledger_secrets.c.name == name)).first()
            if row is None:
                key_id, wrapped = self.vault.wrap(new_key(), aad)
                conn.execute(insert(t.ledger_secrets).values(name=name, key_id=key_id, wrapped=wrapped))
                row = conn.execute(select(t.ledger_secrets).where(t.ledger_secrets.c.name == name)).one()
        return self.vault.unwrap(row.key_id, row.wrapped, aad)

    def stale_artifacts(self, key_id: str) -> list[str]:
        """Requests whose guard artifacts must be rebuilt: an older format, or hashed with another key."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.guard_artifacts.c.forget_id, t.guard_artifacts.c.terms)).all()
        return [
            r.forget_id
            for r in rows
            if int(r.terms.get("format", 1)) != ARTIFACTS_FORMAT or r.terms.get("key_id") != key_id
        ]

    def replace_artifacts(self, artifacts: EntryArtifacts) -> None:
        """Store rebuilt artifacts of an existing request (same index version)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(t.guard_artifacts)
                .where(t.guard_artifacts.c.forget_id == artifacts.forget_id)
                .values(
                    model_name=artifacts.model_name,
                    dim=artifacts.dim,
                    format=artifacts.format,
                    terms=artifacts.terms_json(),
                    ngram_hashes=artifacts.ngram_hashes,
                    output_vectors=artifacts.output_vectors,
                    question_vectors=artifacts.question_vectors,
                )
            )

    def _seal_legacy_payloads(self) -> None:
        """Ledgers from before 0003 kept content in clear: seal it now, leave only counts behind."""
        with self.engine.begin() as conn:
            legacy = conn.execute(
                select(t.forget_requests)
                .outerjoin(t.forget_payloads, t.forget_payloads.c.forget_id == t.forget_requests.c.id)
                .where(t.forget_payloads.c.forget_id.is_(None), t.forget_requests.c.shredded_at.is_(None))
            ).all()
            for r in legacy:
                payload = r.payload or {}
                if not any(isinstance(v, list) for v in payload.values()):
                    continue
                sealed = self.vault.seal(_content_bytes(r.subject, payload), _aad(r.id))
                conn.execute(_insert_sealed(r.id, sealed))
                conn.execute(
                    update(t.forget_requests)
                    .where(t.forget_requests.c.id == r.id)
                    .values(subject=None, payload=_counts(payload, r.subject))
                )
        if legacy:
            self._purge_deleted()

    def count_forgets(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.forget_requests)).scalar_one())

    def index_version(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(t.ledger_counters.c.value).where(t.ledger_counters.c.name == "index_version")
                ).scalar_one()
            )

    def snapshot(self) -> IndexSnapshot:
        """Index version and every entry's artifacts, consistent with each other (one read transaction)."""
        with self.engine.begin() as conn:
            version = int(
                conn.execute(
                    select(t.ledger_counters.c.value).where(t.ledger_counters.c.name == "index_version")
                ).scalar_one()
            )
            rows = conn.execute(
                select(t.guard_artifacts, t.forget_requests.c.action)
                .join(t.forget_requests, t.forget_requests.c.id == t.guard_artifacts.c.forget_id)
                .order_by(t.forget_requests.c.index_version)
            ).all()
        artifacts = tuple(_artifacts(r) for r in rows)
        return IndexSnapshot(version, artifacts)

    def load_artifacts(self) -> list[EntryArtifacts]:
        return list(self.snapshot().artifacts)

    def artifacts_since(self, version: int) -> tuple[int, list[tuple[int, EntryArtifacts]]]:
        """The index version now and (index version, artifacts) of every request committed after `version`,
        read in one transaction: how the authority publishes, by version range, whatever was committed."""
        with self.engine.begin() as conn:
            now = int(
                conn.execute(
                    select(t.ledger_counters.c.value).where(t.ledger_counters.c.name == "index_version")
                ).scalar_one()
            )
            rows = conn.execute(
                select(t.guard_artifacts, t.forget_requests.c.action, t.forget_requests.c.index_version)
                .join(t.forget_requests, t.forget_requests.c.id == t.guard_artifacts.c.forget_id)
                .where(t.forget_requests.c.index_version > version)
                .order_by(t.forget_requests.c.index_version)
            ).all()
        return now, [(int(r.index_version), _artifacts(r)) for r in rows]

    # --- audit ----------------------------------------------------------------------------------

    def append_audit(
        self, kind: str, *, actor: str, subject_id: str | None = None, details: dict[str, Any] | None = None
    ) -> AuditEvent:
        with self.engine.begin() as conn:
            return self._audit(conn, actor, kind, subject_id, details or {})

    def list_audit(
        self,
        *,
        kind: str | None = None,
        subject_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
        newest_first: bool = False,
    ) -> list[AuditEvent]:
        _page(limit, offset)
        if not all(_storable_key(v) for v in (kind, subject_id) if v is not None):
            return []
        order = t.audit_events.c.id.desc() if newest_first else t.audit_events.c.id
        q = select(t.audit_events).order_by(order).limit(limit).offset(offset)
        if kind is not None:
            q = q.where(t.audit_events.c.kind == kind)
        if subject_id is not None:
            q = q.where(t.audit_events.c.subject_id == subject_id)
        with self.engine.connect() as conn:
            return [AuditEvent(r.id, _utc(r.at), r.actor, r.kind, r.subject_id, r.details) for r in conn.execute(q)]

    # --- unlearning jobs ------------------------------------------------------------------------

    def create_job(
        self,
        method: str,
        forget_ids: Sequence[str],
        params: dict[str, Any] | None = None,
        resources: dict[str, Any] | None = None,
        *,
        job_id: str | None = None,
        actor: str = "operator",
    ) -> JobRecord:
        if not method:
            raise ValueError("method must be non-empty")
        job_id = job_id or str(uuid.uuid4())
        now = _now()
        values = dict(
            id=job_id,
            method=method,
            forget_ids=list(forget_ids),
            params=params or {},
            resources=resources or {},
            state=JobState.QUEUED.value,
            progress=0.0,
            step=0,
            loss=None,
            metrics={},
            version_id=None,
            error=None,
            created_at=now,
            started_at=None,
            finished_at=None,
        )
        _fit(t.unlearn_jobs, values)
        with self.engine.begin() as conn:
            conn.execute(insert(t.unlearn_jobs).values(**values))
            self._audit(conn, actor, "job.created", job_id, {"method": method, "forget_ids": list(forget_ids)})
        return self._job_from(values)

    def update_job(self, job_id: str, *, state: JobState | None = None, **fields: Any) -> JobRecord:
        """Change a job's state and fields (progress, step, loss, metrics, version_id, error, ...).
        Entering running stamps started_at; entering a terminal state stamps finished_at."""
        unknown = set(fields) - _JOB_FIELDS
        if unknown:
            raise ValueError(f"unknown job fields {sorted(unknown)}; allowed: {sorted(_JOB_FIELDS)}")
        if state is not None:
            state = _job_state(state)
            fields["state"] = state.value
        if isinstance(fields.get("error"), str):
            # A failure message is diagnostics: keep it whatever it holds rather than lose the failure.
            fields["error"] = fields["error"].replace("\x00", "\ufffd")
        _fit(t.unlearn_jobs, fields)
        if not _storable_key(job_id):
            raise KeyError(f"unknown job {job_id!r}")
        with self.engine.begin() as conn:
            row = conn.execute(select(t.unlearn_jobs).where(t.unlearn_jobs.c.id == job_id)).first()
            if row is None:
                raise KeyError(f"unknown job {job_id}")
            if state is JobState.RUNNING and row.started_at is None:
                fields.setdefault("started_at", _now())
            if state in JOB_TERMINAL_STATES:
                fields.setdefault("finished_at", _now())
            if fields:
                conn.execute(update(t.unlearn_jobs).where(t.unlearn_jobs.c.id == job_id).values(**fields))
            if state is not None and state != row.state:
                self._audit(conn, "system", "job.state", job_id, {"from": row.state, "to": state.value})
            row = conn.execute(select(t.unlearn_jobs).where(t.unlearn_jobs.c.id == job_id)).one()
        return self._job(row)

    def get_job(self, job_id: str) -> JobRecord | None:
        if not _storable_key(job_id):
            return None
        with self.engine.connect() as conn:
            row = conn.execute(select(t.unlearn_jobs).where(t.unlearn_jobs.c.id == job_id)).first()
        return self._job(row) if row else None

    def list_jobs(self, state: JobState | None = None, limit: int = 100, offset: int = 0) -> list[JobRecord]:
        _page(limit, offset)
        q = select(t.unlearn_jobs).order_by(t.unlearn_jobs.c.created_at, t.unlearn_jobs.c.id)
        if state is not None:
            q = q.where(t.unlearn_jobs.c.state == _job_state(state).value)
        with self.engine.connect() as conn:
            return [self._job(r) for r in conn.execute(q.limit(limit).offset(offset))]

    def fail_interrupted_jobs(self, reason: str) -> list[str]:
        """At startup: jobs left queued/running/evaluating by a crash are failed (their worker is gone)."""
        now = _now()
        with self.engine.begin() as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    select(t.unlearn_jobs.c.id).where(
                        t.unlearn_jobs.c.state.in_(sorted(s.value for s in JOB_ACTIVE_STATES))
                    )
                )
            ]
            if ids:
                conn.execute(
                    update(t.unlearn_jobs)
                    .where(t.unlearn_jobs.c.id.in_(ids))
                    .values(state=JobState.FAILED.value, error=reason, finished_at=now)
                )
                for job_id in ids:
                    self._audit(conn, "system", "job.interrupted", job_id, {"reason": reason})
        return ids

    # --- weight versions ------------------------------------------------------------------------

    def add_version(
        self,
        version_id: str,
        path: str,
        manifest: dict[str, Any],
        *,
        parent_id: str | None = None,
        method: str | None = None,
        actor: str = "system",
    ) -> VersionRecord:
        now = _now()
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.weight_versions).values(
                    _fit(
                        t.weight_versions,
                        dict(
                            id=version_id,
                            parent_id=parent_id,
                            method=method,
                            manifest=manifest,
                            path=path,
                            created_at=now,
                        ),
                    )
                )
            )
            self._audit(conn, actor, "version.added", version_id, {"parent_id": parent_id, "method": method})
        return VersionRecord(version_id, parent_id, method, manifest, path, now, False)

    def get_version(self, version_id: str) -> VersionRecord | None:
        if not _storable_key(version_id):
            return None
        with self.engine.connect() as conn:
            serving = self._serving_id(conn)
            row = conn.execute(select(t.weight_versions).where(t.weight_versions.c.id == version_id)).first()
        return self._version(row, serving) if row else None

    def list_versions(self, limit: int = 100, offset: int = 0) -> list[VersionRecord]:
        _page(limit, offset)
        with self.engine.connect() as conn:
            serving = self._serving_id(conn)
            rows = conn.execute(
                select(t.weight_versions)
                .order_by(t.weight_versions.c.created_at, t.weight_versions.c.id)
                .limit(limit)
                .offset(offset)
            )
            return [self._version(r, serving) for r in rows]

    def set_serving(self, version_id: str, *, actor: str = "operator", action: str = "promote") -> VersionRecord:
        """Point serving at a version (promotion or rollback), atomically, with an audit event."""
        now = _now()
        with self.engine.begin() as conn:
            row = conn.execute(select(t.weight_versions).where(t.weight_versions.c.id == version_id)).first()
            if row is None:
                raise KeyError(f"unknown weight version {version_id}")
            previous = self._serving_id(conn)
            if previous is None:
                conn.execute(insert(t.serving_pointer).values(name="serving", version_id=version_id, updated_at=now))
            else:
                conn.execute(
                    update(t.serving_pointer)
                    .where(t.serving_pointer.c.name == "serving")
                    .values(version_id=version_id, updated_at=now)
                )
            self._audit(conn, actor, "version.serving", version_id, {"previous": previous, "action": action})
        return self._version(row, version_id)

    def serving_version(self) -> VersionRecord | None:
        with self.engine.connect() as conn:
            serving = self._serving_id(conn)
            if serving is None:
                return None
            row = conn.execute(select(t.weight_versions).where(t.weight_versions.c.id == serving)).one()
        return self._version(row, serving)

    # --- internals ------------------------------------------------------------------------------

    @staticmethod
    def _bump(conn: Connection, name: str) -> int:
        # UPDATE first: it takes the row lock (PostgreSQL) inside the caller's transaction.
        conn.execute(
            update(t.ledger_counters)
            .where(t.ledger_counters.c.name == name)
            .values(value=t.ledger_counters.c.value + 1)
        )
        return int(conn.execute(select(t.ledger_counters.c.value).where(t.ledger_counters.c.name == name)).scalar_one())

    @staticmethod
    def _audit(conn: Connection, actor: str, kind: str, subject_id: str | None, details: dict[str, Any]) -> AuditEvent:
        actor = resolve_actor(actor)  # the acting API key, when a request's work writes this
        if not kind or not actor:
            raise ValueError("audit events need a kind and an actor")
        at = _now()
        result = conn.execute(
            insert(t.audit_events).values(
                _fit(
                    t.audit_events,
                    {"at": at, "actor": actor, "kind": kind, "subject_id": subject_id, "details": details},
                )
            )
        )
        key = result.inserted_primary_key
        if key is None:  # every backend the ledger supports returns the new row's id
            raise RuntimeError("the audit insert returned no primary key")
        return AuditEvent(int(key[0]), at, actor, kind, subject_id, details)

    @staticmethod
    def _serving_id(conn: Connection) -> str | None:
        return conn.execute(
            select(t.serving_pointer.c.version_id).where(t.serving_pointer.c.name == "serving")
        ).scalar()

    def _forget(self, r: Row[Any]) -> ForgetRecord:
        """A record with its content opened (subject and payload empty once shredded)."""
        subject, payload = None, {}
        if r.ciphertext is not None:
            content = self._open_content(r.id, Sealed(r.key_id, r.wrapped_key, r.ciphertext))
            subject, payload = content["subject"], {k: content[k] for k in ("texts", "qa", "literals")}
        stored = r.payload or {}  # counts since 0003 (lists in a ledger not yet sealed)
        counts = {k: int(v) if isinstance(v, int) else len(v or ()) for k, v in stored.items() if k != "subject"}
        return ForgetRecord(
            r.id,
            subject,
            r.reason,
            r.action,
            payload,
            ForgetStatus(r.status),
            _utc(r.created_at),
            _utc(r.enforced_at),
            int(r.index_version),
            counts=counts,
            content_digest=r.content_digest,
            shredded_at=_utc(r.shredded_at),
            has_subject=bool(stored.get("subject")) or subject is not None,
        )

    def _open_content(self, forget_id: str, sealed: Sealed) -> dict[str, Any]:
        try:
            content: dict[str, Any] = json.loads(self.vault.open(sealed, _aad(forget_id)))
        except VaultError as exc:
            raise VaultError(f"forget request {forget_id}: {exc}") from None
        return content

    @staticmethod
    def _job_from(v: dict[str, Any]) -> JobRecord:
        return JobRecord(
            id=v["id"],
            method=v["method"],
            forget_ids=tuple(v["forget_ids"]),
            params=v["params"],
            resources=v["resources"],
            state=JobState(v["state"]),
            progress=float(v["progress"]),
            step=int(v["step"]),
            loss=v["loss"],
            metrics=v["metrics"],
            version_id=v["version_id"],
            error=v["error"],
            created_at=_utc(v["created_at"]),
            started_at=_utc(v["started_at"]),
            finished_at=_utc(v["finished_at"]),
        )

    def _job(self, r: Row[Any]) -> JobRecord:
        return self._job_from(dict(r._mapping))

    @staticmethod
    def _version(r: Row[Any], serving: str | None) -> VersionRecord:
        return VersionRecord(r.id, r.parent_id, r.method, r.manifest, r.path, _utc(r.created_at), r.id == serving)
