"""The open document as the Model manager sizes it up: its tokens, its masked tokens, the run settings.

The fit verdicts (engine.hub.fit.fit_model) and the seconds per fill
(engine.hub.advice.fill_seconds) are for the same work, the work the editor
will do: a canvas of the document's tokens, each mask's tokens in place of the
text it covers, with the masked tokens scored at once (all of them, or one
block), under the run settings (steps, cache, candidates, sampling, top-p).
Without a document, or before its first mask, both are for a typical fill,
engine.hub.advice.TYPICAL: a sentence (32 masked tokens) in a 512-token
document, the editor's usual work. The tokens are counted by the loaded
model's tokenizer; with no model loaded, as the characters / 4 (about right
for English under a BPE tokenizer). Plain data, made on the GUI thread and
handed to the fit worker.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Beyond this many characters the rest of a document is counted as characters / 4:
# it is past every model's context anyway, and tokenizing megabytes would stall the window.
COUNT_LIMIT = 1 << 18


@dataclass(frozen=True)
class DocumentWork:
    tokens: int           # canvas tokens: the text's, with each mask's tokens in place of what it covers
    hole: int | None      # masked tokens scored at once (None: no mask yet, the fit check's default)
    masked: int           # masked tokens in all
    counted_by: str       # the tokenizer that counted, or "" for characters / 4
    cache: bool | None = None
    candidates: int = 1
    sampling: bool = False
    top_p: bool = False
    steps: int = 16
    block: int = 0        # the run's block length (0: one block)

    def advice_work(self) -> Any:
        """lacuna.engine.hub.advice.Work for this document: its tokens, all its masked tokens (a
        sentence's worth before the first mask), the run's steps, block and settings."""
        from lacuna.engine.hub.advice import TYPICAL, Work

        return Work(context=self.tokens, hole=self.masked or TYPICAL.hole, steps=self.steps, cache=self.cache,
                    candidates=self.candidates, block=self.block, sampling=self.sampling, top_p=self.top_p)

    def fit_kwargs(self) -> dict[str, Any]:
        """fit_model's keywords for this work."""
        return self.advice_work().fit_kwargs()

    def describe(self) -> str:
        """One line for the window: what the verdicts and speeds are for."""
        from lacuna.engine.hub.advice import TYPICAL

        how = (f"counted by {self.counted_by}'s tokenizer" if self.counted_by
               else "counted as characters / 4: no model is loaded")
        size = f"{self.tokens:,} tokens" if self.counted_by else f"about {self.tokens:,} tokens"
        masks = (f"{self.masked:,} masked" if self.masked
                 else f"no mask yet, sized with a {TYPICAL.hole}-token one (a sentence)")
        return f"Verdicts and speeds for the open document: {size} ({how}), {masks}, {self.steps} steps"


def typical_text() -> str:
    """What the verdicts and speeds are for when no document is open."""
    from lacuna.engine.hub.advice import TYPICAL

    return (f"Verdicts and speeds for a typical fill (no document open): a sentence of {TYPICAL.hole} masked "
            f"tokens in a {TYPICAL.context}-token document, {TYPICAL.steps} steps")


def from_window(window: Any) -> DocumentWork | None:
    """The work of ``window``'s open document (the main window: its editor, loaded
    model and run settings), or None when there is no window or the document is empty."""
    editor = getattr(window, "editor", None)
    if editor is None:
        return None
    from lacuna.app.positions import document_text

    text = document_text(editor.document())
    masks = sorted(getattr(editor, "masks", []), key=lambda m: (m.start, m.end))
    if not text.strip() and not masks:
        return None
    from lacuna.app.settings import RunSettings

    settings = getattr(window, "run_settings", None) or RunSettings()
    model = getattr(getattr(window, "models", None), "model", None)
    info = getattr(getattr(window, "models", None), "model_info", None)
    count, exact = _counter(model)
    masked = 0
    covered = 0
    for m in masks:
        span = count(text[m.start:m.end]) if m.end > m.start else 0
        covered += span
        masked += m.length or (settings.insertion_length if m.insertion else span)
    block = settings.block_length
    hole = (min(masked, block) if block else masked) if masked else None
    return DocumentWork(
        tokens=max(1, count(text) - covered + masked), hole=hole, masked=masked,
        counted_by=(getattr(info, "name", None) or "the loaded model") if exact else "",
        cache={"dual": True, "none": False}.get(settings.cache),
        candidates=max(1, int(settings.candidates)),
        # candidates after the first sample (app.seeds.VARIETY_TEMPERATURE) when the run is greedy
        sampling=settings.temperature > 0 or settings.candidates > 1,
        top_p=settings.top_p < 1,
        steps=max(1, int(settings.steps)),
        block=max(0, int(block or 0)),
    )


def _counter(model: Any):
    """(tokens of a text, whether they are the tokenizer's): by the loaded model's
    tokenizer when it counts, else characters / 4."""
    def rough(text: str) -> int:
        return (len(text) + 3) // 4

    tokenizer = model.tokenizer if model is not None else None
    if tokenizer is None:
        return rough, False
    from lacuna.engine.models import vocab

    def exact(text: str) -> int:
        if not text:
            return 0
        return len(vocab.encode(tokenizer, text[:COUNT_LIMIT])) + rough(text[COUNT_LIMIT:])

    try:
        exact("a")
    except Exception:  # noqa: BLE001 - a tokenizer that cannot count: the characters still give a size
        return rough, False
    return exact, True
