"""Decoding of annotation and record files as UTF-8, with errors that name the file, the offset and the encoding found.

Annotation files and records are UTF-8 (a UTF-8 byte-order mark is accepted). A file in another encoding is refused
rather than guessed at, and the error says what it looks like (a UTF-16/32 byte-order mark, NUL bytes of UTF-16
without one, or 8-bit text such as Latin-1) and how to re-encode it.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from lavis_ib.common.errors import UserError

BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32 LE"), (codecs.BOM_UTF32_BE, "UTF-32 BE"),
    (codecs.BOM_UTF16_LE, "UTF-16 LE"), (codecs.BOM_UTF16_BE, "UTF-16 BE"),
)


class EncodingError(UserError, ValueError):
    """A file that is not UTF-8; the message names the file, line, byte offset and the encoding it looks like."""


def guess_encoding(data: bytes) -> str:
    """What non-UTF-8 bytes look like: a byte-order mark's encoding, UTF-16 (NUL bytes), or 8-bit text."""
    for bom, name in BOMS:
        if data.startswith(bom):
            return f"{name} (byte-order mark)"
    if data[:4096].count(0) > len(data[:4096]) // 4:
        return "UTF-16 or UTF-32 without a byte-order mark (NUL bytes)"
    return "an 8-bit encoding such as Latin-1 / Windows-1252"


def _error(where: str, offset: int, bad: bytes, whole: bytes) -> EncodingError:
    return EncodingError(
        f"{where}: not UTF-8 at byte offset {offset} (bytes {bad[:4].hex(' ')}); it looks like "
        f"{guess_encoding(whole)}. Re-encode it as UTF-8, e.g. `iconv -f <encoding> -t UTF-8`"
    )


def decode_utf8(data: bytes, where: str, offset: int = 0) -> str:
    """`data` (one line, starting at byte `offset` of its file) decoded as UTF-8, else an `EncodingError` naming
    `where` and the file offset of the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _error(where, offset + error.start, data[error.start :], data) from None


def read_utf8(path: str | Path) -> str:
    """The text of `path` as UTF-8 (a leading UTF-8 BOM dropped); an error names the file, line and byte offset."""
    data = Path(path).read_bytes()
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as error:
        bad = start + error.start
        line = data.count(b"\n", 0, bad) + 1
        raise _error(f"{path}:{line}", bad, data[bad:], data) from None
