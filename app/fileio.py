"""Reading and writing text files exactly.

A file opens as (text, TextFormat): the encoding (UTF-8 or UTF-16 by default;
Windows-1252 or Latin-1 when the user reopens a file with one, see ENCODINGS),
whether it had a byte-order mark, its majority line ending, and the ending of
every line break that differs from it (``LineEndings``). The editor holds the text with "\n" breaks;
writing it back gives the same bytes, so an unedited file saves
byte-identically, mixed endings, lone CRs and U+2029 included. Lines the user
edited or added take the file's majority ending; lines left alone keep theirs
(matched in linear time by ``matched_lines``: an autosave runs it on the GUI thread).

Saves go through engine.safe_write: atomic (a short-named temporary file in
the same folder, synced, renamed over the target), keeping the file's mode,
owner, hard links and symbolic link, refusing FIFOs, sockets and devices. A
journal entry in the state folder names the temporary file while the save
runs, so the next start can remove one a killed save left behind.

``save_text`` is a save that never silently overwrites someone else's: under
an OS lock on the file (in the state folder, shared by every Lacuna window and
process, keyed by the file's device and inode, so that every name of it,
hard links included, takes the same lock) it compares the disk with the stamp
of the last read or write, raises Conflict when they differ, and only then
writes.

Only regular files are read: FIFOs, sockets and devices are refused before
anything is opened for reading, and a read never takes more than MAX_BYTES.
"""
from __future__ import annotations

import bisect
import codecs
import contextlib
import hashlib
import os
import re
import stat
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from lacuna.engine import safe_write

MAX_BYTES = 64 * 1024 * 1024  # refuse bigger files: a text editor is the wrong tool
_BREAK = re.compile("\r\n|\r|\n|\u2029")  # what Qt turns into a block break ("\u2028" stays in the line)
_NAMES = {"\n": "LF", "\r\n": "CRLF", "\r": "CR", "\u2029": "PS"}


class FileError(Exception):
    """A file could not be read or written; the message is fit to show as is."""


class CannotEncode(FileError):
    """The text holds a character the file's encoding has no bytes for; saving
    it as UTF-8 is the way out that loses nothing."""


class EncodingError(FileError):
    """A file's bytes are not text in the encoding it was read with (or look
    binary); another encoding may read it (``suggestion``: a codec of
    ENCODINGS, or None)."""

    def __init__(self, message: str, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.suggestion = suggestion


class NotText(EncodingError):
    """The bytes look binary (NUL or control bytes) in the encoding tried."""


class Conflict(FileError):
    """The file on disk is not the one the window last read or wrote:
    ``current`` is its stamp now (to overwrite exactly that version)."""

    def __init__(self, message: str, current: FileStamp | None) -> None:
        super().__init__(message)
        self.current = current


class Busy(FileError):
    """Another Lacuna window or process is saving the same file right now."""


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
    """What a file on disk was when Lacuna last read or wrote it. Whether it is
    still that file is decided by the SHA-256 of its bytes (a change keeping
    size and modification time is seen; a touch is not a change)."""

    mtime_ns: int
    size: int
    sha256: str  # "": unknown (an autosave of an older Lacuna): any file there counts as changed

    def to_json(self) -> dict:
        return {"mtime_ns": self.mtime_ns, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_json(cls, d) -> FileStamp | None:
        try:
            return cls(int(d["mtime_ns"]), int(d["size"]), str(d["sha256"]))
        except (TypeError, KeyError, ValueError):
            return None


UNKNOWN_STAMP = FileStamp(-1, -1, "")


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


def _utf16_decodes(sample: bytes, order: str) -> str | None:
    """``sample`` (of even length) decoded strictly (a pair cut by its end is dropped), or None."""
    try:
        return sample.decode(order)
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 2:
            return None
        return sample[:exc.start].decode(order, errors="ignore")


def _implausible(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat in ("Cn", "Co", "Cs") or (cat == "Cc" and ch not in "\t\n\r\x0b\x0c")


def utf16_order(data: bytes) -> str | None:
    """The byte order of ``data`` if it reads as UTF-16 text without a BOM, else None.

    An order passes when a strict decode gives at most 2% of unassigned,
    private-use or control characters, and less than half of its code units
    are what Latin text in a one-byte encoding makes when read as UTF-16:
    two printable ASCII bytes, the high one not a digit (kana and Hangul jamo
    have a digit there). Latin text decodes to CJK ideographs too, so the
    strict decode alone cannot tell. Of the orders that pass, the one whose
    high bytes are the more concentrated wins: a script fills a few
    256-character blocks (ASCII text has all its NUL bytes there; mostly-CJK
    text has few NULs, but its high bytes take a few dozen values, some of
    them often, while its low bytes spread over all 256)."""
    sample = data[:min(len(data), 65536) // 2 * 2]
    best = None
    for order, low, high in (("utf-16-le", sample[0::2], sample[1::2]), ("utf-16-be", sample[1::2], sample[0::2])):
        latin = sum(1 for lo, hi in zip(low, high) if 32 <= lo < 127 and (32 <= hi < 48 or 58 <= hi < 127))
        if not high or latin * 2 >= len(high):
            continue
        text = _utf16_decodes(sample, order)
        if not text or sum(map(_implausible, text)) * 50 > len(text):
            continue
        # how concentrated the high bytes are: the chance that two of them are equal
        concentration = sum(n * n for n in Counter(high).values())
        if best is None or concentration > best[0]:
            best = (concentration, order)
    return best[1] if best else None


def _utf16_order(data: bytes) -> str:
    """The byte order to read BOM-less UTF-16 in when the user chose UTF-16."""
    return utf16_order(data) or ("utf-16-be" if data[0::2].count(0) > data[1::2].count(0) else "utf-16-le")


def suggest_encoding(data: bytes) -> str | None:
    """Which of ENCODINGS most likely reads ``data`` that is not UTF-8: UTF-16
    when it has a UTF-16 BOM or reads as UTF-16 text (see utf16_order), else
    Windows-1252 when it decodes (the Western default of Windows), else Latin-1
    (which decodes every byte). A choice among four, so no statistical
    detector is needed."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or utf16_order(data):
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
    bom, skipped = False, 0
    chosen = encoding is not None  # by the user (a BOM's encoding is not a choice)
    marks = _BOMS if encoding in (None, "utf-8", "utf-16", "utf-16-le", "utf-16-be") else ()
    for mark, enc in marks:
        if data.startswith(mark) and (encoding is None or enc.startswith(encoding) or encoding.startswith(enc)):
            encoding, bom, skipped = enc, True, len(mark)
            data = data[len(mark):]
            break
    if encoding == "utf-16":
        encoding = _utf16_order(data)
    encoding = encoding or "utf-8"
    if not bom and not encoding.startswith("utf-16") and _looks_binary(data):
        if not chosen and suggest_encoding(data) == "utf-16":
            raise EncodingError(
                f"{name} looks like UTF-16 text without a byte-order mark. "
                "Reopen it with its encoding: File ▸ Reopen with Encoding…", "utf-16")
        # an EncodingError all the same: a text in an encoding we did not guess stays one question away
        raise NotText(
            f"{name} looks like a binary file (it contains NUL or control bytes), not text. Lacuna opens "
            "text files only; if it is text in another encoding, File ▸ Reopen with Encoding… reads it.", None)
    try:
        raw = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise _undecodable(data, name, encoding, exc.start, skipped, chosen) from None
    cr, lf, ps = raw.count("\r"), raw.count("\n"), raw.count("\u2029")
    if not cr and not ps:  # the usual cases first: one kind of ending, no regex over the text
        return raw, TextFormat(encoding, bom, "\n")
    if not ps and cr == lf == raw.count("\r\n"):
        return raw.replace("\r\n", "\n"), TextFormat(encoding, bom, "\r\n")
    text, ends = split_endings(raw)
    newline = _majority(Counter(ends))
    return text, TextFormat(encoding, bom, newline, _layout(text, ends, newline))


def _undecodable(data: bytes, name: str, encoding: str, start: int, skipped: int, chosen: bool) -> EncodingError:
    """The error for ``data`` (the bytes after a BOM of ``skipped`` bytes) that ``encoding``
    cannot decode at ``start``: what is wrong, where in the file, and the way out."""
    label, offset = LABELS.get(encoding, encoding), start + skipped
    if encoding.startswith("utf-16") and len(data) % 2 and start >= len(data) - 2:
        # UTF-16 of an odd length: a byte appended by a tool, or a file cut short
        return EncodingError(
            f"{name} is {label} text but ends in half a character (the lone byte 0x{data[-1]:02X} at offset "
            f"{skipped + len(data) - 1}), so Lacuna cannot open it exactly. Remove that last byte with another "
            "tool, or reopen it with another encoding: File ▸ Reopen with Encoding…", None)
    if chosen:
        return EncodingError(
            f"{name} is not {label} text: the byte 0x{data[start]:02X} at offset {offset} has no "
            f"character in {label}. Reopen it with another encoding.", None)
    suggestion = suggest_encoding(data)
    hint = f" (it looks like {dict(ENCODINGS)[suggestion]})" if suggestion else ""
    what = f"{name} starts with a {label} byte-order mark but" if skipped else name
    return EncodingError(
        f"{what} is not valid {label} text (undecodable byte at offset {offset}){hint}. "
        "Reopen it with its encoding: File ▸ Reopen with Encoding…", suggestion)


_DIFF_WORK = 32  # steps per line that matching lines may take in all: linear time, whatever the text


def _anchors(old: list[str], new: list[str], alo: int, ahi: int, blo: int, bhi: int) -> list[tuple[int, int]]:
    """The longest run of lines that occur exactly once in ``old[alo:ahi]`` and once in
    ``new[blo:bhi]``, in the same order on both sides: (old index, new index) pairs.
    Patience sorting finds it in O(n log n) (Bram Cohen's patience diff)."""
    where: dict[str, int] = {}
    for i in range(alo, ahi):
        where[old[i]] = -1 if old[i] in where else i
    seen: dict[str, int] = {}
    for j in range(blo, bhi):
        seen[new[j]] = -1 if new[j] in seen else j
    pairs = [(where[line], j) for line, j in seen.items() if j >= 0 and where.get(line, -1) >= 0]
    pairs.sort(key=lambda p: p[1])
    tails: list[int] = []  # for each run length, the pair ending the run with the smallest old index
    tail_old: list[int] = []
    before: list[int | None] = []
    for k, (i, _) in enumerate(pairs):
        at = bisect.bisect_left(tail_old, i)
        before.append(tails[at - 1] if at else None)
        if at == len(tails):
            tails.append(k)
            tail_old.append(i)
        else:
            tails[at], tail_old[at] = k, i
    run, k = [], tails[-1] if tails else None
    while k is not None:
        run.append(pairs[k])
        k = before[k]
    return run[::-1]


def _myers(old: list[str], new: list[str], alo: int, ahi: int, blo: int, bhi: int,
           match: dict[int, int], budget: list[int]) -> None:
    """Add to ``match`` a longest common subsequence of ``old[alo:ahi]`` and ``new[blo:bhi]``
    by Myers' O(ND) greedy algorithm ("An O(ND) Difference Algorithm and Its Variations",
    1986), or nothing once it has spent ``budget[0]`` steps (then the stretch counts as changed)."""
    n, m = ahi - alo, bhi - blo
    v = {1: 0}  # diagonal k -> the furthest x reached on it
    trace: list[dict[int, int]] = []
    for d in range(n + m + 1):
        trace.append(dict(v))
        budget[0] -= 2 * d + 3
        for k in range(-d, d + 1, 2):
            x = v[k + 1] if k == -d or (k != d and v[k - 1] < v[k + 1]) else v[k - 1] + 1
            y = x - k
            start = x
            while x < n and y < m and old[alo + x] == new[blo + y]:
                x, y = x + 1, y + 1
            budget[0] -= x - start
            v[k] = x
            if x >= n and y >= m:
                _myers_path(trace, n, m, alo, blo, match)
                return
        if budget[0] < 0:
            return


def _myers_path(trace: list[dict[int, int]], x: int, y: int, alo: int, blo: int, match: dict[int, int]) -> None:
    for d in range(len(trace) - 1, -1, -1):
        v, k = trace[d], x - y
        if d == 0:
            px = py = 0
        else:
            pk = k + 1 if k == -d or (k != d and v[k - 1] < v[k + 1]) else k - 1
            px = v[pk]
            py = px - pk
        while x > px and y > py:
            x, y = x - 1, y - 1
            match[blo + y] = alo + x
        x, y = px, py


def matched_lines(old: list[str], new: list[str]) -> dict[int, int]:
    """Which lines of ``new`` are lines of ``old`` left as they were: {new index: old index},
    both increasing. Linear time in practice and never more than O(n log n) plus
    _DIFF_WORK steps per line: the common head and tail first, then patience diff
    (lines found once on each side anchor the match; the stretches between them are
    matched the same way in turn), and a stretch without such a line by Myers' diff
    while the budget lasts; past it, the rest counts as changed. (difflib's
    SequenceMatcher, used before, is quadratic on texts with many equal lines.)"""
    match: dict[int, int] = {}
    budget = [_DIFF_WORK * (len(old) + len(new)) + 4096]
    stack = [(0, len(old), 0, len(new))]
    while stack:
        alo, ahi, blo, bhi = stack.pop()
        while alo < ahi and blo < bhi and old[alo] == new[blo]:
            match[blo] = alo
            alo, blo = alo + 1, blo + 1
        while alo < ahi and blo < bhi and old[ahi - 1] == new[bhi - 1]:
            ahi, bhi = ahi - 1, bhi - 1
            match[bhi] = ahi
        if alo == ahi or blo == bhi or budget[0] < 0:
            continue
        budget[0] -= (ahi - alo) + (bhi - blo)
        anchors = _anchors(old, new, alo, ahi, blo, bhi)
        if not anchors:
            _myers(old, new, alo, ahi, blo, bhi, match, budget)
            continue
        bounds = [(alo - 1, blo - 1), *anchors, (ahi, bhi)]
        for (i0, j0), (i1, j1) in zip(bounds, bounds[1:]):
            if i1 < ahi:
                match[j1] = i1
            stack.append((i0 + 1, i1, j0 + 1, j1))
    return match


def _line_endings(text: str, fmt: TextFormat) -> list[str] | None:
    """The ending of every "\n" of ``text``; None when all take ``fmt.newline``.

    Lines unchanged since the file was read (or last saved) keep their ending;
    edited and new lines take the majority one (see matched_lines)."""
    old = fmt.endings
    if old is None:
        return None
    n_breaks = text.count("\n")
    if text == old.text:
        ends = [fmt.newline] * n_breaks
        for k, e in old.others:
            ends[k] = e
        return ends
    old_lines = old.text.split("\n")
    old_ends = [fmt.newline] * (len(old_lines) - 1)
    for k, e in old.others:
        old_ends[k] = e
    match = matched_lines(old_lines, text.split("\n"))
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


def settled_endings(text: str, fmt: TextFormat) -> tuple[tuple[int, str], ...]:
    """(break index, ending) for every break of ``text`` that a save now would not
    give ``fmt.newline``: what an autosave keeps, so that the restored text saves
    with exactly these endings (lines untouched since the last read or save keep
    theirs; edited and new lines take the majority)."""
    ends = _line_endings(text, fmt)
    return tuple((k, e) for k, e in enumerate(ends or ()) if e != fmt.newline)


def with_endings(fmt: TextFormat, text: str, others) -> TextFormat:
    """``fmt`` describing ``text`` whose breaks listed in ``others`` ((index, ending),
    from settled_endings) have those endings; entries that do not fit are dropped."""
    n = text.count("\n")
    valid = tuple((k, e) for k, e in others
                  if isinstance(k, int) and 0 <= k < n and e in _NAMES and e != fmt.newline)
    return replace(fmt, endings=LineEndings(text, valid) if valid else None)


def stamp(data: bytes, st: os.stat_result) -> FileStamp:
    return FileStamp(st.st_mtime_ns, st.st_size, hashlib.sha256(data).hexdigest())


def _read_regular(p: Path) -> tuple[bytes, os.stat_result]:
    """The bytes of a regular file, at most MAX_BYTES; anything else is refused
    without blocking (a FIFO is opened non-blocking, and only after fstat)."""
    try:
        st = os.stat(p)
    except OSError as exc:
        raise FileError(f"Could not read {safe_write.display(p)}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise FileError(f"{safe_write.display(p.name)} is a folder, not a file.")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
        raise FileError(f"{safe_write.display(p.name)} is {kind}, not a text file; Lacuna opens regular files only.")
    if st.st_size > MAX_BYTES:
        raise FileError(f"{safe_write.display(p.name)} is {st.st_size / 1e6:.0f} MB; Lacuna opens text files up "
                        f"to {MAX_BYTES // 2**20} MB.")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(p, flags)
    except OSError as exc:
        raise FileError(f"Could not read {safe_write.display(p)}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):  # swapped for something else since the stat above
            raise FileError(f"{safe_write.display(p.name)} is not a regular file; Lacuna opens regular files only.")
        try:
            data = f.read(MAX_BYTES + 1)
        except OSError as exc:
            raise FileError(f"Could not read {safe_write.display(p)}: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise FileError(f"{safe_write.display(p.name)} is over {MAX_BYTES // 2**20} MB; Lacuna opens text files "
                        "up to that size.")
    return data, st


def open_text(path: str | os.PathLike, encoding: str | None = None) -> tuple[str, TextFormat, FileStamp]:
    """Read a text file: its text, format, and a stamp to see later changes on disk by.
    ``encoding``: see decode."""
    p = Path(path)
    real = Path(real_path(p))  # a link another user planted in /tmp is refused before anything is read
    data, st = _read_regular(real)
    text, fmt = decode(data, p.name, encoding)
    safe_write.remove_stale_temps(real.parent)  # what a killed save left beside it
    return text, fmt, stamp(data, st)


def read_text(path: str | os.PathLike) -> tuple[str, TextFormat]:
    text, fmt, _ = open_text(path)
    return text, fmt


def _current(p: Path) -> tuple[str, FileStamp | None]:
    """The file at ``p`` now: ("missing" | "unreadable" | "present", its stamp)."""
    try:
        st = os.stat(p)
    except FileNotFoundError:
        return "missing", None
    except OSError:
        return "unreadable", None
    if not stat.S_ISREG(st.st_mode):
        return "present", None
    try:
        data, st = _read_regular(p)
    except FileError:
        return "unreadable", None
    return "present", stamp(data, st)


def disk_state(path: str | os.PathLike, known: FileStamp | None) -> str:
    """How the file at ``path`` compares with ``known``: "same", "changed",
    "missing" or "unreadable". A new modification time with the same bytes
    (a touch) is "same"; ``known`` UNKNOWN_STAMP: any file there is "changed"."""
    if known is None:
        return "same"
    try:
        if os.stat(path).st_size != known.size:
            return "changed"  # no need to read it
    except OSError:
        pass  # _current says which
    state, now = _current(Path(path))
    if state != "present":
        return state
    return "same" if now is not None and known.sha256 and now.sha256 == known.sha256 else "changed"


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


# ---- saving ---------------------------------------------------------------------------------
LOCK_TIMEOUT = 10.0  # seconds a save waits for another window's or process's save of the same file
_LOCK_POLL = 0.02  # seconds between tries of a taken lock


def real_path(path: str | os.PathLike) -> str:
    """The file ``path`` names, symbolic links followed (see engine.safe_write.resolve).
    Raises FileError for a link another user made in a shared folder such as /tmp."""
    try:
        return str(safe_write.resolve(path))
    except safe_write.WriteRefused as exc:
        raise FileError(str(exc)) from None
    except OSError as exc:
        raise FileError(f"Could not find {safe_write.display(path)}: {exc.strerror or exc}") from None


def clean_stale_temps(journal: Path) -> safe_write.Cleaned:
    """At start: remove the temporary files of saves that were killed (their
    journal entry is not locked by a running save), and finish an in-place
    rewrite a crash cut short, unless the file changed since (then its safety
    copy is kept and listed in ``kept``). See engine.safe_write.clean_journal."""
    return safe_write.clean_journal(journal)


def write_text_atomic(path: str | os.PathLike, text: str, fmt: TextFormat,
                      journal: Path | None = None) -> tuple[TextFormat, FileStamp]:
    """Write atomically (engine.safe_write: temporary file in the same folder,
    fsync, rename; hard links, owner and mode kept; a symlink written through).

    Returns the format that now describes the file (line endings as written)
    and its stamp. ``journal``: a folder where the temporary file is named
    while the save runs (see clean_stale_temps). Raises CannotEncode, or
    FileError (a FIFO, device or socket at ``path``; what the OS refuses)."""
    p = Path(path)
    try:
        data, settled = encode_with_format(text, fmt)
    except UnicodeEncodeError as exc:
        raise _cannot_encode(exc, fmt) from None
    try:
        st = safe_write.write_bytes(p, data, journal=journal)
    except safe_write.WriteRefused as exc:
        raise FileError(str(exc)) from None
    except OSError as exc:
        raise FileError(f"Could not save {safe_write.display(p)}: {exc.strerror or exc}") from None
    return settled, stamp(data, st)


def _cannot_encode(exc: UnicodeEncodeError, fmt: TextFormat) -> FileError:
    bad = exc.object[exc.start:exc.end]
    line = exc.object.count("\n", 0, exc.start) + 1
    if any("\ud800" <= ch <= "\udfff" for ch in bad):  # half of a UTF-16 pair: no encoding stores it
        return FileError(f"The text holds a broken character (a lone surrogate, U+{ord(bad[0]):04X}, on line "
                         f"{line}) that no encoding can store; delete it and save again.")
    label = LABELS.get(fmt.encoding, fmt.encoding)
    return CannotEncode(f"The text cannot be saved as {label}, the file's encoding: “{bad}” (line {line}) "
                        f"has no {label} byte. Save it as UTF-8, or remove or replace it and save again.")


def _lock_key(target: Path) -> str:
    # one key for every name of the file (hard links, bind mounts); its path while it does not exist
    try:
        st = os.stat(target)
    except OSError:
        return f"path {os.fsencode(target).hex()}"
    return f"file {st.st_dev} {st.st_ino}"


@contextlib.contextmanager
def _save_lock(locks: Path | None, target: Path):
    """Hold the OS lock every Lacuna saving ``target`` takes, for the file as it
    is now (see _lock_key), or nothing where ``locks`` cannot hold a lock (the
    stamp check still runs). Raises Busy when it stays taken LOCK_TIMEOUT s.

    A save by rename gives the file a new inode, so a lock taken is checked
    against the file again, and taken anew if the key changed meanwhile. The
    lock file is removed as it is released, so ``locks`` holds only the locks
    of saves under way; a waiter that then gets the removed file tries again
    (flock(2) locks the file, not its name)."""
    deadline = time.monotonic() + LOCK_TIMEOUT
    held = None
    try:
        while held is None:
            key = _lock_key(target)
            lock = None if locks is None else _take(locks / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.lock",
                                                     deadline, target)
            if lock is None:
                break  # the state folder cannot hold it: the stamp check alone
            if _lock_key(target) == key:
                held = lock
            else:
                lock.release()
        yield
    finally:
        if held is not None:
            held.release()


class _FileLock:
    """An flock on a lock file of ours; ``release`` removes the file, then unlocks it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd

    def release(self) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)


def _take(path: Path, deadline: float, target: Path):
    """The lock at ``path`` (waiting until ``deadline``), or None where it cannot be held."""
    if safe_write.fcntl is None:  # Windows: filelock, which removes its file on release there
        from filelock import FileLock, Timeout

        lock = FileLock(str(path), timeout=max(0.0, deadline - time.monotonic()))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock.acquire()
        except Timeout:
            raise _busy(target) from None
        except OSError:
            return None
        return lock
    fcntl = safe_write.fcntl
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                raise _busy(target) from None
            time.sleep(_LOCK_POLL)
            continue
        except OSError:  # a file system without locks
            os.close(fd)
            return None
        try:
            current = os.stat(path).st_ino
        except OSError:
            current = None
        if current == os.fstat(fd).st_ino:
            return _FileLock(path, fd)
        os.close(fd)  # removed by the save that held it before: take the new one


def _busy(target: Path) -> Busy:
    return Busy(f"{safe_write.display(target.name)} is being saved by another Lacuna window or program; "
                "try Save again in a moment.")


def save_text(path: str | os.PathLike, text: str, fmt: TextFormat, expected: FileStamp | None,
              journal: Path | None = None, locks: Path | None = None) -> tuple[TextFormat, FileStamp]:
    """Save ``text`` to ``path`` unless the file there is no longer ``expected``
    (the stamp of its last read or write; None: write whatever is there, for
    Save As, whose dialog asked). Under the file's lock in ``locks``, so two
    windows or processes saving together, through any of its names, both see
    each other's write.

    Returns (format, stamp) as write_text_atomic. Raises Conflict (the file
    changed: ``current`` is its stamp, pass it as ``expected`` to overwrite that
    version), Busy (the lock stayed taken for LOCK_TIMEOUT s), CannotEncode,
    FileError."""
    target = Path(real_path(path))
    with _save_lock(locks, target):
        if expected is not None and disk_state(target, expected) == "changed":
            raise Conflict(f"{safe_write.display(target.name)} was changed by another program since Lacuna "
                           "read or saved it.", _current(target)[1])
        return write_text_atomic(target, text, fmt, journal)
