"""The learner's own notes (.md, .txt) as chunks for the full-text searchable `materials` collection.

Chunks follow the text's structure: a Markdown heading starts a new chunk and names it; paragraphs are
packed up to `max_chars`; a paragraph longer than that is cut at sentence ends (or hard, as a last
resort). Chunk ids are stable across runs (a hash of the file's relative path plus the chunk number), so
re-ingesting a folder replaces its chunks instead of piling up copies.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainkit.errors import UsageError

SUFFIXES = (".md", ".markdown", ".txt")
MAX_FILE_BYTES = 2_000_000
DEFAULT_MAX_CHARS = 800
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def chunk_text(text: str, *, max_chars: int = DEFAULT_MAX_CHARS, title: str = "") -> list[tuple[str, str]]:
    """(heading, text) chunks of at most `max_chars` characters each."""
    if max_chars < 80:
        raise UsageError(f"chunk_text: max_chars must be at least 80, not {max_chars}")
    chunks: list[tuple[str, str]] = []
    heading = title
    paragraphs: list[str] = []

    def flush() -> None:
        buffer = ""
        for paragraph in paragraphs:
            for piece in _pieces(paragraph, max_chars):
                if buffer and len(buffer) + 2 + len(piece) > max_chars:
                    chunks.append((heading, buffer))
                    buffer = ""
                buffer = f"{buffer}\n\n{piece}" if buffer else piece
        if buffer:
            chunks.append((heading, buffer))
        paragraphs.clear()

    current: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        match = _HEADING.match(line)
        if match:
            if current:
                paragraphs.append(" ".join(current))
                current = []
            flush()
            heading = match.group(2).strip()
        elif line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    flush()
    return chunks


def _pieces(paragraph: str, max_chars: int) -> list[str]:
    if len(paragraph) <= max_chars:
        return [paragraph]
    pieces: list[str] = []
    buffer = ""
    for sentence in re.split(r"(?<=[.!?])\s+", paragraph):
        while len(sentence) > max_chars:  # one sentence longer than a chunk: cut it hard
            if buffer:
                pieces.append(buffer)
                buffer = ""
            pieces.append(sentence[:max_chars])
            sentence = sentence[max_chars:]
        if buffer and len(buffer) + 1 + len(sentence) > max_chars:
            pieces.append(buffer)
            buffer = ""
        buffer = f"{buffer} {sentence}" if buffer else sentence
    if buffer:
        pieces.append(buffer)
    return pieces


def material_records(path: Path, *, root: Path | None = None, max_chars: int = DEFAULT_MAX_CHARS) -> list[dict[str, Any]]:
    """`materials` records for one file: {id, source, chunk, title, text}."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise UsageError(f"{path}: only {', '.join(SUFFIXES)} files are read as material")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise UsageError(f"{path}: {size} bytes is more than the {MAX_FILE_BYTES} bytes read as material")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    source = path.relative_to(root).as_posix() if root else path.name
    digest = hashlib.sha1(source.encode()).hexdigest()[:10]
    return [
        {"id": f"{digest}-{number}", "source": source, "chunk": number, "title": heading, "text": body}
        for number, (heading, body) in enumerate(chunk_text(text, max_chars=max_chars, title=path.stem))
    ]


@dataclass
class Ingested:
    records: list[dict[str, Any]] = field(default_factory=list)
    files: int = 0
    skipped: list[str] = field(default_factory=list)  # "path: why"


def ingest_directory(directory: Path | str, *, max_chars: int = DEFAULT_MAX_CHARS) -> Ingested:
    """Every .md/.txt file under `directory` (sorted, hidden folders skipped) as `materials` records.
    A file that cannot be read is listed in `skipped`; the others still come in."""
    root = Path(directory)
    if not root.is_dir():
        raise UsageError(f"--material {root}: not a directory")
    result = Ingested()
    for path in sorted(root.rglob("*")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        if not path.is_file() or path.suffix.lower() not in SUFFIXES:
            continue
        try:
            result.records.extend(material_records(path, root=root, max_chars=max_chars))
            result.files += 1
        except (UsageError, OSError) as exc:
            result.skipped.append(f"{path.relative_to(root).as_posix()}: {exc}")
    return result


__all__ = ["DEFAULT_MAX_CHARS", "Ingested", "SUFFIXES", "chunk_text", "ingest_directory", "material_records"]
