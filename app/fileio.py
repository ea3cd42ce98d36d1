"""Reading and writing text files exactly.

A file opens as (text, TextFormat): the encoding (UTF-8 or UTF-16 by default;
Windows-1252 or Latin-1 when the user reopens a file with one, see ENCODINGS),
whether it had a byte-order mark, its majority line ending, and the ending of
every line break that differs from it (``LineEndings``). The editor holds the text with "\n" breaks;
writing it back gives the same bytes, so an unedited file saves
byte-identically, mixed endings, lone CRs and U+2029 included. Lines the user
edited or added take the file's majority ending; lines left alone keep theirs
(matched by difflib, stdlib).

Saves are atomic: the bytes go to a temporary file in the same folder, which is
flushed, synced and then renamed over the target with os.replace, so a crash
mid-save leaves either the old file or the new one, never a truncated mix. A
journal entry in the state folder names that temporary file while the save
runs, so the next start can remove one a killed save left behind.

Only regular files are read: FIFOs, sockets and devices are refused before
anything is opened for reading, and a read never takes more than MAX_BYTES.
"""
from __future__ import annotations

import codecs
import difflib
import hashlib
import json
import os
import re
import stat
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

MAX_BYTES = 64 * 1024 * 1024  # refuse bigger files: a text editor is the wrong tool
_BREAK = re.compile("\r\n|\r|\n|\u2029")  # what Qt turns into a block break ("\u2028" stays in the line)
_NAMES = {"\n": "LF", "\r\n": "CRLF", "\r": "CR", "\u2029": "PS"}


class FileError(Exception):
    """A file could not be read or written; the message is fit to show as is."""


class CannotEncode(FileError):
    """The text holds a character the file's encoding has no bytes for; saving
    it as UTF-8 is the way out that loses nothing."""


class EncodingError(FileError):
    """A file's bytes are not text in the encoding it was read with; another
    encoding may read it (``suggestion``: a codec of ENCODINGS, or None)."""

    def __init__(self, message: str, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.suggestion = suggestion


@dataclass(frozen=True)
class LineEndings:
    """The line endings of ``text`` (normalised to "\n") as read or last saved:
    ``others`` lists (break index, ending) for every break whose ending is not
    the majority one."""

    text: str
    others: tuple[tuple[int, str], ...]


# What "Reopen with encoding…" offers: (codec or "utf-16", label). "utf-16" takes its
# byte order from the BOM, or guesses it from where the NUL bytes of ASCII text fall.
ENCODINGS = (("utf-8", "UTF-8"), ("utf-16", "UTF-16"), ("cp1252", "Windows-1252"), ("latin-1", "Latin-1"))
LABELS = {"utf-8": "UTF-8", "utf-16-le": "UTF-16 LE", "utf-16-be": "UTF-16 BE", "cp1252": "Windows-1252",
          "latin-1": "Latin-1"}


@dataclass(frozen=True)
class TextFormat:
    encoding: str = "utf-8"  # a key of LABELS: "utf-8", "utf-16-le", "utf-16-be", "cp1252" or "latin-1"
    bom: bool = False
    newline: str = "\n"  # the majority ending: "\n", "\r\n", "\r" or "\u2029"
    endings: LineEndings | None = None  # None: every break has ``newline``

    @property
    def mixed(self) -> bool:
        return bool(self.endings and self.endings.others)

    @property
    def label(self) -> str:
        enc = LABELS.get(self.encoding, self.encoding)
        nl = _NAMES[self.newline]
        return f"{enc}{' BOM' if self.bom else ''} · {nl}{' (mixed)' if self.mixed else ''}"


@dataclass(frozen=True)
class FileStamp:
    """What a file on disk was when Lacuna last read or wrote it."""

    mtime_ns: int
    size: int
    sha256: str


_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def _looks_binary(data: bytes) -> bool:
    sample = data[:65536]
    if b"\x00" in sample:
        return True
    if not sample:
        return False
    # many C0 control characters other than the white space of text files:
    # tab, line feed, vertical tab, form feed, carriage return (and ESC, SUB)
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 11, 12, 13, 26, 27))
    return controls / len(sample) > 0.02


def _majority(counts: Counter) -> str:
    if not counts:
        return "\n"
    # ties go to the most common convention first
    return max(("\n", "\r\n", "\r", "\u2029"), key=lambda e: (counts[e], e == "\n", e == "\r\n"))


def split_endings(raw: str) -> tuple[str, list[str]]:
    """``raw`` with every line break as "\n", and the ending each break had."""
    ends = _BREAK.findall(raw)
    return (_BREAK.sub("\n", raw) if ends else raw), ends


def _layout(text: str, ends: list[str], newline: str) -> LineEndings | None:
    others = tuple((k, e) for k, e in enumerate(ends) if e != newline)
    return LineEndings(text, others) if others else None


def _utf16_order(data: bytes) -> str:
    """The byte order of UTF-16 text without a BOM: ASCII characters have their
    NUL byte second in little-endian, first in big-endian."""
    even, odd = data[0::2].count(0), data[1::2].count(0)
    return "utf-16-be" if even > odd else "utf-16-le"


def suggest_encoding(data: bytes) -> str | None:
    """Which of ENCODINGS most likely reads ``data`` that is not UTF-8: UTF-16
    when NULs fall on every other byte, else Windows-1252 when it decodes (the
    Western default of Windows), else Latin-1 (which decodes every byte). A
    choice among four, so no statistical detector is needed."""
    sample = data[:65536]
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if len(sample) >= 2 and max(sample[0::2].count(0), sample[1::2].count(0)) > len(sample) // 8:
        return "utf-16"
    try:
        data.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def decode(data: bytes, name: str = "the file", encoding: str | None = None) -> tuple[str, TextFormat]:
    """Decode bytes into text with its line breaks as "\n"; the format records
    the encoding, the BOM and every break's ending.

    ``encoding`` None: UTF-8, or UTF-16/UTF-8 named by a BOM. Otherwise one of
    ENCODINGS' codecs, chosen by the user: bytes it cannot decode raise
    EncodingError (0x81 in Windows-1252, say); Latin-1 decodes any bytes."""
    if encoding is not None and encoding not in dict(ENCODINGS) and encoding not in LABELS:
        raise FileError(f"Lacuna cannot read {encoding}; it reads {', '.join(label for _, label in ENCODINGS)}.")
    bom = False
    chosen = encoding is not None  # by the user (a BOM's encoding is not a choice)
    marks = _BOMS if encoding in (None, "utf-8", "utf-16", "utf-16-le", "utf-16-be") else ()
    for mark, enc in marks:
        if data.startswith(mark) and (encoding is None or enc.startswith(encoding) or encoding.startswith(enc)):
            encoding, bom = enc, True
            data = data[len(mark):]
            break
    if encoding == "utf-16":
        encoding = _utf16_order(data)
    encoding = encoding or "utf-8"
    if not bom and not encoding.startswith("utf-16") and _looks_binary(data):
        if not chosen and suggest_encoding(data) == "utf-16":
            raise EncodingError(
                f"{name} looks like UTF-16 text without a byte-order mark (every other byte is NUL). "
                "Reopen it with its encoding: File ▸ Reopen with Encoding…", "utf-16")
        raise FileError(
            f"{name} looks like a binary file (it contains NUL or control bytes), not text. "
            "Lacuna opens text files only."
        )
    try:
        raw = data.decode(encoding)
    except UnicodeDecodeError as exc:
        label = LABELS.get(encoding, encoding)
        if chosen:
            raise EncodingError(
                f"{name} is not {label} text: the byte 0x{data[exc.start]:02X} at offset {exc.start} has no "
                f"character in {label}. Reopen it with another encoding.", None) from None
        suggestion = suggest_encoding(data)
        hint = f" (it looks like {dict(ENCODINGS)[suggestion]})" if suggestion else ""
        raise EncodingError(
            f"{name} is not valid UTF-8 text (undecodable byte at offset {exc.start}){hint}. "
            "Reopen it with its encoding: File ▸ Reopen with Encoding…", suggestion) from None
    cr, lf, ps = raw.count("\r"), raw.count("\n"), raw.count("\u2029")
    if not cr and not ps:  # the usual cases first: one kind of ending, no regex over the text
        return raw, TextFormat(encoding, bom, "\n")
    if not ps and cr == lf == raw.count("\r\n"):
        return raw.replace("\r\n", "\n"), TextFormat(encoding, bom, "\r\n")
    text, ends = split_endings(raw)
    newline = _majority(Counter(ends))
    return text, TextFormat(encoding, bom, newline, _layout(text, ends, newline))


def _line_endings(text: str, fmt: TextFormat) -> list[str] | None:
    """The ending of every "\n" of ``text``; None when all take ``fmt.newline``.

    Lines unchanged since the file was read (or last saved) keep their ending;
    edited and new lines take the majority one."""
    old = fmt.endings
    if old is None:
        return None
    n_breaks = text.count("\n")
    if text == old.text:
        ends = [fmt.newline] * n_breaks
        for k, e in old.others:
            ends[k] = e
        return ends
    old_lines, new_lines = old.text.split("\n"), text.split("\n")
    old_ends = [fmt.newline] * (len(old_lines) - 1)
    for k, e in old.others:
        old_ends[k] = e
    match: dict[int, int] = {}  # new line -> the old line it is, unchanged
    p = 0
    while p < min(len(old_lines), len(new_lines)) and old_lines[p] == new_lines[p]:
        match[p] = p
        p += 1
    q = 0
    while (q < min(len(old_lines), len(new_lines)) - p
           and old_lines[-1 - q] == new_lines[-1 - q]):
        match[len(new_lines) - 1 - q] = len(old_lines) - 1 - q
        q += 1
    mid_old, mid_new = old_lines[p:len(old_lines) - q], new_lines[p:len(new_lines) - q]
    if mid_old and mid_new:
        sm = difflib.SequenceMatcher(None, mid_old, mid_new, autojunk=False)
        for a, b, size in sm.get_matching_blocks():
            for k in range(size):
                match[p + b + k] = p + a + k
    ends = []
    for j in range(n_breaks):
        i = match.get(j)
        # a line that was last in the old text had no break of its own: it takes the majority
        ends.append(old_ends[i] if i is not None and i < len(old_ends) else fmt.newline)
    return ends


def encode_with_format(text: str, fmt: TextFormat) -> tuple[bytes, TextFormat]:
    """The bytes of ``text`` saved in ``fmt``, and the format that describes them
    (to compare the next save against)."""
    ends = _line_endings(text, fmt)
    if ends is None or all(e == fmt.newline for e in ends):
        out = text.replace("\n", fmt.newline) if fmt.newline != "\n" else text
        settled = replace(fmt, endings=None)
    else:
        lines = text.split("\n")
        out = "".join(line + e for line, e in zip(lines, ends)) + lines[-1]
        settled = replace(fmt, endings=_layout(text, ends, fmt.newline))
    data = out.encode(fmt.encoding)
    if fmt.bom:
        data = dict((e, m) for m, e in _BOMS)[fmt.encoding] + data
    return data, settled


def encode(text: str, fmt: TextFormat) -> bytes:
    return encode_with_format(text, fmt)[0]


def stamp(data: bytes, st: os.stat_result) -> FileStamp:
    return FileStamp(st.st_mtime_ns, st.st_size, hashlib.sha256(data).hexdigest())


def _read_regular(p: Path) -> tuple[bytes, os.stat_result]:
    """The bytes of a regular file, at most MAX_BYTES; anything else is refused
    without blocking (a FIFO is opened non-blocking, and only after fstat)."""
    try:
        st = os.stat(p)
    except OSError as exc:
        raise FileError(f"Could not read {p}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise FileError(f"{p.name} is a folder, not a file.")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
        raise FileError(f"{p.name} is {kind}, not a text file; Lacuna opens regular files only.")
    if st.st_size > MAX_BYTES:
        raise FileError(f"{p.name} is {st.st_size / 1e6:.0f} MB; Lacuna opens text files up to {MAX_BYTES // 2**20} MB.")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(p, flags)
    except OSError as exc:
        raise FileError(f"Could not read {p}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):  # swapped for something else since the stat above
            raise FileError(f"{p.name} is not a regular file; Lacuna opens regular files only.")
        try:
            data = f.read(MAX_BYTES + 1)
        except OSError as exc:
            raise FileError(f"Could not read {p}: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise FileError(f"{p.name} is over {MAX_BYTES // 2**20} MB; Lacuna opens text files up to that size.")
    return data, st


def open_text(path: str | os.PathLike, encoding: str | None = None) -> tuple[str, TextFormat, FileStamp]:
    """Read a text file: its text, format, and a stamp to see later changes on disk by.
    ``encoding``: see decode."""
    p = Path(path)
    data, st = _read_regular(p)
    text, fmt = decode(data, p.name, encoding)
    return text, fmt, stamp(data, st)


def read_text(path: str | os.PathLike) -> tuple[str, TextFormat]:
    text, fmt, _ = open_text(path)
    return text, fmt


def disk_state(path: str | os.PathLike, known: FileStamp | None) -> str:
    """How the file at ``path`` compares with ``known``: "same", "changed",
    "missing" or "unreadable". A new modification time with the same bytes
    (a touch) is "same"."""
    p = Path(path)
    if known is None:
        return "same"
    try:
        st = os.stat(p)
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "unreadable"
    if not stat.S_ISREG(st.st_mode):
        return "changed"
    if st.st_size != known.size:
        return "changed"
    try:
        data, st = _read_regular(p)
    except FileError:
        return "unreadable"
    return "same" if hashlib.sha256(data).hexdigest() == known.sha256 else "changed"


def writable(path: str | os.PathLike) -> bool:
    """False for an existing file the user may not write (made read-only)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    # the mode bits as well as access(): root may write anything, but a file
    # someone made read-only should still not be replaced without a question
    return bool(st.st_mode & 0o222) and os.access(path, os.W_OK)


# ---- the journal of saves in progress ---------------------------------------------------
class _SaveJournal:
    """An entry naming a save's temporary file, locked while the save runs."""

    def __init__(self, folder: Path | None, tmp: str) -> None:
        self.file = self.lock = None
        if folder is None:
            return
        from filelock import FileLock

        try:
            folder.mkdir(parents=True, exist_ok=True)
            name = uuid.uuid4().hex
            self.lock = FileLock(str(folder / f"{name}.lock"))
            self.lock.acquire(timeout=0)
            self.file = folder / f"{name}.json"
            self.file.write_text(json.dumps({"tmp": tmp}), encoding="utf-8")
        except Exception:  # noqa: BLE001 - the journal is housekeeping; the save goes on without it
            self.close()

    def close(self) -> None:
        if self.file is not None:
            self.file.unlink(missing_ok=True)
        if self.lock is not None:
            try:
                self.lock.release()
                Path(self.lock.lock_file).unlink(missing_ok=True)
            except OSError:
                pass
        self.file = self.lock = None


def clean_stale_temps(journal: Path) -> list[str]:
    """Remove the temporary files of saves that were killed (their journal entry
    is not locked by a running save). Returns the paths removed."""
    from filelock import FileLock, Timeout

    removed: list[str] = []
    if not journal.is_dir():
        return removed
    for entry in journal.glob("*.json"):
        lock = FileLock(str(entry.with_suffix(".lock")))
        try:
            lock.acquire(timeout=0)
        except (Timeout, OSError):
            continue  # a save is running in another window or process
        try:
            tmp = json.loads(entry.read_text(encoding="utf-8")).get("tmp", "")
            if tmp.endswith(".lacuna-tmp") and os.path.lexists(tmp):
                os.unlink(tmp)
                removed.append(tmp)
            entry.unlink()
        except (OSError, ValueError, AttributeError):
            pass
        finally:
            lock.release()
            entry.with_suffix(".lock").unlink(missing_ok=True)
    return removed


def write_text_atomic(path: str | os.PathLike, text: str, fmt: TextFormat,
                      journal: Path | None = None) -> tuple[TextFormat, FileStamp]:
    """Write atomically: temporary file in the same folder, fsync, os.replace.

    Returns the format that now describes the file (line endings as written)
    and its stamp. ``journal``: a folder where the temporary file is named
    while the save runs (see clean_stale_temps)."""
    p = Path(path)
    try:
        data, settled = encode_with_format(text, fmt)
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start:exc.end]
        line = exc.object.count("\n", 0, exc.start) + 1
        label = LABELS.get(fmt.encoding, fmt.encoding)
        raise CannotEncode(f"The text cannot be saved as {label}, the file's encoding: “{bad}” (line {line}) "
                           f"has no {label} byte. Save it as UTF-8, or remove or replace it and save "
                           "again.") from None
    folder = p.parent if str(p.parent) else Path(".")
    try:
        mode = p.stat().st_mode & 0o777 if p.exists() else None
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".lacuna-tmp", dir=folder)
    except OSError as exc:
        raise FileError(f"Could not save {p}: {exc.strerror or exc}") from None
    entry = _SaveJournal(journal, tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, p)
        st = os.stat(p)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise FileError(f"Could not save {p}: {exc.strerror or exc}") from None
    finally:
        entry.close()
    return settled, stamp(data, st)
