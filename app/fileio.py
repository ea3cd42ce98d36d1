"""Reading and writing text files exactly.

A file opens as (text, TextFormat): the encoding, whether it had a byte-order
mark and its line-ending style. Writing the text back with the same format
gives the same bytes, so an unedited file saves byte-identically. Saves are
atomic: the bytes go to a temporary file in the same folder, which is flushed,
synced and then renamed over the target with os.replace, so a crash mid-save
leaves either the old file or the new one, never a truncated mix.
"""
from __future__ import annotations

import codecs
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

MAX_BYTES = 64 * 1024 * 1024  # refuse bigger files: a text editor is the wrong tool


class FileError(Exception):
    """A file could not be read or written; the message is fit to show as is."""


@dataclass(frozen=True)
class TextFormat:
    encoding: str = "utf-8"  # "utf-8", "utf-16-le" or "utf-16-be"
    bom: bool = False
    newline: str = "\n"  # "\n", "\r\n" or "\r"

    @property
    def label(self) -> str:
        enc = {"utf-8": "UTF-8", "utf-16-le": "UTF-16 LE", "utf-16-be": "UTF-16 BE"}[self.encoding]
        nl = {"\n": "LF", "\r\n": "CRLF", "\r": "CR"}[self.newline]
        return f"{enc}{' BOM' if self.bom else ''} · {nl}"


_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def _looks_binary(data: bytes) -> bool:
    if b"\x00" in data[:65536]:
        return True
    # many C0 control characters other than tab, newline, CR, form feed
    sample = data[:65536]
    if not sample:
        return False
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13, 27))
    return controls / len(sample) > 0.02


def decode(data: bytes, name: str = "the file") -> tuple[str, TextFormat]:
    """Decode bytes into text with its newlines normalised to "\\n"."""
    encoding, bom = "utf-8", False
    for mark, enc in _BOMS:
        if data.startswith(mark):
            encoding, bom = enc, True
            data = data[len(mark):]
            break
    if not bom and _looks_binary(data):
        raise FileError(
            f"{name} looks like a binary file (it contains NUL or control bytes), not text. "
            "Lacuna opens UTF-8 and UTF-16 text files only."
        )
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise FileError(
            f"{name} is not valid {encoding.upper()} text (undecodable byte at offset {exc.start}). "
            "Lacuna opens UTF-8 (with or without BOM) and UTF-16 files with a BOM; "
            "convert it to UTF-8 first."
        ) from None
    crlf = text.count("\r\n")
    lone_cr = text.count("\r") - crlf
    lf = text.count("\n") - crlf
    if crlf and crlf >= lf and crlf >= lone_cr:
        newline = "\r\n"
    elif lone_cr > lf:
        newline = "\r"
    else:
        newline = "\n"
    if newline == "\r\n":
        text = text.replace("\r\n", "\n")
    elif newline == "\r":
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text, TextFormat(encoding, bom, newline)


def encode(text: str, fmt: TextFormat) -> bytes:
    if fmt.newline != "\n":
        text = text.replace("\n", fmt.newline)
    data = text.encode(fmt.encoding)
    if fmt.bom:
        data = dict((e, m) for m, e in _BOMS)[fmt.encoding] + data
    return data


def read_text(path: str | os.PathLike) -> tuple[str, TextFormat]:
    p = Path(path)
    try:
        size = p.stat().st_size
        if p.is_dir():
            raise FileError(f"{p.name} is a folder, not a file.")
        if size > MAX_BYTES:
            raise FileError(f"{p.name} is {size / 1e6:.0f} MB; Lacuna opens text files up to {MAX_BYTES // 2**20} MB.")
        data = p.read_bytes()
    except FileError:
        raise
    except OSError as exc:
        raise FileError(f"Could not read {p}: {exc.strerror or exc}") from None
    return decode(data, p.name)


def write_text_atomic(path: str | os.PathLike, text: str, fmt: TextFormat) -> None:
    """Write atomically: temporary file in the same folder, fsync, os.replace."""
    p = Path(path)
    try:
        data = encode(text, fmt)
    except UnicodeEncodeError as exc:
        raise FileError(f"The text cannot be saved as {fmt.encoding}: {exc.reason}") from None
    folder = p.parent if str(p.parent) else Path(".")
    try:
        mode = p.stat().st_mode & 0o777 if p.exists() else None
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".lacuna-tmp", dir=folder)
    except OSError as exc:
        raise FileError(f"Could not save {p}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, p)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise FileError(f"Could not save {p}: {exc.strerror or exc}") from None
