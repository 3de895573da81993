"""Model ids through a loopback hub (tests/python/hub_server.py), into the huggingface_hub
cache layout: downloads, the cache, offline use, revisions, tokens and failures."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import model_dir
from hub_server import HubServer, copy_model

from crossrank import CrossEncoder, hub

PAIRS = [("how many people live in berlin?", "Berlin has a population of 3.5 million."),
         ("how many people live in berlin?", "Paris is the capital of France.")]
MODEL_FILES = ["config.json", "model.safetensors", "special_tokens_map.json", "tokenizer.json",
               "tokenizer_config.json", "vocab.txt"]
HUB_ENV = ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_ENDPOINT", "HF_TOKEN",
           "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
           "SENTENCE_TRANSFORMERS_HOME", "HF_HUB_DISABLE_IMPLICIT_TOKEN", "XDG_CACHE_HOME")


def fixture(name: str) -> Path:
    path = model_dir(name)
    assert path is not None
    return path


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[HubServer]:
    """A running hub with ``org/bert`` on ``main``; HF_HOME in a fresh temp dir."""
    for key in HUB_ENV:
        monkeypatch.delenv(key, raising=False)
    with HubServer() as hub_server:
        hub_server.add_commit("org/bert", fixture("bert-st5-1label"))
        monkeypatch.setenv("HF_ENDPOINT", hub_server.url)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
        yield hub_server


def repo_cache(tmp_path: Path, repo_id: str = "org/bert") -> Path:
    return tmp_path / "hf" / "hub" / ("models--" + repo_id.replace("/", "--"))


def local_scores(name: str = "bert-st5-1label") -> np.ndarray:
    return CrossEncoder(str(fixture(name))).predict(PAIRS)


def test_download_then_load_matches_local_dir(server: HubServer, tmp_path: Path) -> None:
    model = CrossEncoder("org/bert")
    np.testing.assert_allclose(model.predict(PAIRS), local_scores(), rtol=1e-6)

    cache = repo_cache(tmp_path)
    commit = (cache / "refs" / "main").read_text()
    snapshot = cache / "snapshots" / commit
    # Only what the model needs (no README.md), as relative links into blobs/.
    assert sorted(os.listdir(snapshot)) == MODEL_FILES
    for name in MODEL_FILES:
        link = snapshot / name
        assert link.is_symlink()
        assert os.readlink(link).startswith("../../blobs/")
        assert link.read_bytes() == (fixture("bert-st5-1label") / name).read_bytes()
    # No ref named after the commit, no partial downloads.
    assert os.listdir(cache / "refs") == ["main"]
    assert not [p for p in (cache / "blobs").iterdir() if p.suffix in (".part", ".incomplete")]
    assert sorted(server.requested_files("org/bert")) == MODEL_FILES


def test_second_load_uses_the_cache_when_the_hub_is_gone(
    server: HubServer, caplog: pytest.LogCaptureFixture
) -> None:
    first = hub.resolve_model("org/bert")
    server.stop()
    with caplog.at_level(logging.WARNING, logger="crossrank.hub"):
        model = CrossEncoder("org/bert")
    assert Path(model._native.source) == first
    assert "cannot reach" in caplog.text and "cached copy" in caplog.text
    np.testing.assert_allclose(model.predict(PAIRS), local_scores(), rtol=1e-6)


def test_a_cached_model_is_not_downloaded_again(server: HubServer) -> None:
    hub.resolve_model("org/bert")
    server.requests.clear()
    hub.resolve_model("org/bert")
    assert [r.path for r in server.requests] == ["/api/models/org/bert/revision/main"]


def test_local_files_only(server: HubServer) -> None:
    with pytest.raises(OSError, match=r"not in the cache.*local_files_only=True"):
        CrossEncoder("org/bert", local_files_only=True)
    assert server.requests == []
    downloaded = hub.resolve_model("org/bert")
    server.requests.clear()
    model = CrossEncoder("org/bert", local_files_only=True)
    assert server.requests == []
    assert Path(model._native.source) == downloaded


def test_hf_hub_offline(server: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="HF_HUB_OFFLINE=1"):
        hub.resolve_model("org/bert")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    downloaded = hub.resolve_model("org/bert")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    server.requests.clear()
    assert hub.resolve_model("org/bert") == downloaded
    assert server.requests == []


def test_a_cache_written_by_huggingface_hub_is_read_offline(
    server: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # huggingface_hub without symlink support stores plain files in the snapshot.
    commit = "1234567890abcdef1234567890abcdef12345678"
    cache = repo_cache(tmp_path, "cross-encoder/st-made")
    copy_model(fixture("bert-st5-1label"), cache / "snapshots" / commit)
    (cache / "refs").mkdir()
    (cache / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = CrossEncoder("cross-encoder/st-made")
    np.testing.assert_allclose(model.predict(PAIRS), local_scores(), rtol=1e-6)
    assert server.requests == []


def test_cache_folder_and_sentence_transformers_home(
    server: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = hub.resolve_model("org/bert", cache_folder=tmp_path / "mine")
    assert path.is_relative_to(tmp_path / "mine" / "models--org--bert" / "snapshots")
    monkeypatch.setenv("SENTENCE_TRANSFORMERS_HOME", str(tmp_path / "st"))
    path = hub.resolve_model("org/bert")
    assert path.is_relative_to(tmp_path / "st" / "models--org--bert" / "snapshots")
    assert not (tmp_path / "hf").exists()


def test_revisions(server: HubServer, tmp_path: Path) -> None:
    v1 = server.add_commit("org/bert", fixture("bert-st6-3label"), "v1", "feature/x")
    model = CrossEncoder("org/bert", revision="v1")
    assert model.num_labels == 3
    np.testing.assert_allclose(model.predict(PAIRS), local_scores("bert-st6-3label"),
                               rtol=1e-6)
    cache = repo_cache(tmp_path)
    assert (cache / "refs" / "v1").read_text() == v1
    # A branch with a slash, and a commit hash (which needs no ref).
    assert hub.resolve_model("org/bert", revision="feature/x").name == v1
    assert (cache / "refs" / "feature" / "x").read_text() == v1
    assert hub.resolve_model("org/bert", revision=v1).name == v1
    assert not (cache / "refs" / v1).exists()
    # main is still the other commit.
    assert CrossEncoder("org/bert").num_labels == 1
    # Offline, the refs written above resolve.
    assert hub.resolve_model("org/bert", revision="v1", local_files_only=True).name == v1
    with pytest.raises(OSError, match='revision "nope" not found in "org/bert"'):
        hub.resolve_model("org/bert", revision="nope")


def test_unknown_repository(server: HubServer) -> None:
    with pytest.raises(OSError, match=r'"org/missing" is not a model repository.*HTTP 404'):
        CrossEncoder("org/missing")


def test_bare_name_falls_back_to_cross_encoder_org(server: HubServer, tmp_path: Path) -> None:
    # As sentence-transformers 6.x: cross-encoder/<name> first, then the bare name.
    server.add_commit("cross-encoder/tiny-bert", fixture("bert-st5-1label"))
    server.add_commit("tiny-bert", fixture("bert-st6-3label"))
    server.add_commit("plain-bert", fixture("bert-st6-3label"))
    model = CrossEncoder("tiny-bert")
    np.testing.assert_allclose(model.predict(PAIRS), local_scores(), rtol=1e-6)
    assert repo_cache(tmp_path, "cross-encoder/tiny-bert").is_dir()
    assert not repo_cache(tmp_path, "tiny-bert").exists()
    assert hub.resolve_model("tiny-bert", local_files_only=True).is_dir()
    assert CrossEncoder("plain-bert").num_labels == 3
    assert CrossEncoder("plain-bert", local_files_only=True).num_labels == 3
    with pytest.raises(OSError, match=r'"nothing" is not a model.*tried '
                                      '"cross-encoder/nothing", "nothing"'):
        hub.resolve_model("nothing")


def test_gated_model_needs_a_token(
    server: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server.gate("org/bert", "hf_secret")
    with pytest.raises(OSError, match=r"needs authentication.*HTTP 401.*HF_TOKEN"):
        CrossEncoder("org/bert")
    with pytest.raises(OSError, match=r"restricted.*HTTP 403"):
        hub.resolve_model("org/bert", token="hf_wrong")
    with pytest.raises(OSError, match="token=True, but no Hugging Face token"):
        hub.resolve_model("org/bert", token=True)
    assert not list(repo_cache(tmp_path).glob("snapshots/*/config.json"))

    server.requests.clear()
    model = CrossEncoder("org/bert", token="hf_secret")
    np.testing.assert_allclose(model.predict(PAIRS), local_scores(), rtol=1e-6)
    assert {r.headers.get("authorization") for r in server.requests
            if r.path.startswith("/org/bert/resolve/")} == {"Bearer hf_secret"}


def test_token_from_env_and_saved_token(
    server: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server.gate("org/bert", "hf_secret", private=True)
    with pytest.raises(OSError, match=r'"org/bert" is not a model repository.*HTTP 401'):
        hub.resolve_model("org/bert")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    with pytest.raises(OSError):
        hub.resolve_model("org/bert", token=False)
    hub.resolve_model("org/bert", cache_folder=tmp_path / "a")
    monkeypatch.delenv("HF_TOKEN")
    (tmp_path / "hf").mkdir(exist_ok=True)
    (tmp_path / "hf" / "token").write_text("hf_secret\n")
    assert hub.resolve_model("org/bert", token=True).is_dir()


def test_connection_dropped_mid_file(server: HubServer, tmp_path: Path) -> None:
    server.drop_mid_file.append("model.safetensors")
    with pytest.raises(OSError, match=r"model.safetensors.*failed.*resumes"):
        CrossEncoder("org/bert")
    cache = repo_cache(tmp_path)
    # The partial body is only an .incomplete blob (huggingface_hub's name for one): nothing
    # a load would use.
    assert [p.name for p in (cache / "blobs").glob("*.incomplete")]
    assert not list(cache.glob("snapshots/*/model.safetensors"))
    assert not (cache / "refs" / "main").exists()
    with pytest.raises(OSError, match="not in the cache"):
        CrossEncoder("org/bert", local_files_only=True)
    # The next try resumes and gets the right bytes.
    model = CrossEncoder("org/bert")
    np.testing.assert_allclose(model.predict(PAIRS), local_scores(), rtol=1e-6)
    assert not list((cache / "blobs").glob("*.incomplete"))


def test_an_interrupted_download_resumes_with_a_range_request(
    server: HubServer, tmp_path: Path
) -> None:
    server.drop_mid_file.append("model.safetensors")
    with pytest.raises(OSError, match="resumes"):
        hub.resolve_model("org/bert")
    (partial,) = (repo_cache(tmp_path) / "blobs").glob("*.incomplete")
    kept = partial.stat().st_size
    assert kept > 0
    server.requests.clear()
    path = hub.resolve_model("org/bert")
    weights = fixture("bert-st5-1label") / "model.safetensors"
    assert (path / "model.safetensors").read_bytes() == weights.read_bytes()
    # Only the missing bytes were asked for, through the hub's redirect to its CDN.
    ranges = {r.path.split("/", 2)[1]: r.headers.get("range") for r in server.requests
              if r.method == "GET" and r.path.endswith("/model.safetensors")}
    assert ranges == {"org": f"bytes={kept}-", "cdn": f"bytes={kept}-"}
    assert server.requested_files("org/bert") == ["model.safetensors"]


def test_offline_with_an_incomplete_snapshot(
    server: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = hub.resolve_model("org/bert")
    (path / "model.safetensors").unlink()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match=r"incomplete.*model.safetensors"):
        hub.resolve_model("org/bert")
    # Online, the missing file comes back (from its blob, still in the cache).
    monkeypatch.delenv("HF_HUB_OFFLINE")
    server.requests.clear()
    assert hub.resolve_model("org/bert") == path
    assert (path / "model.safetensors").is_file()
    assert server.requested_files("org/bert") == []
    # Without the blob, it is downloaded again.
    os.remove(os.path.realpath(path / "model.safetensors"))
    assert hub.resolve_model("org/bert") == path
    assert server.requested_files("org/bert") == ["model.safetensors"]


def test_only_the_best_weights_and_needed_files_are_fetched(
    server: HubServer, tmp_path: Path
) -> None:
    extra = {"pytorch_model.bin": b"not used", "onnx/model.onnx": b"not used",
             "tf_model.h5": b"not used", "modules.json": b"[]", "merges.txt": b"#"}
    repo = copy_model(fixture("bert-st5-1label"), tmp_path / "repo", extra)
    server.add_commit("org/many", repo)
    hub.resolve_model("org/many")
    assert sorted(server.requested_files("org/many")) == sorted(
        [*MODEL_FILES, "modules.json", "merges.txt"])


def test_sharded_weights(server: HubServer) -> None:
    server.add_commit("org/sharded", fixture("bert-sharded"))
    path = hub.resolve_model("org/sharded")
    assert sorted(p.name for p in path.glob("model-*.safetensors")) == [
        f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    local = CrossEncoder(str(fixture("bert-sharded"))).predict(PAIRS)
    np.testing.assert_allclose(CrossEncoder("org/sharded").predict(PAIRS), local, rtol=1e-6)


def test_new_commit_reuses_unchanged_blobs(server: HubServer, tmp_path: Path) -> None:
    first = hub.resolve_model("org/bert")
    repo = copy_model(fixture("bert-st5-1label"), tmp_path / "repo",
                      {"README.md": b"edited"})
    server.add_commit("org/bert", repo)
    server.requests.clear()
    second = hub.resolve_model("org/bert")
    assert second != first
    assert server.requested_files("org/bert") == []
    assert sorted(os.listdir(second)) == MODEL_FILES


def test_progress_bars_for_large_files(
    server: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    bars: list[dict[str, Any]] = []

    class Bar:
        def __init__(self, filename: str, total: int) -> None:
            self.state: dict[str, Any] = {"file": filename, "total": total, "n": 0,
                                          "closed": False}
            bars.append(self.state)

        def update(self, n: int) -> None:
            self.state["n"] += n

        def close(self) -> None:
            self.state["closed"] = True

    monkeypatch.setattr(hub, "PROGRESS_MIN_BYTES", 100_000)
    monkeypatch.setattr(hub, "_progress_bar", Bar)
    hub.resolve_model("org/bert")
    size = (fixture("bert-st5-1label") / "model.safetensors").stat().st_size
    assert bars == [{"file": "model.safetensors", "total": size, "n": size, "closed": True}]


def test_the_real_tqdm_bar(server: HubServer, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(hub, "PROGRESS_MIN_BYTES", 0)
    hub.resolve_model("org/bert")
    assert "model.safetensors" in capsys.readouterr().err


def test_an_exception_from_the_progress_bar_stops_the_download(
    server: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    class Broken:
        def __init__(self, filename: str, total: int) -> None:
            pass

        def update(self, n: int) -> None:
            raise KeyboardInterrupt

        def close(self) -> None:
            pass

    monkeypatch.setattr(hub, "PROGRESS_MIN_BYTES", 100_000)
    monkeypatch.setattr(hub, "_progress_bar", Broken)
    with pytest.raises(KeyboardInterrupt):
        hub.resolve_model("org/bert")
    assert not list(repo_cache(tmp_path).glob("snapshots/*/model.safetensors"))
    monkeypatch.setattr(hub, "PROGRESS_MIN_BYTES", 1 << 40)
    assert (hub.resolve_model("org/bert") / "model.safetensors").is_file()


def test_paths_and_invalid_ids(server: HubServer, tmp_path: Path) -> None:
    assert hub.resolve_model(str(fixture("bert-st5-1label"))) == fixture("bert-st5-1label")
    with pytest.raises(FileNotFoundError):
        hub.resolve_model(str(tmp_path / "no" / "such" / "dir"))
    with pytest.raises(OSError, match="nor a valid Hugging Face model id"):
        hub.resolve_model("bad name")
    with pytest.raises(TypeError):
        hub.resolve_model("org/bert", token=1)  # type: ignore[arg-type]
    assert server.requests == []
