"""Tracing and history: lineage both ways, point-in-time answers from the log, rebuild."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from mltrail.canonical import loads
from mltrail.catalog import queries
from mltrail.catalog.ids import check_name
from mltrail.catalog.projector import project_events
from mltrail.errors import NotFoundError
from mltrail.events import Event, format_timestamp, parse_timestamp
from mltrail.lineage.graph import Edge, downstream, upstream
from mltrail.service.predictions import PredictionUseCases
from mltrail.storage import schema as t

__all__ = ["LineageUseCases"]

_STAGE_ACTIONS = ("promote", "rollback", "retire")
_DEPLOY_ACTIONS = ("deploy", "rollback", "retire")


class LineageUseCases(PredictionUseCases):
    """Questions about where things came from, what they influenced, and when."""

    def trace_prediction(self, prediction_id: str) -> dict[str, Any]:
        """P → deployment → model version → run → datasets, commit, environment, parameters,
        with every digest on the way (seed Example 1), in a fixed number of queries and one
        ranged read of the prediction's batch file (where its record is)."""
        with self.db.read() as conn:
            row = queries.prediction(conn, prediction_id)
        data = self._record(row)  # artifact I/O (on S3, a request) outside any transaction
        record = loads(data)
        with self.db.read() as conn:
            deployment = queries.get(conn, "deployment", record["deployment"])
            version = queries.get(conn, "model_version", record["version"])
            trace: dict[str, Any] = {
                "prediction": {
                    "prediction_id": prediction_id,
                    "timestamp": record["timestamp"],
                    "input_hmac": record["input_hmac"],
                    "output": record["output"],
                    "batch_id": row["batch_id"],
                    "record_sha256": hashlib.sha256(data).hexdigest(),
                },
                "deployment": _public(deployment),
                "model_version": _public(version),
            }
            trace.update(self._upstream_of_version(conn, version))
        trace["chain"] = _chain(trace)
        return trace

    def trace_version(self, version: str) -> dict[str, Any]:
        """Model version → run → datasets, commit, environment, parameters."""
        vid = self.resolve_version(version)
        with self.db.read() as conn:
            row = queries.get(conn, "model_version", vid)
            trace: dict[str, Any] = {"model_version": _public(row)}
            trace.update(self._upstream_of_version(conn, row))
        trace["chain"] = _chain(trace)
        return trace

    def _upstream_of_version(self, conn: Any, version: dict[str, Any]) -> dict[str, Any]:
        edges = upstream(conn, "model_version", version["version_id"])
        out: dict[str, Any] = {"edges": [_edge(e) for e in edges]}
        run_id = version.get("run_id")
        if run_id:
            run = queries.get(conn, "run", run_id)
            out["run"] = _public(run)
            out["datasets"] = [
                _public(queries.get(conn, "dataset", d)) for d in queries.run_datasets(conn, run_id)
            ]
            out["commit"] = (
                _public(queries.find(conn, "commit", run["commit_id"]) or {})
                if run["commit_id"]
                else None
            )
            env = (
                queries.find(conn, "environment", run["environment_id"])
                if run["environment_id"]
                else None
            )
            out["environment"] = _public(env) if env else None
            out["parameters"] = run["params"]
        return out

    def impact_of_dataset(self, dataset_id: str) -> dict[str, Any]:
        """Dataset → runs → versions → deployments, with prediction counts (downstream)."""
        with self.db.read() as conn:
            queries.get(conn, "dataset", dataset_id)
            edges = downstream(conn, "dataset", dataset_id)
            nodes = {(e.src_type, e.src_id) for e in edges}
            versions = sorted(i for k, i in nodes if k == "model_version")
            counts = _prediction_counts(conn, versions)
        return {
            "dataset": dataset_id,
            "runs": sorted(i for k, i in nodes if k == "run"),
            "model_versions": versions,
            "deployments": sorted(i for k, i in nodes if k == "deployment"),
            "predictions": counts,
            "prediction_total": sum(c["count"] for c in counts),
            "edges": [_edge(e) for e in edges],
        }

    def history(self, ref_type: str, ref_id: str) -> list[Event]:
        """Every event that touched a subject: as subject or as a related reference."""
        with self.db.read() as conn:
            seqs = [
                int(s)
                for (s,) in conn.execute(
                    sa.select(t.event_refs.c.seq)
                    .where(t.event_refs.c.ref_type == ref_type, t.event_refs.c.ref_id == ref_id)
                    .order_by(t.event_refs.c.seq)
                )
            ]
        if not seqs:
            raise NotFoundError(f"no event mentions {ref_type} {ref_id!r}")
        return [self.log.event(s) for s in seqs]

    def state_at(self, model: str, at: str) -> dict[str, Any]:
        """What was in production for ``model``, and what each deployment served, at ``at``
        — answered by replaying the log up to that instant, not from current tables."""
        check_name(model)
        when = format_timestamp(parse_timestamp(at))
        production: str | None = None
        deployments: dict[str, dict[str, str]] = {}
        for event in self._model_events(model, when):
            production = _production_after(event, production)
            if event.subject.type == "deployment" and event.outcome == "success":
                _deployment_after(event, deployments, f"model:{model}:v")
        return {"model": model, "at": when, "production": production, "deployments": deployments}

    def _model_events(self, model: str, until: str) -> Iterator[Event]:
        prefix = f"model:{model}:v"
        refs = t.event_refs
        e = t.ledger_events
        seqs = sa.select(refs.c.seq).where(
            refs.c.ref_type == "model_version", refs.c.ref_id.startswith(prefix, autoescape=True)
        )
        # Retiring a deployment, or pointing it at another model, names no version of this
        # model, so find those events through the deployments that served one.
        served = sa.select(refs.c.ref_id).where(
            refs.c.ref_type == "deployment", refs.c.seq.in_(seqs)
        )
        elsewhere = sa.and_(
            e.c.action.in_(_DEPLOY_ACTIONS),
            e.c.subject_type == "deployment",
            e.c.subject_id.in_(served),
        )
        query = (
            sa.select(e.c.body)
            .where(
                sa.or_(
                    sa.and_(e.c.seq.in_(seqs), e.c.action.in_((*_STAGE_ACTIONS, "deploy"))),
                    elsewhere,
                ),
                e.c.ts <= until,
            )
            .order_by(e.c.seq)
        )
        with self.db.read() as conn:
            return iter([Event.from_bytes(bytes(b)) for (b,) in conn.execute(query)])

    # -- rebuild -----------------------------------------------------------------------------

    def rebuild(self) -> dict[str, Any]:
        """Re-derive every projection from the log and compare with the live tables.

        The rebuilt tables replace the live ones; the report says, per table, whether they
        were equal (they must be, unless a projection was edited behind the registry's back).
        """
        with self.db.write() as conn:
            before = _snapshot(conn)
            for table in reversed(t.PROJECTION_TABLES):
                conn.execute(table.delete())
            self._replay(conn)
            after = _snapshot(conn)
        tables = {
            name: {
                "live_rows": len(before[name]),
                "rebuilt_rows": len(after[name]),
                "equal": before[name] == after[name],
            }
            for name in before
        }
        return {"equal": all(v["equal"] for v in tables.values()), "tables": tables}

    def _replay(self, conn: Any) -> None:
        last = -1
        while True:
            rows = conn.execute(
                sa.select(t.ledger_events.c.seq, t.ledger_events.c.body)
                .where(t.ledger_events.c.seq > last)
                .order_by(t.ledger_events.c.seq)
                .limit(5000)
            ).all()
            if not rows:
                return
            events = [Event.from_bytes(bytes(body)) for _, body in rows]
            project_events(conn, events)
            for event in events:
                if event.action == "log_predictions" and event.outcome == "success":
                    self._replay_predictions(conn, event)
                self._replay_extra(conn, event)
            last = int(rows[-1][0])

    def _replay_predictions(self, conn: Any, event: Event) -> None:
        assert event.artifact_sha256 is not None
        blobs = self.store.read_bytes(event.artifact_sha256).split(b"\n")
        self._store_records(conn, event, blobs)

    def _replay_extra(self, conn: Any, event: Event) -> None:
        """Hook for projections kept outside `project_events` (payloads)."""


def _snapshot(conn: Any) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table.name: sorted(
            tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
            for row in conn.execute(sa.select(table))
        )
        for table in t.PROJECTION_TABLES
    }


def _prediction_counts(conn: Any, versions: list[str]) -> list[dict[str, Any]]:
    if not versions:
        return []
    b = t.prediction_batches
    rows = conn.execute(
        sa.select(b.c.deployment_id, b.c.version_id, sa.func.sum(b.c.count))
        .where(b.c.version_id.in_(versions))
        .group_by(b.c.deployment_id, b.c.version_id)
        .order_by(b.c.deployment_id, b.c.version_id)
    )
    return [{"deployment": d, "model_version": v, "count": int(n)} for d, v, n in rows]


def _production_after(event: Event, current: str | None) -> str | None:
    meta = event.metadata
    if event.outcome != "success":
        return current
    if event.action == "promote":
        if meta.get("to_stage") == "production":
            return event.subject.id
        return None if current == event.subject.id else current
    if event.action == "rollback" and meta.get("from_version") == current:
        return str(meta.get("to_version"))
    if event.action == "retire" and current == event.subject.id:
        return None
    return current


def _deployment_after(event: Event, deployments: dict[str, dict[str, str]], prefix: str) -> None:
    """Apply a deployment event; a deployment now serving another model's version leaves."""
    meta = event.metadata
    version = str(meta["version"] if event.action == "deploy" else meta.get("to_version"))
    if event.action in ("deploy", "rollback") and version.startswith(prefix):
        deployments[event.subject.id] = {"version": version, "since": event.timestamp}
    else:
        deployments.pop(event.subject.id, None)


def _edge(edge: Edge) -> dict[str, Any]:
    return {
        "depth": edge.depth,
        "from": f"{edge.src_type}:{edge.src_id}",
        "role": edge.role,
        "to": f"{edge.dst_type}:{edge.dst_id}",
    }


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("content_sha256",)}


def _chain(trace: dict[str, Any]) -> list[str]:
    chain = []
    if "prediction" in trace:
        chain += [trace["prediction"]["prediction_id"], trace["deployment"]["deployment_id"]]
    chain.append(trace["model_version"]["version_id"])
    if trace.get("run"):
        chain.append(trace["run"]["run_id"])
    chain += [d["dataset_id"] for d in trace.get("datasets", [])]
    return chain
