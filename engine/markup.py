"""The CLI's hole markup: ``[[N]]`` inserts N new tokens, ``[[?]]`` inserts
as many as the model chooses (an "auto" length), ``[[~N]]`` about N tokens,
``[[some text]]`` regenerates that text with its own token count, ``\\[[`` is
a literal ``[[``."""
from __future__ import annotations

import re

from .errors import InputError
from .types import AUTO, Span

MAX_HOLE = 100_000  # tokens; far beyond any context Lacuna runs, small enough to refuse before loading
_COUNT = re.compile(r"[+-]?[0-9]+")


def parse(marked: str) -> tuple[str, list[Span]]:
    """Return the plain text and its spans (lengths None = the covered text's own).

    ``[[N]]`` needs 1 <= N <= MAX_HOLE written with the digits 0-9; a signed
    count, or one written with other digit characters (``[[²]]``, ``[[٣]]``)
    is refused, as is any count past MAX_HOLE in total. ``[[?]]`` is an
    insertion of length "auto"; ``[[~N]]`` one of about N tokens (length
    ``"~N"``, engine.types.Span), N under the rules of ``[[N]]`` and counted
    in the total. Raises InputError.
    """
    out: list[str] = []
    spans: list[Span] = []
    pos = 0  # in the plain text
    holes = 0  # new tokens asked for so far
    i = 0
    n = len(marked)
    while i < n:
        if marked.startswith("\\[[", i):
            out.append("[[")
            pos += 2
            i += 3
            continue
        if marked.startswith("[[", i):
            close = marked.find("]]", i + 2)
            if close < 0:
                raise InputError(f"unclosed [[ at character {i}")
            body = marked[i + 2 : close]
            if "[[" in body:
                raise InputError(f"nested [[ at character {i + 2 + body.index('[[')}")
            about = body.startswith("~")
            count_text = body[1:] if about else body
            if body == "?":
                spans.append(Span(pos, pos, length=AUTO))
            elif _COUNT.fullmatch(count_text):
                digits = count_text.lstrip("+-").lstrip("0") or "0"
                count = int(digits) if len(digits) <= 9 else MAX_HOLE + 1
                if count_text.startswith("-") or count < 1:
                    raise InputError(f"[[{_cut(body)}]] at character {i}: a hole needs a count of "
                                      f"at least 1 token")
                if count > MAX_HOLE or holes + count > MAX_HOLE:
                    raise InputError(f"[[{_cut(body)}]] at character {i} asks for too many tokens: "
                                      f"at most {MAX_HOLE} in all")
                holes += count
                spans.append(Span(pos, pos, length=f"~{count}" if about else count))
            elif about and not count_text:
                raise InputError(f"[[~]] at character {i} has no count: write [[~N]] for about N tokens, "
                                  f"or [[?]] to let the model choose")
            elif (count_text.strip() == count_text and count_text
                  and all(c.isdigit() or c.isnumeric() for c in count_text)):
                example = "[[~3]]" if about else "[[3]]"
                raise InputError(f"[[{_cut(body)}]] at character {i} is not a count: write the number "
                                  f"of tokens with the digits 0-9, e.g. {example}")
            else:
                if not body:
                    raise InputError(f"empty [[]] at character {i}: write [[N]] for N new tokens, "
                                      f"or [[?]] to let the model choose how many")
                spans.append(Span(pos, pos + len(body)))
                out.append(body)
                pos += len(body)
            i = close + 2
            continue
        out.append(marked[i])
        pos += 1
        i += 1
    return "".join(out), spans


def _cut(text: str, limit: int = 20) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
