"""Rendering lineage edges as Graphviz dot or Mermaid text (pure functions).

>>> edges = [{"from": "run:R678", "role": "used", "to": "dataset:DS:2024-05-15"}]
>>> print(to_mermaid(edges))
flowchart LR
  n0["run:R678"] -->|used| n1["dataset:DS:2024-05-15"]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["to_dot", "to_mermaid"]


def _ids(edges: list[Mapping[str, str]]) -> dict[str, str]:
    names: dict[str, str] = {}
    for edge in edges:
        for node in (edge["from"], edge["to"]):
            names.setdefault(node, f"n{len(names)}")
    return names


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(edges: Iterable[Mapping[str, str]], title: str = "lineage") -> str:
    """Graphviz ``digraph`` of the edges (src depends on dst)."""
    items = list(edges)
    names = _ids(items)
    lines = [f'digraph "{_quote(title)}" {{', "  rankdir=LR;", "  node [shape=box];"]
    lines += [f'  {n} [label="{_quote(label)}"];' for label, n in names.items()]
    lines += [
        f'  {names[e["from"]]} -> {names[e["to"]]} [label="{_quote(e["role"])}"];' for e in items
    ]
    return "\n".join([*lines, "}"])


def to_mermaid(edges: Iterable[Mapping[str, str]]) -> str:
    """Mermaid ``flowchart`` of the edges."""
    items = list(edges)
    names = _ids(items)
    seen: set[str] = set()
    lines = ["flowchart LR"]
    for edge in items:
        src, dst = edge["from"], edge["to"]
        left = names[src] if src in seen else f'{names[src]}["{_quote(src)}"]'
        seen.add(src)
        right = names[dst] if dst in seen else f'{names[dst]}["{_quote(dst)}"]'
        seen.add(dst)
        lines.append(f"  {left} -->|{edge['role']}| {right}")
    return "\n".join(lines)
