"""Run settings: a frozen dataclass, its QSettings persistence and the panel."""
from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, fields, replace

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QPushButton,
    QSpinBox, QWidget,
)

# engine.policies and engine.types are plain data and import no torch, so the GUI can use them at start-up.
from lacuna.engine.policies import POLICIES  # noqa: E402
from lacuna.engine.types import SAMPLERS  # noqa: E402,F401 - the samplers the panel offers, in its order


CACHE_LABELS = {
    "auto": "Automatic (the model's default)",
    "dual": "Dual cache (fast, approximate)",
    "none": "Off (recompute every token)",
}


def _uses_threshold(sampler: str) -> bool:
    """Whether the policy called ``sampler`` reads the threshold (tau)."""
    policy = POLICIES.find(sampler)
    return policy is not None and policy.uses_threshold


MAX_MASK_TOKENS = 4096  # with no model loaded yet


def max_mask_length(context_length: int) -> int:
    """The most tokens one mask may ask for with a model of ``context_length``
    tokens (0: unknown): a quarter of the context (at least 16 tokens) stays for
    the text around the masks, which the fill is conditioned on; a 256-token
    model takes masks of up to 192 tokens."""
    if context_length <= 0:
        return MAX_MASK_TOKENS
    return max(1, min(MAX_MASK_TOKENS, context_length - max(16, context_length // 4)))


def qsettings() -> QSettings:
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, "lacuna", "lacuna")


FIRST_RUN_KEY = "firstRun/shown"  # the first-run card (app.first_run) has been shown


def first_run_done(s: QSettings) -> bool:
    return str(s.value(FIRST_RUN_KEY, "false")).lower() in ("true", "1")


def mark_first_run_done(s: QSettings) -> None:
    s.setValue(FIRST_RUN_KEY, True)


INSTRUCTIONS_KEY = "instruct/history"  # recent instructions, newest first, as a JSON list
MAX_INSTRUCTIONS = 20


def recent_instructions(s: QSettings) -> list[str]:
    """The instructions last used (newest first, at most MAX_INSTRUCTIONS). Stored as
    one JSON string: an INI file gives a one-element list back as a bare string."""
    try:
        items = json.loads(str(s.value(INSTRUCTIONS_KEY, "[]") or "[]"))
    except (ValueError, RecursionError):  # damaged: thousands of nested brackets are a RecursionError
        return []
    if not isinstance(items, list):
        return []
    return [x for x in items if isinstance(x, str) and x.strip()][:MAX_INSTRUCTIONS]


def remember_instruction(s: QSettings, text: str) -> list[str]:
    """Put ``text`` first in the history (once: an older copy goes) and return the history."""
    items = [text] + [x for x in recent_instructions(s) if x != text]
    items = items[:MAX_INSTRUCTIONS]
    s.setValue(INSTRUCTIONS_KEY, json.dumps(items, ensure_ascii=False))
    return items


@dataclass(frozen=True)
class RunSettings:
    sampler: str = "low_confidence"
    steps: int = 16
    block_length: int = 0  # 0: one block
    temperature: float = 0.0
    top_p: float = 1.0
    random_seed: bool = True
    seed: int = 0
    threshold: float = 0.0  # 0: the model family's tau (engine.sampler.resolve_threshold)
    insertion_length: int = 8
    # a new mask's length (issue 23): True, the model chooses ("auto"); False, a
    # selection's mask is as long as its text and an insertion insertion_length tokens
    auto_length: bool = True
    candidates: int = 1
    allow_newlines: bool = False  # False: only where the masked text had a line break
    cache: str = "auto"  # "auto": the model family's default; else one of engine.types.CACHES

    def __post_init__(self) -> None:
        policy = POLICIES.find(self.sampler)
        if policy is not None:  # an older name of a policy (an alias) reads as the current one
            object.__setattr__(self, "sampler", policy.name)

    def next_seed(self, rng: random.Random | None = None) -> int:
        if not self.random_seed:
            return self.seed
        return (rng or random).randrange(0, 2**31 - 1)

    def describe(self) -> str:
        parts = [self.sampler.replace("_", " "), f"{self.steps} steps"]
        if self.block_length:
            parts.append(f"block {self.block_length}")
        parts.append(f"T={self.temperature:g}")
        if self.top_p < 1:
            parts.append(f"top-p {self.top_p:g}")
        if _uses_threshold(self.sampler):
            parts.append(f"τ={self.threshold:g}" if self.threshold else "model's τ")
        return " · ".join(parts)

    def save(self, s: QSettings) -> None:
        for k, v in asdict(self).items():
            s.setValue(f"run/{k}", v)

    @classmethod
    def load(cls, s: QSettings) -> "RunSettings":
        base = cls()
        values = {}
        for f in fields(cls):
            default = getattr(base, f.name)
            raw = s.value(f"run/{f.name}", default)
            try:
                if isinstance(default, bool):
                    v = raw if isinstance(raw, bool) else str(raw).lower() in ("true", "1", "yes")
                else:
                    v = type(default)(raw)
            except (TypeError, ValueError):
                v = default
            values[f.name] = v
        if values["sampler"] not in POLICIES:  # an older name (an alias) is renamed by __post_init__
            values["sampler"] = base.sampler
        if values["cache"] not in CACHE_LABELS:
            values["cache"] = base.cache
        return cls(**values)


class SettingsPanel(QWidget):
    """The run settings form; emits ``changed`` with a new RunSettings and persists it."""

    changed = Signal(object)

    def __init__(self, settings: RunSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("settingsPanel")
        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)

        self.sampler = QComboBox(objectName="samplerCombo")
        for policy in POLICIES:
            self.sampler.addItem(policy.label, policy.name)
        self.sampler.setToolTip("Which masked tokens to decide first at each step")
        form.addRow("Sampler", self.sampler)

        self.steps = QSpinBox(objectName="stepsSpin", minimum=1, maximum=1024)
        self.steps.setToolTip("Denoising steps: one forward pass each. More steps, fewer tokens per step.")
        form.addRow("Steps", self.steps)

        self.block = QSpinBox(objectName="blockSpin", minimum=0, maximum=4096)
        self.block.setSpecialValueText("one block")
        self.block.setToolTip("Semi-autoregressive blocks of this many masked tokens, left to right (0: one block)")
        form.addRow("Block length", self.block)

        self.temperature = QDoubleSpinBox(objectName="temperatureSpin", minimum=0.0, maximum=5.0, singleStep=0.1, decimals=2)
        self.temperature.setToolTip("0 = greedy (deterministic); higher = more varied")
        form.addRow("Temperature", self.temperature)

        self.top_p = QDoubleSpinBox(objectName="topPSpin", minimum=0.01, maximum=1.0, singleStep=0.05, decimals=2)
        self.top_p.setToolTip("Nucleus sampling: keep the smallest set of tokens with this much probability (1 = off)")
        form.addRow("Top-p", self.top_p)

        seed_row = QHBoxLayout()
        self.random_seed = QCheckBox("Random", objectName="randomSeedCheck")
        self.seed = QSpinBox(objectName="seedSpin", minimum=0, maximum=2**31 - 1)
        seed_row.addWidget(self.random_seed)
        seed_row.addWidget(self.seed, 1)
        self.random_seed.setToolTip("A new seed for every run; untick to fix the seed and get the same output again")
        form.addRow("Seed", seed_row)

        self.threshold = QDoubleSpinBox(objectName="thresholdSpin", minimum=0.0, maximum=1.0, singleStep=0.05, decimals=2)
        self.threshold.setSpecialValueText("model's τ")  # 0: the family's default (engine.sampler)
        self.threshold.setToolTip("Threshold sampler: commit every token at least this confident "
                                  "(at least one per step); at its lowest, the model family's default τ")
        form.addRow("Threshold", self.threshold)

        self.insertion = QSpinBox(objectName="insertionSpin", minimum=1, maximum=MAX_MASK_TOKENS)
        self.insertion.setSuffix(" tokens")
        self.insertion.setToolTip("Length of a mask inserted at the cursor (Ctrl+M with no selection)")
        form.addRow("Insertion length", self.insertion)

        self.auto_length = QCheckBox("The model chooses (auto)", objectName="autoLengthCheck")
        self.auto_length.setToolTip(
            "New masks get no token count: the model tries a few lengths and keeps the one it scores best "
            "(the candidates list shows the others). Unticked: a mask is as long as the text it covers and "
            "an insertion has the insertion length. Each mask's popup can change it.")
        form.addRow("New mask length", self.auto_length)

        self.candidates = QSpinBox(objectName="candidatesSpin", minimum=1, maximum=16)
        self.candidates.setToolTip("How many fills one Infill produces. At temperature 0 the first is the greedy "
                                   "fill and the others are sampled (temperature 0.8) so that they differ")
        form.addRow("Candidates", self.candidates)

        self.allow_newlines = QCheckBox("In every mask", objectName="allowNewlinesCheck")
        self.allow_newlines.setToolTip(
            "Let fills contain line breaks. Unticked: only a mask over text that had a line break may get one")
        form.addRow("Line breaks", self.allow_newlines)

        self.cache = QComboBox(objectName="cacheCombo")
        for name, label in CACHE_LABELS.items():
            self.cache.addItem(label, name)
        self.cache.setToolTip("Context cache: keep the keys/values of the text around the masks between steps "
                              "(Fast-dLLM's dual cache), refreshed at every block. Much faster on long "
                              "documents; may differ slightly from recomputing everything. LLaDA, Dream and "
                              "LLaDA-MoE have it (on by default); other models recompute.")
        form.addRow("Context cache", self.cache)

        self.reset = QPushButton("Restore defaults", objectName="resetSettingsButton")
        form.addRow(self.reset)

        self._loading = False
        self.set_settings(settings)
        for w in (self.sampler, self.cache):
            w.currentIndexChanged.connect(self._emit)
        for w in (self.steps, self.block, self.temperature, self.top_p, self.seed, self.threshold,
                  self.insertion, self.candidates):
            w.valueChanged.connect(self._emit)
        self.random_seed.toggled.connect(self._emit)
        self.allow_newlines.toggled.connect(self._emit)
        self.auto_length.toggled.connect(self._emit)
        self.reset.clicked.connect(lambda: (self.set_settings(RunSettings()), self._emit()))

    @property
    def max_mask_length(self) -> int:
        """The most tokens a mask may ask for with the loaded model."""
        return self.insertion.maximum()

    def set_context_length(self, context_length: int) -> None:
        """Bound the insertion length by the loaded model's context (see
        max_mask_length). The length the user chose comes back when a model
        with a longer context is loaded."""
        self._loading = True
        try:
            self.insertion.setMaximum(max_mask_length(context_length))
            self.insertion.setValue(self._insertion_wanted)
        finally:
            self._loading = False
        self.insertion.setToolTip(
            "Length of a mask inserted at the cursor (Ctrl+M with no selection); at most "
            f"{self.insertion.maximum()} tokens, so the model's context keeps room for the text around it")
        self._emit()

    def set_settings(self, s: RunSettings) -> None:
        self._insertion_wanted = s.insertion_length  # kept while a short-context model clamps the spin
        self._loading = True
        try:
            self.sampler.setCurrentIndex(max(0, self.sampler.findData(s.sampler)))
            self.steps.setValue(s.steps)
            self.block.setValue(s.block_length)
            self.temperature.setValue(s.temperature)
            self.top_p.setValue(s.top_p)
            self.random_seed.setChecked(s.random_seed)
            self.seed.setValue(s.seed)
            self.seed.setEnabled(not s.random_seed)
            self.threshold.setValue(s.threshold)
            self.threshold.setEnabled(_uses_threshold(s.sampler))
            self.insertion.setValue(s.insertion_length)
            self.auto_length.setChecked(s.auto_length)
            self.candidates.setValue(s.candidates)
            self.allow_newlines.setChecked(s.allow_newlines)
            self.cache.setCurrentIndex(max(0, self.cache.findData(s.cache)))
        finally:
            self._loading = False

    def settings(self) -> RunSettings:
        return RunSettings(
            sampler=self.sampler.currentData(),
            steps=self.steps.value(),
            block_length=self.block.value(),
            temperature=round(self.temperature.value(), 4),
            top_p=round(self.top_p.value(), 4),
            random_seed=self.random_seed.isChecked(),
            seed=self.seed.value(),
            threshold=round(self.threshold.value(), 4),
            insertion_length=self.insertion.value(),
            auto_length=self.auto_length.isChecked(),
            candidates=self.candidates.value(),
            allow_newlines=self.allow_newlines.isChecked(),
            cache=self.cache.currentData(),
        )

    def use_seed(self, seed: int, **changes) -> None:
        """"Reuse seed": fix the seed to a candidate's (and ``changes``, such as the
        temperature it was sampled at)."""
        self.set_settings(replace(self.settings(), random_seed=False, seed=int(seed),
                                  insertion_length=self._insertion_wanted, **changes))
        self._emit()

    def _emit(self, *_: object) -> None:
        if self._loading:
            return
        if self.sender() is self.insertion:
            self._insertion_wanted = self.insertion.value()
        self.seed.setEnabled(not self.random_seed.isChecked())
        self.threshold.setEnabled(_uses_threshold(self.sampler.currentData()))
        s = self.settings()
        # what the user chose is kept, not what a short-context model clamps it to
        replace(s, insertion_length=self._insertion_wanted).save(qsettings())
        self.changed.emit(s)
