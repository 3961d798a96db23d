"""Generated Japanese material for tests and benchmarks: what municipal staff say on the radio.

Deterministic: ``sentences(n, seed)`` gives the same sentences every time. Each comes with its
reference text in the recognizer's orthography (Arabic numerals, 避難所A, no punctuation) and
its content words. :func:`phrase_list` makes a fixed list of at most 50 terms (places, names,
keywords) holding at most half of each sentence's content words, the way a city would write
one without knowing what will be said.

Speech for a sentence comes from :mod:`voice_server.tts.openjtalk` (synthetic voice "Mei":
clear, one speaker, no noise — an easy case; see README on measuring real recordings).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["FIXED_SEED", "Sentence", "phrase_list", "sentences"]

FIXED_SEED = 20_260_117

PLACES = ["避難所A", "避難所B", "避難所C", "第二庁舎", "市民体育館", "中央公民館", "東小学校"]
FACILITIES = ["市民体育館", "中央公民館", "東小学校", "北図書館", "南消防署", "第二庁舎"]
COUNTERS = ["市民課の窓口", "福祉課の窓口", "1階の総合案内"]
NAMES = ["田中", "山本", "佐藤", "鈴木", "高橋", "渡辺"]
TIMES = ["午後2時30分", "午前9時", "午後5時", "午前10時15分", "午後3時", "午前8時"]
ROADS = ["県道12号線", "駅前の道路", "川沿いの市道"]
ITEMS = [("毛布", "枚"), ("飲料水", "本"), ("弁当", "個"), ("マスク", "箱")]

# (template, content words of the template itself); slots: {place} {facility} {counter} {name}
# {time} {road} {item} {n}{unit}
TEMPLATES: list[tuple[str, tuple[str, ...]]] = [
    ("{place}で水漏れが発生しています", ("水漏れ", "発生")),
    ("救急車を{time}に手配しました", ("救急車", "手配")),
    ("{name}さん{item}をあと{n}{unit}お願いします", ()),
    ("{place}の受付は{time}までです", ("受付",)),
    ("給水車は{facility}の前に到着しました", ("給水車", "到着")),
    ("{road}が冠水しているので通行止めにしてください", ("冠水", "通行止め")),
    ("{name}さんは{place}に戻ってください", ()),
    ("停電のため{facility}で非常用発電機を起動しました", ("停電", "非常用発電機", "起動")),
    ("{facility}に土のうを{n}袋運んでください", ("土のう",)),
    ("{place}で高齢者の安否確認が終わりました", ("高齢者", "安否確認")),
    ("{time}から災害対策本部会議を開きます", ("災害対策本部",)),
    ("{counter}に住民の方が{n}人来ています", ("住民",)),
]


@dataclass(frozen=True, slots=True)
class Sentence:
    text: str  # what is spoken (and the reference: CER drops punctuation anyway)
    content: tuple[str, ...]  # content words, for the phrase list's at-most-half rule

    @property
    def reference(self) -> str:
        return self.text


def _one(rng: random.Random, template: str, fixed: tuple[str, ...]) -> Sentence:
    item, unit = rng.choice(ITEMS)
    slots = {
        "place": rng.choice(PLACES),
        "facility": rng.choice(FACILITIES),
        "counter": rng.choice(COUNTERS),
        "name": rng.choice(NAMES),
        "time": rng.choice(TIMES),
        "road": rng.choice(ROADS),
        "item": item,
        "unit": unit,
        "n": str(rng.randint(2, 30)),
    }
    text = template.format(**slots)
    used = [v for k, v in slots.items() if "{" + k + "}" in template and k not in ("n", "unit")]
    return Sentence(text, tuple(dict.fromkeys([*used, *fixed])))


def sentences(n: int, seed: int = FIXED_SEED) -> list[Sentence]:
    """``n`` sentences, every template in turn, slots drawn from a seeded generator."""
    rng = random.Random(seed)
    out: list[Sentence] = []
    seen: set[str] = set()
    i = 0
    while len(out) < n:
        s = _one(rng, *TEMPLATES[i % len(TEMPLATES)])
        i += 1
        if s.text not in seen:
            seen.add(s.text)
            out.append(s)
    return out


def _covered(s: Sentence, terms: set[str]) -> int:
    return sum(1 for w in s.content if w in terms)


def phrase_list(material: Sequence[Sentence], limit: int = 50) -> list[str]:
    """At most ``limit`` terms, each sentence having at most half of its content words in it:
    the deployment's names and places first, then keywords, each added only while every
    sentence stays within its half."""
    candidates = [*PLACES, *FACILITIES, *NAMES, *ROADS]
    for s in material:
        candidates.extend(w for w in s.content if w not in candidates)
    chosen: set[str] = set()
    out: list[str] = []
    for term in dict.fromkeys(candidates):
        if len(out) >= limit:
            break
        trial = chosen | {term}
        if all(_covered(s, trial) * 2 <= len(s.content) for s in material):
            chosen = trial
            out.append(term)
    return out
