"""``voice-server models fetch NAME``: download a catalogue model into ``models/`` safely.

Streams the archive to ``NAME.zip.part`` while hashing it, checks the SHA-256 against the one
recorded at the first fetch (``checksums.json``; recorded now if there is none), unpacks into a
temporary directory refusing any member that would land outside it, then renames into place.
Without internet the command fails with one line that says what to do instead.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from voice_server.transcribe.catalogue import DEFAULT_BASE_URL, find, is_model_dir

__all__ = ["FetchError", "fetch_model"]

CHECKSUMS = "checksums.json"
CHUNK = 1 << 20


class FetchError(Exception):
    """One line for the user."""


def _load_sums(models_dir: Path) -> dict[str, str]:
    try:
        data = json.loads((models_dir / CHECKSUMS).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def fetch_model(
    name: str, models_dir: Path, *, base_url: str = DEFAULT_BASE_URL, timeout: float = 30.0
) -> Path:
    entry = find(name)
    if entry is None:
        raise FetchError(f"unknown model {name!r}: see `voice-server models list`")
    target = models_dir / name
    if is_model_dir(target):
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    url = entry.url(base_url)
    part = models_dir / f"{name}.zip.part"
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, part.open("wb") as out:
            while chunk := resp.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        part.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise FetchError(
            f"cannot download {name} from {url}: {reason} (no internet here? download "
            f"{entry.name}.zip elsewhere and unpack it into {models_dir}/)"
        ) from None
    sums = _load_sums(models_dir)
    sha = digest.hexdigest()
    known = sums.get(name)
    if known is not None and known != sha:
        part.unlink(missing_ok=True)
        raise FetchError(f"checksum mismatch for {name}: expected {known}, got {sha}")
    tmp = models_dir / f".{name}.unpack"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _unpack(part, tmp)
        inner = tmp / name if (tmp / name).is_dir() else tmp
        if not is_model_dir(inner):
            raise FetchError(f"{name}: the archive holds no Vosk model (am/ and conf/)")
        inner.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        part.unlink(missing_ok=True)
    if known is None:
        sums[name] = sha
        (models_dir / CHECKSUMS).write_text(json.dumps(sums, indent=2, sort_keys=True) + "\n")
    return target


def _unpack(archive: Path, dest: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            root = dest.resolve()
            for member in zf.infolist():
                out = (dest / member.filename).resolve()
                if not out.is_relative_to(root):
                    raise FetchError(f"archive member escapes the target: {member.filename!r}")
            zf.extractall(dest)
    except zipfile.BadZipFile:
        raise FetchError(f"{archive.name} is not a zip archive") from None
