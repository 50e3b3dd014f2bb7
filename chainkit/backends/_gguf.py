"""Read a GGUF file's metadata and build a token counter from its own vocabulary.

Only the metadata block is read (the header, then key/value pairs); tensor data is never touched,
so this costs a few milliseconds even for large files. The token counter covers byte-level BPE
vocabularies (`tokenizer.ggml.model == "gpt2"`, used by SmolLM2, Qwen, Llama 3 and most recent
models): their merges are turned into tiktoken ranks, so counting runs in tiktoken's Rust code.
The counts equal the server's own tokenization (checked in tests/test_local_backend.py).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, BinaryIO

_MAGIC = b"GGUF"
# GGUF value types -> struct format (scalars); 8 = string, 9 = array.
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9

# Pre-tokenizer regexes by `tokenizer.ggml.pre`, as llama.cpp applies them. llama.cpp runs a list of
# regexes one after another; an alternation with the earlier regex first splits the same way.
_GPT2_WORDS = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_PRE_PATTERNS = {
    "gpt2": _GPT2_WORDS,
    "default": _GPT2_WORDS,
    # SmolLM / StarCoder split every digit on its own before the GPT-2 rules.
    "smollm": r"\p{N}|" + _GPT2_WORDS,
    "starcoder": r"\p{N}|" + _GPT2_WORDS,
}


class GGUFFormatError(ValueError):
    """The file is not a GGUF file this reader understands."""


def read_metadata(path: str, *, keys: set[str] | None = None) -> dict[str, Any]:
    """The metadata key/value pairs of a GGUF file (only `keys` when given)."""
    with open(path, "rb") as file:
        if file.read(4) != _MAGIC:
            raise GGUFFormatError(f"{path} is not a GGUF file (bad magic)")
        (version,) = struct.unpack("<I", file.read(4))
        if version < 2:
            raise GGUFFormatError(f"{path}: GGUF version {version} is too old")
        _n_tensors, n_kv = struct.unpack("<QQ", file.read(16))
        out: dict[str, Any] = {}
        for _ in range(n_kv):
            key = _read_string(file)
            (value_type,) = struct.unpack("<I", file.read(4))
            if keys is None or key in keys:
                out[key] = _read_value(file, value_type)
            else:
                _skip_value(file, value_type)
        return out


def _read_string(file: BinaryIO) -> str:
    (length,) = struct.unpack("<Q", file.read(8))
    return file.read(length).decode("utf-8", errors="replace")


def _read_value(file: BinaryIO, value_type: int) -> Any:
    if value_type == _STRING:
        return _read_string(file)
    if value_type == _ARRAY:
        item_type, count = struct.unpack("<IQ", file.read(12))
        if item_type in _SCALARS:
            fmt = _SCALARS[item_type]
            size = struct.calcsize(fmt)
            return list(struct.unpack(f"<{count}{fmt}", file.read(size * count)))
        return [_read_value(file, item_type) for _ in range(count)]
    fmt = _SCALARS.get(value_type)
    if fmt is None:
        raise GGUFFormatError(f"unknown GGUF value type {value_type}")
    return struct.unpack("<" + fmt, file.read(struct.calcsize(fmt)))[0]


def _skip_value(file: BinaryIO, value_type: int) -> None:
    if value_type == _STRING:
        (length,) = struct.unpack("<Q", file.read(8))
        file.seek(length, 1)
    elif value_type == _ARRAY:
        item_type, count = struct.unpack("<IQ", file.read(12))
        if item_type in _SCALARS:
            file.seek(struct.calcsize(_SCALARS[item_type]) * count, 1)
        else:
            for _ in range(count):
                _skip_value(file, item_type)
    else:
        fmt = _SCALARS.get(value_type)
        if fmt is None:
            raise GGUFFormatError(f"unknown GGUF value type {value_type}")
        file.seek(struct.calcsize(fmt), 1)


def _byte_decoder() -> dict[str, int]:
    # GPT-2 byte-level BPE writes each byte as a printable unicode character; invert that table.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def token_counter(metadata: dict[str, Any]) -> Callable[[str], int] | None:
    """A function counting the tokens of a text with the model's own vocabulary, or None.

    None when the vocabulary is not byte-level BPE (e.g. SentencePiece): callers then fall back to
    an approximate counter.
    """
    if metadata.get("tokenizer.ggml.model") != "gpt2":
        return None
    pattern = _PRE_PATTERNS.get(str(metadata.get("tokenizer.ggml.pre", "default")))
    tokens: list[str] = metadata.get("tokenizer.ggml.tokens") or []
    merges: list[str] = metadata.get("tokenizer.ggml.merges") or []
    if pattern is None or not tokens or not merges:
        return None
    import tiktoken

    decoder = _byte_decoder()
    try:
        ranks: dict[bytes, int] = {}
        # Single bytes first (rank = byte value), then every merge result in merge order: tiktoken
        # applies the lowest-ranked pair first, which is exactly BPE merge priority.
        for byte in range(256):
            ranks[bytes([byte])] = byte
        for merge in merges:
            left, _, right = merge.partition(" ")
            merged = bytes(decoder[ch] for ch in left + right)
            if merged not in ranks:
                ranks[merged] = len(ranks)
    except KeyError:
        return None
    # Control and user-defined tokens (types 3 and 4, e.g. "<|im_start|>") are matched whole, as the
    # server does when it tokenizes a rendered chat template.
    types: list[int] = metadata.get("tokenizer.ggml.token_type") or []
    specials = {
        tokens[i]: len(ranks) + n for n, i in enumerate(i for i, t in enumerate(types) if t in (3, 4))
    }
    encoding = tiktoken.Encoding(
        name="gguf-bpe", pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials
    )

    def count(text: str) -> int:
        return len(encoding.encode(text, allowed_special="all"))

    return count
