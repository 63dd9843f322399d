"""Reports for auditors and incident reviews, and offline-verifiable evidence bundles.

- `render_compliance`: who registered, attested, approved and promoted a version, under
  which policy, each entry with its log index and inclusion proof (seed Example 3).
- `render_incident`: the timeline of a model around an incident (seed Example 2).
- `write_bundle` / `verify_bundle`: a self-contained directory an auditor checks with no
  database, trusting only the registry's public key.

Every renderer writes ``markdown``, ``html`` (one self-contained page) or ``json``.

>>> from mltrail.report import FORMATS
>>> FORMATS
('markdown', 'html', 'json')
"""

from __future__ import annotations

from mltrail.report.bundle import BundleReport, verify_bundle, write_bundle
from mltrail.report.claims import verify_claims
from mltrail.report.compliance import FORMATS, render_compliance
from mltrail.report.incident import render_incident

__all__ = [
    "FORMATS",
    "BundleReport",
    "render_compliance",
    "render_incident",
    "verify_bundle",
    "verify_claims",
    "write_bundle",
]
