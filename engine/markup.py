"""The CLI's hole markup: ``[[N]]`` inserts N new tokens, ``[[some text]]``
regenerates that text with its own token count, ``\\[[`` is a literal ``[[``."""
from __future__ import annotations

from .errors import InputError
from .types import Span


def parse(marked: str) -> tuple[str, list[Span]]:
    """Return the plain text and its spans (lengths None = the covered text's own)."""
    out: list[str] = []
    spans: list[Span] = []
    pos = 0  # in the plain text
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
            if body.strip().isdigit() and body.strip() == body:
                count = int(body)
                if count < 1:
                    raise InputError(f"[[{body}]] asks for no tokens; a hole needs at least 1")
                spans.append(Span(pos, pos, length=count))
            else:
                if not body:
                    raise InputError(f"empty [[]] at character {i}: write [[N]] for N new tokens")
                spans.append(Span(pos, pos + len(body)))
                out.append(body)
                pos += len(body)
            i = close + 2
            continue
        out.append(marked[i])
        pos += 1
        i += 1
    return "".join(out), spans
