"""Synthetic Japanese call-log utterances for the search benchmark and tests (pure).

Field-radio sentences over 50 channels (10 speakers each) and a year, with Vosk-like spaces
between words, generated deterministically from a seed. The query terms of the benchmark come in
three lengths (1, 2 and 3+ characters) and three frequencies each:

- common: part of everyday phrases (門 7.5 %, 確認 10 %, お願いします 13 % of utterances);
- rare: injected into about 1 in 10,000 utterances; their characters occur nowhere else;
- none: characters the generator never writes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from voice_server.calllog.model import Utterance, new_burst_id

__all__ = ["CHANNELS", "SPEAKERS_PER_CHANNEL", "TERMS", "Corpus", "channel_name", "speaker_id"]

CHANNELS = 50
SPEAKERS_PER_CHANNEL = 10
YEAR_MS = 365 * 86_400_000
RARE_RATE = 1e-4

# length class → frequency → term
TERMS: dict[str, dict[str, str]] = {
    "1": {"common": "門", "rare": "霧", "none": "鬱"},
    "2": {"common": "確認", "rare": "竜巻", "none": "雪崩"},
    "3+": {"common": "お願いします", "rare": "ガス漏れ", "none": "土砂崩れ"},
}

PLACES = [
    "東 門", "西 門", "南 口", "北 口", "正面 玄関", "体育 館", "第 二 駐車 場", "受付",
    "三 階 会議 室", "給湯 室", "屋上", "地下 倉庫", "避難 所", "図書 室", "中庭", "売店",
    "通用 口", "機械 室", "一 階 ロビー", "保健 室",
]  # fmt: skip
EVENTS = [
    "水たまり", "停電", "火災 報知 器", "不審 物", "落とし物", "急病 人", "渋滞", "混雑",
    "迷子", "故障", "点検", "清掃", "配達", "来客", "騒音", "段ボール", "車いす", "忘れ物",
]  # fmt: skip
ACTS = [
    "を 確認 お願い し ます", "に 向かい ます", "の 対応 中 です", "が 完了 し まし た",
    "を 了解 し まし た", "の 応援 お願い し ます", "について 報告 し ます", "を 見 て き ます",
    "は 異常 あり ませ ん", "の 件 で 連絡 し ます", "を 確認 し まし た", "を 片付け ます",
]  # fmt: skip
EXTRA = [
    "少し 待っ て ください", "今 どこ です か", "すぐ 行き ます", "ありがとう ござい ます",
    "こちら 受付 です", "了解 です", "もう 一 度 お願い し ます", "聞こえ ます か", "はい",
    "いいえ", "お疲れ様 です", "交代 の 時間 です",
]  # fmt: skip
RARE_PREFIX = ["霧 が 出 て い ます", "竜巻 注意 報 です", "ガス 漏れ の 疑い"]


def channel_name(index: int) -> str:
    return f"ch{index:02d}"


def speaker_id(index: int) -> str:
    return f"s{index:03d}"


def _text(rng: random.Random, rare_rate: float) -> str:
    r = rng.random()
    if r < 0.6:
        text = f"{rng.choice(PLACES)} で {rng.choice(EVENTS)} {rng.choice(ACTS)}"
    elif r < 0.85:
        text = rng.choice(EXTRA)
    else:
        text = f"{rng.choice(PLACES)} の {rng.choice(EVENTS)} は {rng.choice(EXTRA)}"
    for prefix in RARE_PREFIX:
        if rng.random() < rare_rate:
            text = f"{prefix} {text}"
    return text


@dataclass(frozen=True, slots=True)
class Corpus:
    """``rows`` utterances evenly spread (with jitter) over the year before ``end_ms``."""

    rows: int
    end_ms: int
    seed: int = 1
    rare_rate: float = RARE_RATE

    @property
    def start_ms(self) -> int:
        return self.end_ms - YEAR_MS

    def utterances(self) -> Iterator[Utterance]:
        rng = random.Random(self.seed)
        step = max(YEAR_MS // max(self.rows, 1), 1)
        for i in range(self.rows):
            start = self.start_ms + i * step + rng.randrange(step)
            channel = rng.randrange(CHANNELS)
            speaker = channel * SPEAKERS_PER_CHANNEL + rng.randrange(SPEAKERS_PER_CHANNEL)
            yield Utterance(
                id=new_burst_id(start),
                channel=channel_name(channel),
                speaker_id=speaker_id(speaker),
                speaker_name=f"職員{speaker:03d}",
                start_ms=start,
                end_ms=start + 1500 + rng.randrange(3000),
                text=_text(rng, self.rare_rate),
                model="bench",
                language="ja",
            )
