"""Lineage queries: recursive SQL over `lineage_edges`, both ways, on both dialects.

An edge ``(src) -role-> (dst)`` says src depends on dst: a run `used` a dataset, a model
version was `produced_by` a run, a deployment `serves` a version. Upstream follows edges
from src to dst (where did this come from?); downstream follows them backwards (what did
this influence?). Each walk is one recursive query, not a loop of queries.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mltrail.storage.schema import lineage_edges

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


def _walk(
    conn: Connection, node_type: str, node_id: str, max_depth: int, *, down: bool
) -> list[Edge]:
    e = lineage_edges.alias("e")
    near_type, near_id = (e.c.dst_type, e.c.dst_id) if down else (e.c.src_type, e.c.src_id)
    far_type, far_id = (e.c.src_type, e.c.src_id) if down else (e.c.dst_type, e.c.dst_id)
    columns = (e.c.src_type, e.c.src_id, e.c.role, e.c.dst_type, e.c.dst_id)
    start = sa.select(
        sa.literal(1).label("depth"), *columns, far_type.label("next_type"), far_id.label("next_id")
    ).where(near_type == node_type, near_id == node_id)
    walk = start.cte("walk", recursive=True)
    step = (
        sa.select((walk.c.depth + 1).label("depth"), *columns, far_type, far_id)
        .join(walk, sa.and_(near_type == walk.c.next_type, near_id == walk.c.next_id))
        .where(walk.c.depth < max_depth)
    )
    walk = walk.union(step)
    rows = conn.execute(
        sa.select(
            sa.func.min(walk.c.depth),
            walk.c.src_type,
            walk.c.src_id,
            walk.c.role,
            walk.c.dst_type,
            walk.c.dst_id,
        )
        .group_by(walk.c.src_type, walk.c.src_id, walk.c.role, walk.c.dst_type, walk.c.dst_id)
        .order_by(sa.func.min(walk.c.depth), walk.c.src_type, walk.c.src_id, walk.c.role)
    )
    return [Edge(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]
