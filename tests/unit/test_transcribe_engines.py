"""Engines without loading a model: the choice of engine and model folder, `models install`,
Whisper's hallucination guards, the Japanese CER, the generated sentences, the config and the
supervisor's flags, and that no engine library is imported to build the CLI."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from voice_server.bench.japanese import phrase_list, sentences
from voice_server.config import Config, ConfigError, load_config
from voice_server.transcribe.engines import EngineError, choose_model
from voice_server.transcribe.engines.folders import (
    InstallError,
    folder_kind,
    folder_sha256,
    install_model,
)
from voice_server.transcribe.engines.guards import (
    NO_SPEECH,
    PROMPT_ECHO,
    SegmentInfo,
    is_prompt_echo,
    keep_segment,
    trim_echo_tail,
    verdict,
)
from voice_server.transcribe.errorrate import char_score
from voice_server.transcribe.supervise import TranscriberSupervisor

ROOT = Path(__file__).resolve().parents[2]


def whisper_dir(path: Path, content: bytes = b"weights") -> Path:
    path.mkdir(parents=True)
    (path / "model.bin").write_bytes(content)
    (path / "config.json").write_text("{}")
    (path / "tokenizer.json").write_text("{}")
    (path / "vocabulary.txt").write_text("a\n")
    return path


def vosk_dir(path: Path) -> Path:
    (path / "am").mkdir(parents=True)
    (path / "conf").mkdir()
    (path / "am" / "final.mdl").write_bytes(b"m")
    (path / "conf" / "mfcc.conf").write_text("--sample-frequency=16000\n")
    return path


def test_folder_kinds_and_a_digest_that_ignores_where_the_folder_is(tmp_path: Path) -> None:
    w = whisper_dir(tmp_path / "w")
    v = vosk_dir(tmp_path / "v")
    assert folder_kind(w) == "whisper" and folder_kind(v) == "vosk"
    assert folder_kind(tmp_path) is None and folder_kind(tmp_path / "missing") is None
    (w / "vocabulary.txt").unlink()
    assert folder_kind(w) is None
    (w / "vocabulary.json").write_text("[]")
    assert folder_kind(w) == "whisper"
    copy = whisper_dir(tmp_path / "elsewhere" / "x")
    (copy / "vocabulary.txt").unlink()
    (copy / "vocabulary.json").write_text("[]")
    assert folder_sha256(copy) == folder_sha256(w)
    (copy / "model.bin").write_bytes(b"other")
    assert folder_sha256(copy) != folder_sha256(w)


def test_install_takes_folders_zip_and_tar_records_and_checks_the_sha256(tmp_path: Path) -> None:
    models = tmp_path / "models"
    src = whisper_dir(tmp_path / "src" / "my-whisper")
    path, kind, sha = install_model(src, models)
    assert (path, kind) == (models / "my-whisper", "whisper") and folder_sha256(path) == sha
    assert json.loads((models / "checksums.json").read_text()) == {"my-whisper": sha}
    assert install_model(src, models) == (path, kind, sha)  # again: same content, no change
    # a different model under a recorded name is refused
    other = whisper_dir(tmp_path / "other" / "my-whisper", b"changed")
    with pytest.raises(InstallError, match="checksum mismatch"):
        install_model(other, models)
    # zip (wrapped in a folder) and tar.gz
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("vosk-model-x/am/final.mdl", b"m")
        zf.writestr("vosk-model-x/conf/mfcc.conf", "x")
    (tmp_path / "vosk-model-x.zip").write_bytes(buf.getvalue())
    path, kind, _ = install_model(tmp_path / "vosk-model-x.zip", models)
    assert (path.name, kind) == ("vosk-model-x", "vosk")
    tgz = tmp_path / "w.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(whisper_dir(tmp_path / "t" / "tw"), arcname="tw")
    path, kind, _ = install_model(tgz, models, name="whisper-t")
    assert (path.name, kind) == ("whisper-t", "whisper")
    # the catalogue's checksum is checked
    with pytest.raises(InstallError, match="checksum mismatch"):
        install_model(src, models, name="whisper-base", expected="0" * 64)
    assert not (models / "whisper-base").exists()
    # not a model, an escaping archive, nothing there
    (tmp_path / "empty").mkdir()
    with pytest.raises(InstallError, match="not a model"):
        install_model(tmp_path / "empty", models)
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escape/model.bin", b"x")
    (tmp_path / "evil.zip").write_bytes(evil.getvalue())
    with pytest.raises(InstallError, match="escapes"):
        install_model(tmp_path / "evil.zip", models)
    with pytest.raises(InstallError, match="no such"):
        install_model(tmp_path / "nothing", models)
    assert not [p for p in models.iterdir() if p.name.startswith(".")]


def test_a_folder_that_does_not_match_its_engine_is_refused_in_one_line(tmp_path: Path) -> None:
    w = whisper_dir(tmp_path / "w")
    v = vosk_dir(tmp_path / "v")
    with pytest.raises(EngineError, match="Vosk model, not a Whisper"):
        choose_model("whisper", str(v), tmp_path, None)
    with pytest.raises(EngineError, match="Whisper model, not a Vosk"):
        choose_model("vosk", str(w), tmp_path, None)
    with pytest.raises(EngineError, match="unknown engine"):
        choose_model("kaldi", None, tmp_path, None)
    c = choose_model("whisper", str(w), tmp_path, None)
    assert (c.engine, c.language, c.path) == ("whisper", "ja", w)
    assert choose_model("whisper", "w", tmp_path, "en").language == "en"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voice_server.cli", *args], capture_output=True, text=True, cwd=ROOT
    )


def test_cli_unknown_engine_or_mismatched_folder_is_one_line_and_a_nonzero_exit(
    tmp_path: Path,
) -> None:
    r = cli("asr-eval", "--engine", "kaldi", "--refs", "x.tsv")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "unknown engine" in r.stderr
    v = vosk_dir(tmp_path / "v")
    r = cli("asr-eval", "--engine", "whisper", "--model", str(v), "--refs", "x.tsv")
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0 and "not a Whisper" in r.stderr
    broken = whisper_dir(tmp_path / "broken")  # a folder of the right shape, junk weights
    r = cli("asr-eval", "--engine", "whisper", "--model", str(broken), "--refs", "x.tsv")
    assert r.returncode == 1 and "cannot load" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 2  # the model line, then the error
    r = cli("models", "install", str(tmp_path / "nope"), "--models-dir", str(tmp_path / "m"))
    assert r.returncode == 1 and "no such" in r.stderr
    r = cli("models", "fetch", "kotoba-whisper-v2.0-faster", "--models-dir", str(tmp_path))
    assert r.returncode == 1 and "models install" in r.stderr
    r = cli("models", "list", "--models-dir", str(tmp_path))
    assert r.returncode == 0 and "whisper-base" in r.stdout and "sha256" in r.stdout


_PROBE = """
import sys
from voice_server.cli import build_parser
build_parser()
import voice_server.server, voice_server.transcribe.sidecar, voice_server.transcribe.commands
import voice_server.transcribe.engines, voice_server.tts.openjtalk, voice_server.bench.japanese
print(sorted(m for m in ("faster_whisper", "ctranslate2", "pyopenjtalk", "numpy", "onnxruntime")
             if m in sys.modules))
"""


def test_no_engine_library_is_imported_by_the_server_or_the_cli_parser() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]", out.stdout


def seg(text: str, nsp: float = 0.1, lp: float = -0.3, cr: float = 1.2) -> SegmentInfo:
    return SegmentInfo(text, nsp, lp, cr)


def test_guards_drop_loops_no_speech_and_english_on_japanese() -> None:
    assert keep_segment(seg("避難所Aで水漏れが発生しています。"), "ja", 0.6)
    assert not keep_segment(seg("給水車、" * 40, cr=14.8), "ja", 0.6)
    assert not keep_segment(seg("はい", nsp=0.7, lp=-1.2), "ja", 0.6)
    assert not keep_segment(seg("はい", nsp=0.9, lp=-0.1), "ja", 0.6)
    assert not keep_segment(seg(" Thank you for watching."), "ja", 0.6)
    assert keep_segment(seg(" Thank you for watching."), "en", 0.6)
    assert keep_segment(seg("OK"), "ja", 0.6)  # one Latin word may be speech
    assert not keep_segment(seg(" 。"), "ja", 0.6)


def test_a_result_that_is_the_phrase_list_read_back_is_a_prompt_echo() -> None:
    phrases = ["避難所A", "水漏れ", "救急車", "給水車"]
    assert verdict("", phrases) == NO_SPEECH
    assert verdict("ご視聴ありがとうございました。", phrases) == NO_SPEECH
    assert verdict("避難所A、水漏れ、救急車", phrases) == PROMPT_ECHO
    assert verdict("水漏れ 救急車", phrases) == PROMPT_ECHO
    assert verdict("漏れ、救急車、給", phrases) == PROMPT_ECHO  # in the list, longer than a phrase
    assert verdict("機能所A、水漏れ、救急車", phrases) == PROMPT_ECHO  # misspelt echo
    assert verdict("救急車", phrases) == ""  # one listed phrase alone is speech
    assert verdict("救急車を手配しました", phrases) == ""
    assert verdict("避難所Aで水漏れが発生しています", phrases) == ""
    assert verdict("避難所A、水漏れ", []) == ""
    assert not is_prompt_echo("水漏れです", phrases)


def test_phrases_read_back_after_the_speech_are_cut_and_a_closing_place_name_is_kept() -> None:
    phrases = ["東小学校", "避難所C", "救急車"]
    said = "市民課の窓口に住民の方が30人来ています"
    assert trim_echo_tail(said + "東小学校、東小学校、東小学校、", phrases) == said
    assert trim_echo_tail(said + "。避難所C、救急車。", phrases) == said + "。"
    assert trim_echo_tail("山本さんは避難所Cに戻ってください", phrases) == (
        "山本さんは避難所Cに戻ってください"
    )
    assert trim_echo_tail("救急車は東小学校", phrases) == "救急車は東小学校"  # one at the end
    assert trim_echo_tail("東小学校、東小学校", phrases) == "東小学校、東小学校"  # whole: echo's
    assert trim_echo_tail(said, []) == said


def test_japanese_cer_ignores_punctuation_spaces_and_width() -> None:
    assert char_score("避難所Aで水漏れ", "避難所Ａで、水漏れ。").cer == 0.0
    s = char_score("救急車を午後2時30分に", "救急車を552時30分に")
    assert (s.char_errors, s.chars) == (2, 12)


def test_generated_sentences_are_fixed_unique_and_the_phrase_list_holds_at_most_half() -> None:
    a, b = sentences(30), sentences(30)
    assert a == b and len({s.text for s in a}) == 30
    assert any("水漏れ" in s.text for s in a) and any("避難所A" in s.text for s in a)
    assert any("午後2時30分" in s.text for s in sentences(60))
    terms = phrase_list(a)
    assert 10 <= len(terms) <= 50
    for s in a:
        assert sum(w in terms for w in s.content) * 2 <= len(s.content), s


def test_config_and_supervisor_carry_the_engine_and_language(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VOICE_ASR_ENGINE", raising=False)
    assert load_config(None).asr_engine == "vosk"
    with pytest.raises(ConfigError, match="asr_engine"):
        load_config(None, asr_engine="kaldi")
    config = Config(transcriber=True, asr_engine="whisper", asr_language="ja")
    sup = TranscriberSupervisor.from_config(config)
    assert sup is not None
    argv = sup.argv
    assert argv[argv.index("--engine") + 1] == "whisper"
    assert argv[argv.index("--language") + 1] == "ja"
