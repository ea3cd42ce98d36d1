"""Keep every fill valid UTF-8 when tokens carry pieces of characters.

Byte-level BPE (GPT-2, RoBERTa, ModernBERT, Qwen) and SentencePiece with byte
fallback (Llama, LLaDA) split a rare character over several tokens: 日 may be
the three tokens E6, 97, A5. A masked diffusion LM fills those slots
independently and in any order, so nothing stops it from writing E6 next to
"the", which decodes to U+FFFD.

The guard runs the UTF-8 decoder's automaton (Unicode 15, table 3-7: the
states after a lead byte, with the narrower second-byte ranges after E0, ED,
F0 and F4) over each span's slots. Before a step, for every still-masked slot
it computes the decoder states the committed tokens on its left can leave
(forward reachability, where a masked slot may be any token) and the states
from which the tokens on its right can still end the span on a character
boundary (backward reachability); a token is allowed in the slot only if it
takes some left state to some right state. Most tokens are whole text and
take the boundary state to itself; only the "partial" tokens (a few hundred
in a 50k vocabulary) need the table. When several slots of one span commit
in the same step, their tokens are checked one after another and a token
that no longer fits is replaced by the best one that does (from the same
logits), so every completed span decodes without U+FFFD. Spans start and end
on character boundaries (the canvas tokenises them from whole strings), so
the whole document stays valid text.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

ACCEPT, N1, N2, N3, E0, ED, F0, F4, REJECT = range(9)
STATES = 8
_ACC = 1 << ACCEPT


def step(state: int, byte: int) -> int:
    """One transition of the UTF-8 decoding automaton."""
    if state == ACCEPT:
        if byte < 0x80:
            return ACCEPT
        if 0xC2 <= byte <= 0xDF:
            return N1
        if byte == 0xE0:
            return E0
        if byte == 0xED:
            return ED
        if 0xE1 <= byte <= 0xEF:
            return N2
        if byte == 0xF0:
            return F0
        if 0xF1 <= byte <= 0xF3:
            return N3
        if byte == 0xF4:
            return F4
        return REJECT
    low, high = {E0: (0xA0, 0xBF), ED: (0x80, 0x9F), F0: (0x90, 0xBF), F4: (0x80, 0x8F)}.get(state, (0x80, 0xBF))
    if not (low <= byte <= high):
        return REJECT
    return {N1: ACCEPT, N2: N1, N3: N2, E0: N1, ED: N1, F0: N2, F4: N2}[state]


def run(state: int, data: bytes) -> int:
    for b in data:
        state = step(state, b)
        if state == REJECT:
            break
    return state


@dataclass(frozen=True)
class Table:
    """The partial tokens of a vocabulary: ``ids`` LongTensor [P] and
    ``trans`` LongTensor [P, 8], the state each leaves from each state
    (REJECT = 8). ``dead`` lists tokens that fit nowhere; ``reach[s]`` is the
    bit set of states some token (whole or partial) leads to from state s.
    State sets are 8-bit masks (bit s: state s)."""

    ids: torch.Tensor
    trans: torch.Tensor
    index: dict[int, int]
    rows: tuple[tuple[int, ...], ...]
    dead: tuple[int, ...]
    reach: tuple[int, ...]
    any_fwd: tuple[int, ...]  # [256]: states after any token from each state set
    any_bwd: tuple[int, ...]  # [256]: states from which some token reaches each state set

    @classmethod
    def build(cls, partial: dict[int, bytes]) -> "Table":
        kept, rows, dead = [], [], []
        for i in sorted(partial):
            row = tuple(run(s, partial[i]) for s in range(STATES))
            if all(r == REJECT for r in row):
                dead.append(i)
            else:
                kept.append(i)
                rows.append(row)
        reach = [0] * STATES
        reach[ACCEPT] |= _ACC  # whole tokens
        for row in rows:
            for s, r in enumerate(row):
                if r != REJECT:
                    reach[s] |= 1 << r
        reach = tuple(reach)
        # Any token from / into each of the 256 state sets: the masked slots'
        # transitions, looked up instead of looped over on every step.
        any_fwd = tuple(_image(lambda s: reach[s], states) for states in range(1 << STATES))
        any_bwd = tuple(sum(1 << s for s in range(STATES) if reach[s] & after) for after in range(1 << STATES))
        return cls(
            ids=torch.tensor(kept, dtype=torch.long),
            trans=torch.tensor(rows, dtype=torch.long).reshape(-1, STATES),
            index={i: k for k, i in enumerate(kept)},
            rows=tuple(rows), dead=tuple(dead), reach=reach, any_fwd=any_fwd, any_bwd=any_bwd,
        )

    def forward(self, token: int | None, states: int) -> int:
        """States after ``token`` (None: any token) from the set ``states``."""
        if token is None:
            return self.any_fwd[states]
        k = self.index.get(token)
        if k is None:
            return _ACC if states & _ACC else 0
        out = 0
        for s, r in enumerate(self.rows[k]):
            if states >> s & 1 and r != REJECT:
                out |= 1 << r
        return out

    def backward(self, token: int | None, after: int) -> int:
        """States from which ``token`` (None: some token) reaches the set ``after``."""
        if token is None:
            return self.any_bwd[after]
        k = self.index.get(token)
        if k is None:
            return _ACC if after & _ACC else 0
        out = 0
        for s, r in enumerate(self.rows[k]):
            if r != REJECT and after >> r & 1:
                out |= 1 << s
        return out


def _image(step_of, states: int) -> int:
    out = 0
    for s in range(STATES):
        if states >> s & 1:
            out |= step_of(s)
    return out


class Guard:
    """The automaton over a run's slots. ``span_slots`` are the slot indices of
    each span (document order); ``tokens[j]`` a slot's id, None while masked."""

    def __init__(self, table: Table, span_slots, slot_span, tokens: list[int | None]):
        self.table = table
        self.span_slots = span_slots
        self.slot_span = slot_span
        self.tokens = list(tokens)
        self.where = {}
        for slots in span_slots:
            for q, j in enumerate(slots):
                self.where[j] = q
        self.has_partial = [any(self._partial(self.tokens[j]) for j in slots) for slots in span_slots]
        self._dense: torch.Tensor | None = None
        self._pairs: dict[tuple, torch.Tensor] = {}
        # Per span: its (fwd, bwd) reachability, valid until a slot of it commits.
        self._spans: dict[int, tuple[list[int], list[int]]] = {}

    def _partial(self, token: int | None) -> bool:
        return token is not None and token in self.table.index

    def _bounds(self, span: int) -> tuple[list[int], list[int]]:
        known = self._spans.get(span)
        if known is None:
            known = self._spans[span] = self._reach(span)
        return known

    def _reach(self, span: int) -> tuple[list[int], list[int]]:
        slots = self.span_slots[span]
        n = len(slots)
        fwd = [_ACC] * (n + 1)
        for q, j in enumerate(slots):
            fwd[q + 1] = self.table.forward(self.tokens[j], fwd[q])
        bwd = [_ACC] * (n + 1)
        for q in range(n - 1, -1, -1):
            bwd[q] = self.table.backward(self.tokens[slots[q]], bwd[q + 1])
        return fwd, bwd

    def _allowed_partial(self, before: int, after: int) -> torch.Tensor:
        """BoolTensor [P]: the partial tokens that lead from a state in
        ``before`` to one in ``after`` (cached: few pairs occur in a run)."""
        key = (before, after)
        allowed = self._pairs.get(key)
        if allowed is None:
            fvec = torch.tensor([before >> s & 1 for s in range(STATES)], dtype=torch.bool)
            bvec = torch.tensor([after >> s & 1 for s in range(STATES)] + [0], dtype=torch.bool)
            allowed = self._pairs[key] = (bvec[self.table.trans] & fvec).any(dim=1)
        return allowed

    def _whole(self, n_rows: int, device) -> torch.Tensor:
        if self._dense is None or self._dense.numel() != n_rows:
            dense = torch.ones(n_rows, dtype=torch.bool)
            dense[self.table.ids] = False
            self._dense = dense.to(device)
        return self._dense

    def restrict(self, logits: torch.Tensor, rows: list[int]) -> torch.Tensor:
        """In place: forbid (-inf) in each row of ``logits`` [m, V] (row r is
        slot ``rows[r]``) every token that cannot be part of a valid completion."""
        bounds: dict[int, tuple[list[int], list[int]]] = {}
        groups: dict[tuple[int, int], list[int]] = {}
        for r, j in enumerate(rows):
            span = self.slot_span[j]
            if span not in bounds:
                bounds[span] = self._bounds(span)
            fwd, bwd = bounds[span]
            q = self.where[j]
            groups.setdefault((fwd[q], bwd[q + 1]), []).append(r)
        device = logits.device
        everyone = len(groups) == 1
        for (before, after), members in groups.items():
            # One group holding every row (the usual case) needs no row index.
            index = slice(None) if everyone else torch.tensor(members, dtype=torch.long, device=device)
            if not (before & _ACC and after & _ACC):  # inside a character: no whole token fits
                logits[index] = logits[index].masked_fill(self._whole(logits.shape[1], device), float("-inf"))
            banned = self._banned(before, after, device)
            if banned.numel():
                if everyone:
                    logits.index_fill_(1, banned, float("-inf"))
                else:
                    logits[index.unsqueeze(1), banned.unsqueeze(0)] = float("-inf")
        return logits

    def _banned(self, before: int, after: int, device) -> torch.Tensor:
        """LongTensor: the partial tokens that cannot lead from ``before`` to
        ``after``, on ``device`` (cached per pair and device)."""
        key = (before, after, str(device))
        banned = self._pairs.get(key)
        if banned is None:
            banned = self._pairs[key] = self.table.ids[~self._allowed_partial(before, after)].to(device)
        return banned

    def commit(self, rows: list[int], tokens: list[int], logits: torch.Tensor) -> list[int]:
        """Commit ``tokens`` into slots ``rows`` in this order; a token that no
        longer fits (a neighbour committed in this same step) is replaced by
        the best-scoring token of its row in ``logits`` [k, V] that does.
        Returns the tokens as committed."""
        out = []
        for r, (j, token) in enumerate(zip(rows, tokens)):
            span = self.slot_span[j]
            partial = self._partial(token)
            if partial or self.has_partial[span]:
                fwd, bwd = self._bounds(span)
                q = self.where[j]
                if not (self.table.forward(token, fwd[q]) & bwd[q + 1]):
                    row = logits[r].clone()
                    self.restrict(row.unsqueeze(0), [j])
                    token = int(row.argmax())
                    partial = self._partial(token)
            self.tokens[j] = token
            self._spans.pop(span, None)
            self.has_partial[span] = self.has_partial[span] or partial
            out.append(token)
        return out
