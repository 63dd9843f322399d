"""A witness: remembers the last checkpoint it verified and cosigns only consistent growth.

The witness keeps its state in a directory (another machine, another owner): its own
signing key (`witness.key`, mode 0600), the log's verifier key it trusts, and the last
checkpoint it accepted (`checkpoint.note`, cosigned). A new checkpoint is accepted only
with a consistency proof from the remembered one (RFC 9162 §2.1.4); a smaller or forked
tree is refused loudly (DESIGN §3, C2SP tlog-witness).

>>> import tempfile
>>> from mltrail.ledger.checkpoint import Checkpoint, NoteSigner, sign_note
>>> log = NoteSigner.from_seed("example.org/log", bytes(32))
>>> w = Witness.create(tempfile.mkdtemp(), name="example.org/witness", log_key=log.verifier_key)
>>> note = sign_note(Checkpoint("example.org/log", 1, bytes(32)).to_text(), log)
>>> w.accept(note, proof=[]).size
1
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

from mltrail.errors import ConfigError, VerificationError
from mltrail.ledger import merkle
from mltrail.ledger.checkpoint import (
    Checkpoint,
    NoteSigner,
    cosign,
    cosigner_verifier_key,
    open_note,
    split_note,
)
from mltrail.ledger.keys import load_signer, save_signer

__all__ = ["Witness"]

_KEY = "witness.key"
_STATE = "state.json"
_NOTE = "checkpoint.note"


class Witness:
    """A witness whose state lives in ``directory``."""

    def __init__(self, directory: Path, signer: NoteSigner, log_key: str) -> None:
        self.directory = directory
        self.signer = signer
        self.log_key = log_key

    @classmethod
    def create(cls, directory: str | os.PathLike[str], *, name: str, log_key: str) -> Witness:
        """Set up a new witness for the log whose verifier key is ``log_key``."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        if (path / _STATE).exists():
            raise ConfigError(
                f"a witness already lives in {path}", hint="use it, or pick another directory"
            )
        signer = NoteSigner.generate(name)
        save_signer(path / _KEY, signer)
        _write_atomic(
            path / _STATE,
            json.dumps({"log_key": log_key, "cosigner_key": cosigner_verifier_key(signer)}),
        )
        return cls(path, signer, log_key)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Witness:
        path = Path(directory)
        state_file = path / _STATE
        if not state_file.exists():
            raise ConfigError(
                f"no witness in {path}", hint="create one with `mltrail witness --init`"
            )
        state = json.loads(state_file.read_text())
        return cls(path, load_signer(path / _KEY), str(state["log_key"]))

    @property
    def cosigner_key(self) -> str:
        """The verifier key of this witness's cosignatures (tlog-cosignature)."""
        return cosigner_verifier_key(self.signer)

    def trusted_note(self) -> str | None:
        """The last checkpoint this witness accepted, with its cosignature, if any."""
        note = self.directory / _NOTE
        return note.read_text() if note.exists() else None

    def trusted(self) -> Checkpoint | None:
        note = self.trusted_note()
        return None if note is None else Checkpoint.from_text(open_note(note, [self.log_key]))

    def accept(self, note: str, proof: Sequence[bytes], *, now: int | None = None) -> Checkpoint:
        """Verify ``note`` extends the remembered checkpoint, then cosign and remember it.

        Raises:
            VerificationError: bad signature, a smaller tree (rollback), a different tree
                of the same size or an invalid consistency proof (fork).
        """
        checkpoint = Checkpoint.from_text(open_note(note, [self.log_key]))
        previous = self.trusted()
        if previous is not None:
            _check_extends(previous, checkpoint, proof)
        text, _ = split_note(note)
        line = cosign(text, self.signer, timestamp=int(time.time()) if now is None else now)
        _write_atomic(self.directory / _NOTE, note.rstrip("\n") + "\n" + line)
        return checkpoint


def _check_extends(old: Checkpoint, new: Checkpoint, proof: Sequence[bytes]) -> None:
    if new.origin != old.origin:
        raise VerificationError(
            f"checkpoint origin {new.origin!r} is not the witnessed log {old.origin!r}"
        )
    if new.size < old.size:
        raise VerificationError(
            f"checkpoint size {new.size} is smaller than trusted size {old.size}; "
            "refusing possible rollback",
            hint="the registry's log was rolled back or replaced by an older copy; investigate",
        )
    if new.size == old.size:
        if new.root_hash != old.root_hash:
            raise VerificationError(
                f"checkpoint at size {new.size} has a different root than the trusted one: "
                "the log forked",
                hint="two different histories were signed by the same key; investigate",
            )
        return
    try:
        merkle.verify_consistency(old.size, new.size, proof, old.root_hash, new.root_hash)
    except VerificationError as exc:
        raise VerificationError(
            f"checkpoint of size {new.size} is not consistent with trusted size {old.size}: "
            f"{exc.message}",
            hint="history before the trusted checkpoint was rewritten; investigate",
        ) from exc


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
