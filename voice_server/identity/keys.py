"""The deployment's signing key: 32 random bytes in ``<data-dir>/signing.key``, mode 0600.

Created on first use and shared by every process of one deployment (server, transcriber, CLI).
The key never appears in logs; only its id (a short hash) may be shown.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger(__name__)

KEY_FILE = "signing.key"
KEY_BYTES = 32


class KeyFileError(Exception):
    """The key file exists but cannot be used."""


def key_id(key: bytes) -> str:
    """A short, non-secret identifier of a key (for logs and the ``kid`` header)."""
    return hashlib.sha256(b"voice-server key id" + key).hexdigest()[:12]


def load_or_create_key(data_dir: Path) -> bytes:
    """Return the deployment key, creating it atomically (O_EXCL, 0600) when missing."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)
    key = secrets.token_bytes(KEY_BYTES)
    try:
        os.write(fd, key.hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    log.info("created signing key", extra={"key_id": key_id(key), "path": str(path)})
    return key


def _read_key(path: Path) -> bytes:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        # Readable by others: tighten it rather than refuse, and say so.
        os.chmod(path, 0o600)
        log.warning(
            "signing key was readable by others; mode set to 0600", extra={"path": str(path)}
        )
    text = path.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise KeyFileError(f"signing key {path} is not hex") from None
    if len(key) < KEY_BYTES:
        raise KeyFileError(f"signing key {path} is shorter than {KEY_BYTES} bytes")
    return key
