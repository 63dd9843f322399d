"""A tiny pure-Python wheel written by hand (PEP 427) for offline-install tests.

No build backend and no network: a wheel is a zip with METADATA, WHEEL and RECORD.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

TINYDEP_SOURCE = b"FACTOR = 3\n\ndef triple(x):\n    return x * FACTOR\n"


def build_wheel(wheel_dir: Path, name: str = "tinydep", version: str = "0.1") -> Path:
    """Write ``name-version-py3-none-any.whl`` (module ``name`` with ``triple``) into
    ``wheel_dir`` and return its path."""
    dist_info = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    files = {
        f"{name}/__init__.py": TINYDEP_SOURCE,
        f"{dist_info}/METADATA": metadata.encode(),
        f"{dist_info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: mltrail-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    record = [
        f"{path},sha256={_b64(hashlib.sha256(data).digest())},{len(data)}"
        for path, data in files.items()
    ]
    files[f"{dist_info}/RECORD"] = ("\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n").encode()
    wheel_dir.mkdir(parents=True, exist_ok=True)
    wheel = wheel_dir / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
