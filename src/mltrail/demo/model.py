"""Small, dependency-free models for the demo: synthetic data, logistic regression, and a
scoring module that ships inside each model version.

Everything is deterministic (seeded), so a re-run gives bit-identical scores: that is
what `mltrail repro` checks.

>>> rows = make_rows("churn", 200, seed=1)
>>> weights = train("churn", rows, epochs=50)
>>> out = score(weights, rows[0]["features"])
>>> sorted(out) == ["label", "score"] and 0.0 <= out["score"] <= 1.0
True
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["FEATURES", "SCORE_SOURCE", "make_rows", "rows_to_csv", "score", "train", "write_model"]

FEATURES: Mapping[str, tuple[str, ...]] = {
    "churn": ("tenure_months", "monthly_charges", "support_calls", "month_to_month"),
    "fraud": ("amount", "hour", "merchant_risk", "foreign"),
}
_TRUE: Mapping[str, tuple[float, ...]] = {
    "churn": (-0.08, 0.03, 0.45, 1.2),
    "fraud": (0.004, -0.05, 2.5, 1.4),
}
_BIAS = {"churn": -1.5, "fraud": -4.0}


def _feature_row(kind: str, rng: random.Random, shift: float) -> dict[str, float]:
    if kind == "churn":
        return {
            "tenure_months": float(rng.randint(1, 72)),
            "monthly_charges": round(rng.uniform(20, 120) + shift * 15, 2),
            "support_calls": float(rng.randint(0, 6)),
            "month_to_month": float(rng.random() < 0.5),
        }
    return {
        "amount": round(rng.expovariate(1 / 80) + shift * 40, 2),
        "hour": float(rng.randint(0, 23)),
        "merchant_risk": round(rng.random(), 3),
        "foreign": float(rng.random() < 0.1),
    }


def make_rows(kind: str, n: int, *, seed: int, shift: float = 0.0) -> list[dict[str, Any]]:
    """``n`` labelled rows; ``shift`` moves the feature distribution (for drift stories)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        features = _feature_row(kind, rng, shift)
        z = _BIAS[kind] + sum(
            w * features[f] for w, f in zip(_TRUE[kind], FEATURES[kind], strict=True)
        )
        rows.append({"features": features, "label": int(rng.random() < 1 / (1 + math.exp(-z)))})
    return rows


def rows_to_csv(kind: str, rows: Sequence[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*FEATURES[kind], "label"])
    for row in rows:
        writer.writerow([*(row["features"][f] for f in FEATURES[kind]), row["label"]])
    return out.getvalue()


def train(
    kind: str, rows: Sequence[Mapping[str, Any]], *, epochs: int = 60, lr: float = 0.5
) -> dict[str, Any]:
    """Logistic regression by full-batch gradient descent on standardised features."""
    names = FEATURES[kind]
    columns = [[float(r["features"][f]) for r in rows] for f in names]
    means = [sum(c) / len(c) for c in columns]
    stds = [
        max(1e-9, math.sqrt(sum((x - m) ** 2 for x in c) / len(c)))
        for c, m in zip(columns, means, strict=True)
    ]
    xs = [
        [(c[i] - m) / s for c, m, s in zip(columns, means, stds, strict=True)]
        for i in range(len(rows))
    ]
    ys = [r["label"] for r in rows]
    weights, bias = [0.0] * len(names), 0.0
    for _ in range(epochs):
        grad, gbias = [0.0] * len(names), 0.0
        for x, y in zip(xs, ys, strict=True):
            err = (
                1 / (1 + math.exp(-(bias + sum(w * v for w, v in zip(weights, x, strict=True)))))
                - y
            )
            gbias += err
            for j, v in enumerate(x):
                grad[j] += err * v
        bias -= lr * gbias / len(xs)
        weights = [w - lr * g / len(xs) for w, g in zip(weights, grad, strict=True)]
    return {
        "kind": kind,
        "features": list(names),
        "weights": weights,
        "bias": bias,
        "mean": means,
        "std": stds,
    }


def auc(weights: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> float:
    """Area under the ROC curve (rank statistic), rounded to 4 places."""
    scored = sorted((score(weights, r["features"])["score"], r["label"]) for r in rows)
    positives = sum(y for _, y in scored)
    negatives = len(scored) - positives
    rank_sum = sum(i + 1 for i, (_, y) in enumerate(scored) if y)
    return float(
        round((rank_sum - positives * (positives + 1) / 2) / max(1, positives * negatives), 4)
    )


SCORE_SOURCE = '''"""Scoring entry point of this model version: predict(features) -> score."""

import json
import math
import pathlib

_W = json.loads((pathlib.Path(__file__).parent / "weights.json").read_text())


def predict(features):
    z = _W["bias"]
    for name, w, m, s in zip(_W["features"], _W["weights"], _W["mean"], _W["std"]):
        z += w * (float(features[name]) - m) / s
    p = 1.0 / (1.0 + math.exp(-z))
    return {"score": round(p, 6), "label": int(p >= 0.5)}
'''


def score(weights: Mapping[str, Any], features: Mapping[str, Any]) -> dict[str, Any]:
    """The same arithmetic as `SCORE_SOURCE`, for use inside the demo itself."""
    z = weights["bias"]
    for name, w, m, s in zip(
        weights["features"], weights["weights"], weights["mean"], weights["std"], strict=True
    ):
        z += w * (float(features[name]) - m) / s
    p = 1.0 / (1.0 + math.exp(-z))
    return {"score": round(p, 6), "label": int(p >= 0.5)}


def write_model(directory: Path, weights: Mapping[str, Any]) -> Path:
    """A model version's files: weights.json and score.py (entry point score.py:predict)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "weights.json").write_text(json.dumps(weights, indent=1, sort_keys=True) + "\n")
    (directory / "score.py").write_text(SCORE_SOURCE)
    return directory
