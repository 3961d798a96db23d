"""A Python start-up hook that refuses every package a fresh ``make run`` does not install.

``make run`` installs ``[project.dependencies]`` and the ``model-ko`` extra only; the tests run in
a richer environment (pytest, httpx, playwright...). :func:`blocked_modules` lists the top-level
modules of every installed distribution outside that closure; :func:`hook_dir` writes a
``sitecustomize.py`` that makes importing one of them fail as if it were not installed. Put the
directory on ``PYTHONPATH`` and every Python process started below it (the server, the
transcriber it supervises) runs with runtime dependencies only.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import re
from pathlib import Path

from packaging.requirements import Requirement

RUNTIME_EXTRAS = ("model-ko", "tts")  # what `make run` installs besides the dependencies
# in every virtual environment `python -m venv` makes, so present for `make run` too
ALWAYS = {"pip", "setuptools", "wheel", "voice-server"}

HOOK = """\
import importlib.abc, json, os, sys

_BLOCKED = frozenset(json.loads(os.environ["VOICE_TEST_BLOCKED_MODULES"]))


class _RuntimeOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(
                f"No module named {name!r} (not a runtime dependency)", name=name
            )
        return None


sys.meta_path.insert(0, _RuntimeOnly())
"""


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_closure() -> set[str]:
    """Normalised names of the distributions ``make run`` installs (transitively)."""
    names: set[str] = set()
    done: set[tuple[str, str]] = set()  # (distribution, extra or "")
    todo: list[tuple[str, str]] = [("voice-server", "")]
    todo += [("voice-server", e) for e in RUNTIME_EXTRAS]
    while todo:
        name, extra = todo.pop()
        if (_norm(name), extra) in done:
            continue
        done.add((_norm(name), extra))
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        names.add(_norm(name))
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker is not None and not req.marker.evaluate({"extra": extra}):
                continue
            if req.marker is None and extra:
                continue  # a base requirement: taken with extra ""
            todo.append((req.name, ""))
            todo += [(req.name, e) for e in req.extras]
    return names | ALWAYS


def blocked_modules() -> list[str]:
    allowed = runtime_closure()
    owners: dict[str, set[str]] = {}
    for module, dists in md.packages_distributions().items():
        owners.setdefault(module, set()).update(_norm(d) for d in dists)
    blocked = [m for m, dists in owners.items() if not dists & allowed]
    return sorted(m for m in blocked if m.isidentifier())


def hook_dir(directory: Path) -> dict[str, str]:
    """Write the hook into ``directory``; the environment variables that switch it on."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(HOOK)
    return {"VOICE_TEST_BLOCKED_MODULES": json.dumps(blocked_modules())}
