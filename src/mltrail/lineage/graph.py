"""Lineage queries: recursive SQL over `lineage_edges`, both ways, on both dialects.

An edge ``(src) -role-> (dst)`` says src depends on dst: a run `used` a dataset, a model
version was `produced_by` a run, a deployment `serves` a version. Upstream follows edges
from src to dst (where did this come from?); downstream follows them backwards (what did
this influence?). Each walk is one recursive query, not a loop of queries.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Connection

from mltrail.storage import raw

__all__ = ["Edge", "downstream", "upstream"]

MAX_DEPTH = 12


@dataclass(frozen=True, slots=True)
class Edge:
    """One lineage edge found by a walk, with its distance from the start."""

    depth: int
    src_type: str
    src_id: str
    role: str
    dst_type: str
    dst_id: str


def upstream(
    conn: Connection, node_type: str, node_id: str, max_depth: int = MAX_DEPTH
) -> list[Edge]:
    """Every edge reachable from (node_type, node_id) following dependencies."""
    return _walk(conn, node_type, node_id, max_depth, down=False)


def downstream(
    conn: Connection, node_type: str, node_id: str, max_depth: int = MAX_DEPTH
) -> list[Edge]:
    """Every edge that leads, through dependants, to (node_type, node_id)."""
    return _walk(conn, node_type, node_id, max_depth, down=True)


def _walk_sql(near: str, far: str) -> str:
    # One recursive CTE, plain SQL both dialects accept; built once, not per call.
    return (
        "WITH RECURSIVE walk(depth, src_type, src_id, role, dst_type, dst_id, next_type, next_id)"
        " AS ("
        " SELECT 1, src_type, src_id, role, dst_type, dst_id,"
        f" {far}_type, {far}_id FROM lineage_edges WHERE {near}_type = ? AND {near}_id = ?"
        " UNION"
        " SELECT w.depth + 1, e.src_type, e.src_id, e.role, e.dst_type, e.dst_id,"
        f" e.{far}_type, e.{far}_id FROM lineage_edges e"
        f" JOIN walk w ON e.{near}_type = w.next_type AND e.{near}_id = w.next_id"
        " WHERE w.depth < ?)"
        " SELECT min(depth), src_type, src_id, role, dst_type, dst_id FROM walk"
        " GROUP BY src_type, src_id, role, dst_type, dst_id ORDER BY 1, 2, 3, 4, 5, 6"
    )


_UP = _walk_sql("src", "dst")
_DOWN = _walk_sql("dst", "src")


def _walk(
    conn: Connection, node_type: str, node_id: str, max_depth: int, *, down: bool
) -> list[Edge]:
    rows = raw.execute(conn, _DOWN if down else _UP, (node_type, node_id, max_depth))
    return [Edge(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]
