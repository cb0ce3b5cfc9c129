"""Safe extraction of zip archives of test meshes: `safe_extract_zip` refuses absolute paths, `..` traversal,
links, too many members, too much uncompressed data and members that decompress suspiciously well (zip bombs)."""

from __future__ import annotations

import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..fid import PathLike


class UnsafeArchiveError(ValueError):
    """A zip archive was refused: a member would land outside the target folder, is a link, or the archive
    is too large, has too many members, or decompresses like a zip bomb."""


@dataclass(frozen=True)
class ZipLimits:
    """What `safe_extract_zip` accepts."""

    max_members: int = 10_000  # entries incl. folders; meshes plus their textures stay far below
    max_total_bytes: int = 8 * 2**30  # uncompressed sum; a large mesh test set is a few GB
    max_ratio: float = 200.0  # uncompressed / compressed per member: meshes compress 2-20x, bombs 1000x+
    ratio_min_bytes: int = 2**20  # members smaller than this skip the ratio test (tiny files compress oddly)


def safe_extract_zip(archive_path: PathLike, dest: PathLike, limits: ZipLimits | None = None) -> list[Path]:
    """Extract the regular files of a zip into `dest` after checking every member; returns their paths.

    Refused (`UnsafeArchiveError`, before anything is written): absolute names or drive letters, `..`
    components, duplicate names, symbolic links, more than `limits.max_members` members, a declared
    uncompressed total above `limits.max_total_bytes`, or a member over `limits.ratio_min_bytes` whose
    size is more than `limits.max_ratio` times its compressed size. While extracting, a member that
    yields more bytes than it declares is refused too (the header lied) and the partial file removed.
    """
    limits = limits or ZipLimits()
    archive_path, dest = Path(archive_path), Path(dest)
    try:
        archive = zipfile.ZipFile(archive_path)
    except (zipfile.BadZipFile, OSError) as error:
        raise ValueError(f"{archive_path} is not a readable zip archive: {error}") from error
    with archive:
        members = archive.infolist()
        if len(members) > limits.max_members:
            raise UnsafeArchiveError(f"{archive_path} has {len(members)} members, more than the limit of "
                                     f"{limits.max_members}; split the test set or raise ZipLimits.max_members")
        plan, seen, total = [], set(), 0
        for info in members:
            relative = _safe_member_name(info.filename, archive_path)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UnsafeArchiveError(f"{archive_path}: member {info.filename!r} is a symbolic link; "
                                         "links are refused, store the files themselves")
            if relative in seen:
                raise UnsafeArchiveError(f"{archive_path}: member {info.filename!r} appears twice")
            seen.add(relative)
            if info.is_dir():
                continue
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > limits.ratio_min_bytes and ratio > limits.max_ratio:
                raise UnsafeArchiveError(
                    f"{archive_path}: member {info.filename!r} expands {ratio:.0f}x ({info.file_size} bytes), above "
                    f"the limit of {limits.max_ratio:.0f}x; this looks like a zip bomb"
                )
            total += info.file_size
            if total > limits.max_total_bytes:
                raise UnsafeArchiveError(
                    f"{archive_path} holds more than {limits.max_total_bytes} bytes uncompressed (limit "
                    "ZipLimits.max_total_bytes); extract it yourself if you trust it and pass the folder"
                )
            plan.append((info, dest.joinpath(*relative.parts)))

        written = []
        dest.mkdir(parents=True, exist_ok=True)
        for info, target in plan:
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                _copy_member(archive, info, target)
            except RuntimeError as error:  # encrypted members
                raise ValueError(f"{archive_path}: cannot extract {info.filename!r}: {error}") from error
            written.append(target)
    return written


def _safe_member_name(name: str, archive_path: Path) -> PurePosixPath:
    """The member's relative path, or `UnsafeArchiveError` if it could escape the target folder."""
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or re.match(r"[A-Za-z]:", normalised):
        raise UnsafeArchiveError(f"{archive_path}: member {name!r} has an absolute path; refused")
    path = PurePosixPath(normalised)
    if ".." in path.parts:
        raise UnsafeArchiveError(f"{archive_path}: member {name!r} climbs out of the folder with '..'; refused")
    if "\0" in normalised or not path.parts:
        raise UnsafeArchiveError(f"{archive_path}: member {name!r} has an invalid name")
    return path


def _copy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> None:
    chunk_size = 1 << 20
    copied = 0
    with archive.open(info) as source, open(target, "wb") as sink:
        while chunk := source.read(chunk_size):
            copied += len(chunk)
            if copied > info.file_size:
                sink.close()
                target.unlink(missing_ok=True)
                raise UnsafeArchiveError(f"member {info.filename!r} decompresses to more than the {info.file_size} "
                                         "bytes its header declares; refused")
            sink.write(chunk)
