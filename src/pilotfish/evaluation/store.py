"""EvalStore: evaluation runs and their per-item records in SQL (SQLite by default, any SQLAlchemy URL).

A run is created before its first item and finished after its last; every item is committed as it is
scored, so an interrupted run resumes where it stopped (`EvalStore.done_ids`).

>>> store = EvalStore("sqlite://")
>>> run = store.start_run("baseline", dataset="qa.jsonl", pipeline="basic", config={})
>>> store.add_record(run, "q1", {"f1": 1.0})
>>> store.done_ids(run), store.list_runs()[0]["status"]
({'q1'}, 'running')
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, UniqueConstraint, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from pilotfish.errors import ConfigError


class _Base(DeclarativeBase):
    pass


class RunRow(_Base):
    __tablename__ = "eval_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True, index=True)
    dataset: Mapped[str] = mapped_column(String(2048))
    pipeline: Mapped[str] = mapped_column(String(2048))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="running")
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class RecordRow(_Base):
    __tablename__ = "eval_records"
    __table_args__ = (UniqueConstraint("run_id", "item_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("eval_runs.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[str] = mapped_column(String(1024))
    record: Mapped[dict[str, Any]] = mapped_column(JSON)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class EvalStore:
    """Runs and records; `url` is a SQLAlchemy URL (`sqlite:///runs.db`, `postgresql://...`)."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)
        _Base.metadata.create_all(self.engine)

    def start_run(self, name: str, *, dataset: str, pipeline: str, config: dict[str, Any]) -> int:
        """A new run, or the unfinished run of that name with the same dataset and pipeline (resume)."""
        with Session(self.engine) as session:
            row = session.scalar(select(RunRow).where(RunRow.name == name))
            if row is not None:
                if row.status == "finished":
                    raise ConfigError(f"a finished run named {name!r} exists: choose another --name, or compare "
                                      "against it")
                if (row.dataset, row.pipeline) != (dataset, pipeline):
                    raise ConfigError(f"run {name!r} was started on {row.dataset} with {row.pipeline}; resume it "
                                      "with the same dataset and pipeline, or choose another --name")
                return row.id
            row = RunRow(name=name, dataset=dataset, pipeline=pipeline, config=config, started_at=_now())
            session.add(row)
            session.commit()
            return row.id

    def add_record(self, run_id: int, item_id: str, record: dict[str, Any]) -> None:
        with Session(self.engine) as session:
            session.add(RecordRow(run_id=run_id, item_id=item_id, record=record))
            session.commit()

    def done_ids(self, run_id: int) -> set[str]:
        with Session(self.engine) as session:
            return set(session.scalars(select(RecordRow.item_id).where(RecordRow.run_id == run_id)))

    def records(self, run_id: int) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            rows = session.scalars(select(RecordRow).where(RecordRow.run_id == run_id).order_by(RecordRow.id))
            return [row.record | {"id": row.item_id} for row in rows]

    def finish_run(self, run_id: int, summary: dict[str, Any]) -> None:
        with Session(self.engine) as session:
            row = session.get(RunRow, run_id)
            assert row is not None
            row.status, row.summary, row.finished_at = "finished", summary, _now()
            session.commit()

    def run(self, name: str) -> dict[str, Any]:
        """A run by name, with its summary; ConfigError listing the runs when there is none."""
        with Session(self.engine) as session:
            row = session.scalar(select(RunRow).where(RunRow.name == name))
            if row is None:
                known = ", ".join(r["name"] for r in self.list_runs()) or "none yet"
                raise ConfigError(f"no evaluation run named {name!r}; runs: {known}")
            return _as_dict(row)

    def list_runs(self) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            return [_as_dict(row) for row in session.scalars(select(RunRow).order_by(RunRow.id))]


def _as_dict(row: RunRow) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "dataset": row.dataset, "pipeline": row.pipeline, "status": row.status,
            "config": row.config, "summary": row.summary, "started_at": row.started_at.isoformat(timespec="seconds"),
            "finished_at": row.finished_at.isoformat(timespec="seconds") if row.finished_at else None}
