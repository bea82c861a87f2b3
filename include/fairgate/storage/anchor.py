"""Each evidence chain's HEAD, kept a second time outside the artifact store: the outside anchor.

A writer to the store can replace HEAD with an older one it saved (its MAC still checks) and delete
the records after it: the chain is cut back, and nothing inside the store can tell. So every time
HEAD moves, its ``(seq, hash)`` is also written to a database the store's writers cannot reach, and
reading a chain compares the two (:func:`fairgate.governance.evidence.verify`): a HEAD behind the
anchor, or a record at the anchor's seq with another hash, is an integrity error.

The anchor is a table in any SQLAlchemy database (``FAIRGATE_HEAD_ANCHOR``: a URL such as
``postgresql://fairgate@db/airflow``, or in Airflow the URI of the connection
``fairgate_head_anchor``): one row per model, moved forward only (an update that would move it back
changes nothing). Without one, a cut-back chain is not detected (``fairgate verify-log`` says so).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from fairgate.errors import EvidenceIntegrityError, StoreConfigError

if TYPE_CHECKING:
    import sqlalchemy

TABLE = "fairgate_evidence_heads"


class HeadAnchor(Protocol):
    @property
    def where(self) -> str:
        """What people are told the anchor is."""

    def read(self, model: str) -> tuple[int, str] | None:
        """The newest ``(seq, hash)`` anchored for ``model``, or None."""

    def advance(self, model: str, seq: int, hash_: str) -> None:
        """Anchor ``(seq, hash)`` unless the anchor already holds a later seq."""


@dataclass
class SqlAnchor:
    """The anchor as a table in a SQL database (created on first use)."""

    url: str
    _engine: sqlalchemy.engine.Engine | None = field(default=None, repr=False)
    _made: sqlalchemy.Table | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        import sqlalchemy as sa

        return f"table {TABLE} of {sa.engine.make_url(self.url).render_as_string(hide_password=True)}"

    def _table(self) -> tuple[sqlalchemy.engine.Engine, sqlalchemy.Table]:
        import sqlalchemy as sa

        if self._engine is not None and self._made is not None:
            return self._engine, self._made
        if self._engine is None:
            try:
                self._engine = sa.create_engine(self.url)
            except (sa.exc.ArgumentError, ImportError) as exc:
                raise StoreConfigError(f"FAIRGATE_HEAD_ANCHOR {self.url!r} is not a database URL ({exc}).") from None
        table = sa.Table(
            TABLE,
            sa.MetaData(),
            sa.Column("model", sa.String(200), primary_key=True),
            sa.Column("seq", sa.BigInteger, nullable=False),
            sa.Column("hash", sa.String(64), nullable=False),
            sa.Column("updated_at", sa.String(40), nullable=False),
        )
        try:
            table.create(self._engine, checkfirst=True)
        except sa.exc.ProgrammingError:  # created by another process between the check and the create
            pass
        self._made = table
        return self._engine, table

    def read(self, model: str) -> tuple[int, str] | None:
        import sqlalchemy as sa

        engine, table = self._table()
        with engine.connect() as conn:
            row = conn.execute(sa.select(table.c.seq, table.c.hash).where(table.c.model == model)).first()
        return (int(row[0]), str(row[1])) if row else None

    def advance(self, model: str, seq: int, hash_: str) -> None:
        import sqlalchemy as sa

        engine, table = self._table()
        now = datetime.now(UTC).isoformat()
        with engine.begin() as conn:
            found = conn.execute(
                sa.select(table.c.seq, table.c.hash).where(table.c.model == model).with_for_update()
            ).first()
            if found is None:
                try:
                    conn.execute(table.insert().values(model=model, seq=seq, hash=hash_, updated_at=now))
                    return
                except sa.exc.IntegrityError:  # another writer inserted first: compare with it below
                    found = conn.execute(sa.select(table.c.seq, table.c.hash).where(table.c.model == model)).first()
                    assert found is not None
            if int(found[0]) == seq and found[1] != hash_:
                raise EvidenceIntegrityError(
                    f"The outside anchor ({self.where}) holds another hash for record {seq} of {model!r}: the "
                    "chain in the store was rewritten."
                )
            if int(found[0]) < seq:
                conn.execute(
                    sa.update(table)
                    .where(table.c.model == model, table.c.seq < seq)
                    .values(seq=seq, hash=hash_, updated_at=now)
                )


_opened: dict[str, SqlAnchor] = {}


def sql_anchor(url: str) -> SqlAnchor:
    """The anchor at ``url``, one per URL and process (its engine pools the connections)."""
    if url not in _opened:
        _opened[url] = SqlAnchor(url)
    return _opened[url]


def _from_env() -> HeadAnchor | None:
    url = os.environ.get("FAIRGATE_HEAD_ANCHOR")
    return sql_anchor(url) if url else None


_source: Callable[[], HeadAnchor | None] = _from_env


def use_anchor(source: Callable[[], HeadAnchor | None]) -> None:
    """Where the anchor comes from (Airflow's tasks: a connection; default: ``FAIRGATE_HEAD_ANCHOR``)."""
    global _source
    _source = source


def current() -> HeadAnchor | None:
    """The configured anchor, or None."""
    return _source()
