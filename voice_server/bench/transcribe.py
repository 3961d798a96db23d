"""``voice-server bench transcribe`` (placeholder replaced below)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(bsub: Any) -> None:
    p = bsub.add_parser("transcribe", help="transcription pipeline benchmark")
    p.add_argument("--json", type=str, default=None)


def main(args: argparse.Namespace) -> int:
    return 0
