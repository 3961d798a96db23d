"""Model catalogue, choice and fetch (against a local HTTP server serving an archive made here),
link protocol frames, derived keys."""

from __future__ import annotations

import functools
import http.server
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from voice_server.identity.derived import CLIP_PURPOSE, LINK_PURPOSE, derive_key
from voice_server.transcribe.catalogue import CATALOGUE, ModelNotFound, language_of, resolve
from voice_server.transcribe.fetch import FetchError, fetch_model
from voice_server.transcribe.protocol import LinkError, pack_packets, unpack_packets

NAME = "vosk-model-small-ja-0.22"


def archive(name: str, *, evil: bool = False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{name}/am/final.mdl", b"model")
        zf.writestr(f"{name}/conf/mfcc.conf", "--sample-frequency=16000\n")
        if evil:
            zf.writestr("../escape.txt", b"x")
    return buf.getvalue()


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "mirror"
    root.mkdir()
    (root / f"{NAME}.zip").write_bytes(archive(NAME))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", root
    finally:
        server.shutdown()
        server.server_close()


def test_catalogue_lists_japanese_small_and_large_first() -> None:
    assert [e.language for e in CATALOGUE[:2]] == ["ja", "ja"]
    assert {"en", "ko"} <= {e.language for e in CATALOGUE}
    assert all(e.url().endswith(f"{e.name}.zip") and e.size_mb > 0 for e in CATALOGUE)
    assert language_of("vosk-model-small-en-us-0.15") == "en"


def test_fetch_unpacks_records_the_checksum_and_then_verifies_it(
    mirror: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = mirror
    models = tmp_path / "models"
    path = fetch_model(NAME, models, base_url=url)
    assert (path / "am" / "final.mdl").read_bytes() == b"model"
    sums = json.loads((models / "checksums.json").read_text())
    assert len(sums[NAME]) == 64
    choice = resolve(None, models)
    assert choice.name == NAME and choice.language == "ja"
    # a tampered archive on the mirror is refused
    import shutil

    shutil.rmtree(path)
    (root / f"{NAME}.zip").write_bytes(archive(NAME) + b"tampered")
    with pytest.raises(FetchError, match="checksum mismatch"):
        fetch_model(NAME, models, base_url=url)
    assert not path.exists() and not list(models.glob("*.part"))


def test_fetch_refuses_archives_escaping_the_target_and_unknown_names(
    mirror: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = mirror
    (root / f"{NAME}.zip").write_bytes(archive(NAME, evil=True))
    with pytest.raises(FetchError, match="escapes"):
        fetch_model(NAME, tmp_path / "m", base_url=url)
    with pytest.raises(FetchError, match="unknown model"):
        fetch_model("nope", tmp_path / "m", base_url=url)


def test_without_network_fetch_fails_with_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(FetchError) as err:
        fetch_model(NAME, tmp_path / "m", base_url="http://127.0.0.1:9/", timeout=2)
    text = str(err.value)
    assert "cannot download" in text and "\n" not in text and "unpack it into" in text


def test_model_choice_explains_what_to_do_when_there_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("voice_server.transcribe.catalogue.packaged_korean", lambda: None)
    with pytest.raises(ModelNotFound, match="models fetch"):
        resolve(None, tmp_path)
    with pytest.raises(ModelNotFound):
        resolve("missing-model", tmp_path)


def test_link_packet_frames_round_trip_and_truncation_is_refused() -> None:
    records = [(1, b"\x80" * 30), (70000, b"x" * 200), (2, b"")]
    frame = pack_packets(records)
    assert unpack_packets(frame) == records
    with pytest.raises(LinkError):
        unpack_packets(frame[:-1])


def test_derived_keys_differ_by_purpose_and_from_the_key() -> None:
    key = b"k" * 32
    assert derive_key(key, LINK_PURPOSE) != derive_key(key, CLIP_PURPOSE)
    assert key not in (derive_key(key, LINK_PURPOSE), derive_key(key, CLIP_PURPOSE))


def test_the_dither_free_view_of_a_model_changes_only_its_mfcc_config(tmp_path: Path) -> None:
    from voice_server.transcribe.recognizer import without_dither

    model = tmp_path / "m"
    (model / "conf").mkdir(parents=True)
    (model / "am").mkdir()
    (model / "am" / "final.mdl").write_bytes(b"model")
    (model / "conf" / "mfcc.conf").write_text("--use-energy=false\n--dither=1.0")
    (model / "conf" / "model.conf").write_text("--beam=10.0\n")
    out = tmp_path / "view"
    out.mkdir()
    view = without_dither(model, out)
    assert view is not None
    assert (view / "conf" / "mfcc.conf").read_text() == "--use-energy=false\n--dither=0.0\n"
    assert (view / "am").is_symlink() and (view / "am" / "final.mdl").read_bytes() == b"model"
    assert (view / "conf" / "model.conf").is_symlink()
    assert (model / "conf" / "mfcc.conf").read_text().endswith("--dither=1.0")  # untouched
    flat = tmp_path / "flat"  # the old layout: configs at the top
    flat.mkdir()
    (flat / "mfcc.conf").write_text("--sample-frequency=8000\n")
    (flat / "final.mdl").write_bytes(b"m")
    out2 = tmp_path / "view2"
    out2.mkdir()
    view2 = without_dither(flat, out2)
    assert view2 is not None and (view2 / "final.mdl").is_symlink()
    assert (view2 / "mfcc.conf").read_text() == "--sample-frequency=8000\n--dither=0.0\n"
    bare = tmp_path / "bare"
    bare.mkdir()
    assert without_dither(bare, out2) is None


def test_the_fixed_dither_depends_on_the_sample_position_only_and_clips() -> None:
    from array import array

    from voice_server.transcribe.recognizer import DITHER_SAMPLES, dithered

    silence = bytes(2 * 3200)
    a = dithered(silence, 0)
    assert a == dithered(silence, 0) and a != silence
    assert dithered(silence, 1600)[: 2 * 1600] == a[2 * 1600 :]  # same sample, same noise
    assert dithered(silence, DITHER_SAMPLES) == a
    noise = array("h")
    noise.frombytes(a)
    assert max(abs(x) for x in noise) <= 6 and 0.5 < sum(x * x for x in noise) / len(noise) < 2
    loud = array("h", [32767, -32768] * 1600).tobytes()
    out = array("h")
    out.frombytes(dithered(loud, 0))
    assert len(out) == 3200 and max(out) == 32767 and min(out) == -32768
