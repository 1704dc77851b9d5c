"""Resolving client-supplied relative paths inside a root, refusing every escape."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from coral_inference.webapp.errors import ForbiddenPathError, NotFoundError


def resolve_under(root: Path, relative: str, *, what: str = "file") -> Path:
    """``root / relative`` when it stays inside ``root`` after resolving symlinks.

    Absolute paths, ``..`` segments, NUL bytes and symlinks that lead out are
    refused with ``ForbiddenPathError``; nothing outside ``root`` is ever opened.

    >>> resolve_under(Path("/srv/rec"), "../etc/passwd")  # doctest: +SKIP
    Traceback (most recent call last):
    ForbiddenPathError: ...
    """
    text = relative.replace("\\", "/")
    pure = PurePosixPath(text)
    if (
        not text
        or "\x00" in text
        or pure.is_absolute()
        or ".." in pure.parts
        or text.startswith("~")
    ):
        raise ForbiddenPathError(
            f"{what} path {relative!r} must be relative to its root and must not contain '..'"
        )
    base = root.resolve()
    candidate = (base / pure).resolve()
    if candidate != base and base not in candidate.parents:
        raise ForbiddenPathError(f"{what} path {relative!r} leads outside its root")
    return candidate


def existing_file_under(root: Path, relative: str, *, what: str = "file") -> Path:
    path = resolve_under(root, relative, what=what)
    if not path.is_file():
        raise NotFoundError(f"no {what} {relative!r}", code=f"{what.replace(' ', '_')}_not_found")
    return path
