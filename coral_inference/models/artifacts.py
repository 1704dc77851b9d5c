"""Getting an artifact onto local disk: in-package files or URLs, always sha256 verified.

URL artifacts land in a cache directory keyed by their digest, written to a
temporary name and renamed only once the digest matches, so an interrupted or
corrupted download never looks complete.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import cast

from tqdm import tqdm

from coral_inference.models.errors import (
    ArtifactDownloadError,
    ArtifactNotFoundError,
    ChecksumMismatchError,
)
from coral_inference.models.package import ModelPackage, sha256_of

DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 1 << 16


def artifact_cache_dir() -> Path:
    """``$CORAL_ARTIFACT_CACHE``, else ``$XDG_CACHE_HOME/coral/artifacts`` (``~/.cache/coral/artifacts``)."""
    if os.environ.get("CORAL_ARTIFACT_CACHE"):
        return Path(os.environ["CORAL_ARTIFACT_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "coral" / "artifacts"


def ensure_artifact(
    package: ModelPackage,
    backend: str,
    cache_dir: Path | None = None,
    *,
    progress: bool | None = None,
) -> Path:
    """The verified local file of ``package``'s artifact for ``backend``."""
    spec = package.artifact(backend)
    field = f"artifacts.{backend}"
    if spec.file is not None:
        # spec.file is set, so this is the in-package path, never None
        path = cast(Path, package.local_artifact_path(backend))
        if not path.is_file():
            raise ArtifactNotFoundError(
                f"{path}: artifact file named by {field}.file in {package.manifest_path} does not exist; "
                f"restore the file or fix the manifest"
            )
        if spec.sha256:
            verify_sha256(path, spec.sha256, f"{field}.sha256 in {package.manifest_path}")
        companion_paths(package, backend)  # each one present and verified
        return path
    # ArtifactSpec's validator guarantees a url artifact has both url and sha256
    url, sha256 = cast(str, spec.url), cast(str, spec.sha256)
    dest = (cache_dir or artifact_cache_dir()) / sha256[:16] / spec.filename
    if dest.is_file() and sha256_of(dest) == sha256:
        return dest
    return download(
        url, dest, sha256, f"{field}.sha256 in {package.manifest_path}", progress=progress
    )


def companion_paths(package: ModelPackage, backend: str) -> list[Path]:
    """The verified files an in-package artifact needs beside it (``companions``)."""
    paths = []
    for index, companion in enumerate(package.artifact(backend).companions):
        field = f"artifacts.{backend}.companions.{index}"
        path = (package.root / companion.file).resolve()
        if not path.is_file():
            raise ArtifactNotFoundError(
                f"{path}: companion file named by {field}.file in {package.manifest_path} does not exist; "
                f"restore the file or fix the manifest"
            )
        if companion.sha256:
            verify_sha256(path, companion.sha256, f"{field}.sha256 in {package.manifest_path}")
        paths.append(path)
    return paths


def verify_sha256(path: Path, expected: str, where: str) -> None:
    actual = sha256_of(path)
    if actual != expected.lower():
        raise ChecksumMismatchError(
            f"{path}: sha256 mismatch: expected {expected} ({where}), got {actual}; "
            f"the file is corrupt or the manifest is stale: re-download the artifact or update the sha256"
        )


def download(
    url: str, dest: Path, sha256: str, where: str, *, progress: bool | None = None
) -> Path:
    """Fetch ``url`` (http, https, file or a plain path) to ``dest`` with a progress bar; verify, then rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    show = sys.stderr.isatty() if progress is None else progress
    handle, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(handle, "wb") as out:
            _copy_url(url, out, show, dest.name)
        verify_sha256(tmp, sha256, f"{where}, downloaded from {url}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _copy_url(url: str, out, show: bool, label: str) -> None:

    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("", "file"):
        source = Path(urllib.request.url2pathname(parsed.path) if parsed.scheme else url)
        if not source.is_file():
            raise ArtifactDownloadError(f"{url}: no such file to fetch the artifact from")
        with (
            open(source, "rb") as src,
            tqdm(
                total=source.stat().st_size, unit="B", unit_scale=True, desc=label, disable=not show
            ) as bar,
        ):
            while block := src.read(_CHUNK):
                out.write(block)
                bar.update(len(block))
        return
    if parsed.scheme not in ("http", "https"):
        raise ArtifactDownloadError(
            f"{url}: unsupported URL scheme {parsed.scheme!r}; use http(s)://, file:// or a path"
        )
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=label, disable=not show) as bar:
                while block := response.read(_CHUNK):
                    out.write(block)
                    bar.update(len(block))
    except OSError as exc:  # URLError, HTTPError and timeouts are all OSErrors
        raise ArtifactDownloadError(
            f"{url}: download failed: {exc}; check the URL and the network"
        ) from exc


def copy_artifacts(
    package: ModelPackage, backend: str, dest: Path, *, progress: bool | None = None
) -> list[Path]:
    """Place ``backend``'s verified artifact inside ``dest`` (used by ``download_artifacts``)."""
    dest.mkdir(parents=True, exist_ok=True)
    source = ensure_artifact(package, backend, progress=progress)
    copied = []
    for path in [source, *companion_paths(package, backend)]:
        target = dest / path.name
        if path.resolve() != target.resolve():
            shutil.copy2(path, target)
        copied.append(target)
    return copied
