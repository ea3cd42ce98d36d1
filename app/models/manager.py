"""ModelManager: one per application; owns the download and verify workers.

Each download runs ``engine.hub.download.pull`` in a QObject worker moved to
its own QThread. Only immutable data crosses threads (PullProgress, Outcome,
tuples of ModelInfo/Fit). Downloads go on when the Model manager window is
closed; :meth:`shutdown` (connected to QCoreApplication.aboutToQuit) pauses
them, keeping partial files for the next start, and joins the threads with
quit() and wait(); it never terminates a thread.
"""
from __future__ import annotations

import atexit
import logging
import threading
import traceback
import weakref
from dataclasses import dataclass, field, replace
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from .sizing import FitWorker, RowFacts, Sizing

log = logging.getLogger(__name__)
_MANAGERS: "weakref.WeakSet[ModelManager]" = weakref.WeakSet()


@atexit.register
def _shutdown_all() -> None:
    """Join worker threads before the interpreter (and Qt) go away, even without aboutToQuit."""
    for manager in list(_MANAGERS):
        try:
            manager.shutdown()
        except RuntimeError:  # the C++ object is already gone
            pass


@dataclass(frozen=True)
class Outcome:
    """How a job ended: state is installed | paused | cancelled | failed | consent | verified | corrupt | removed."""

    name: str
    state: str
    message: str = ""
    commit: str | None = None
    consent: str | None = None               # "remote_code" | "pickle" when state == "consent"
    files: tuple[tuple[str, int, str], ...] = ()  # (path, size, sha256) of code files / pickle names


@dataclass(frozen=True)
class Live:
    """What the manager knows about a row right now (beyond what is on disk)."""

    state: str                      # downloading | paused | failed | verifying | verified | corrupt
    progress: Any = None            # the last PullProgress
    message: str = ""


class DownloadWorker(QObject):
    progress = Signal(str, object)   # (name, PullProgress)
    done = Signal(object)            # Outcome

    def __init__(self, name: str, revision: str | None, options: Any, pause: threading.Event,
                 cancel: threading.Event) -> None:
        super().__init__()
        self._name = name
        self._revision = revision
        self._options = options
        self._pause = pause
        self._cancel = cancel

    @Slot()
    def run(self) -> None:
        from lacuna.engine.errors import LacunaError
        from lacuna.engine.hub.manage import pull_with_companions as pull
        from lacuna.engine.hub.errors import Cancelled, Paused, PickleConsentRequired, RemoteCodeConsentRequired

        name = self._name
        try:
            record = pull(name, self._revision, progress=lambda p: self.progress.emit(name, p),
                          cancel=self._cancel, pause=self._pause, options=self._options)
            outcome = Outcome(name, "installed", f"installed and verified ({record['commit'][:12]})",
                              record["commit"])
        except Paused as err:
            outcome = Outcome(name, "paused", str(err))
        except Cancelled as err:
            outcome = Outcome(name, "cancelled", str(err))
        except RemoteCodeConsentRequired as err:
            outcome = Outcome(name, "consent", str(err), err.commit, "remote_code",
                              tuple((f["path"], int(f["size"]), f["sha256"]) for f in err.files))
        except PickleConsentRequired as err:
            outcome = Outcome(name, "consent", str(err), err.commit, "pickle",
                              tuple((p, 0, "") for p in err.files))
        except LacunaError as err:
            outcome = Outcome(name, "failed", str(err))
        except Exception as err:  # noqa: BLE001 - a worker must always report back
            log.error("download of %s failed:\n%s", name, traceback.format_exc())
            outcome = Outcome(name, "failed", f"{type(err).__name__}: {err}")
        self.done.emit(outcome)


class VerifyWorker(QObject):
    done = Signal(object)  # Outcome

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name

    @Slot()
    def run(self) -> None:
        from lacuna.engine.hub.manage import verify

        try:
            report = verify(self._name)
            state = "verified" if report.ok else "corrupt"
            outcome = Outcome(self._name, state, report.message(), report.commit)
        except Exception as err:  # noqa: BLE001
            outcome = Outcome(self._name, "failed", str(err))
        self.done.emit(outcome)


@dataclass
class _Job:
    thread: QThread
    worker: QObject
    pause: threading.Event = field(default_factory=threading.Event)
    cancel: threading.Event = field(default_factory=threading.Event)


class ModelManager(QObject):
    """Downloads, verifies and deletes models for the whole app; create it once (see :meth:`instance`)."""

    modelsChanged = Signal()               # the list of rows may have changed
    rowChanged = Signal(str)               # one row's state or progress changed
    progress = Signal(str, object)         # (name, PullProgress)
    jobFinished = Signal(object)           # Outcome
    consentNeeded = Signal(object)         # Outcome with state "consent"
    fitsReady = Signal()

    _instance: "ModelManager | None" = None

    def __init__(self, parent: QObject | None = None, *, options: Any = None, devices: Any = None,
                 rate: float | None = None) -> None:
        super().__init__(parent)
        self._options = options
        self._devices = devices
        self._rate = rate  # this machine's FLOP/s for the speeds (tests); None: measured (engine.hub.advice)
        self._jobs: dict[str, _Job] = {}
        self._live: dict[str, Live] = {}
        self._models: list[Any] = []
        self._fits: dict[str, tuple] = {}
        self._device_list: tuple = ()
        self._fit_job: _Job | None = None
        self._work: Any = None
        self._card_gb: float | None = None
        self._sizing = Sizing()
        self._card_fits: dict[str, tuple] = {}
        self._facts: dict[str, RowFacts] = {}
        self._closing = False
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        _MANAGERS.add(self)
        self.refresh()

    @classmethod
    def instance(cls) -> "ModelManager":
        """The application's manager (created on first use, parented to the QApplication)."""
        if cls._instance is None:
            cls._instance = cls(QCoreApplication.instance())
            cls._instance.destroyed.connect(lambda *_: setattr(cls, "_instance", None))
        return cls._instance

    # ------------------------------------------------------------ listing
    def refresh(self) -> None:
        """Re-read what is on disk (offline)."""
        from lacuna.engine.hub.manage import list_models

        try:
            self._models = list_models()
        except Exception:  # noqa: BLE001
            log.error("listing models failed:\n%s", traceback.format_exc())
            self._models = []
        self.modelsChanged.emit()

    def models(self) -> list[Any]:
        return list(self._models)

    def model(self, name: str) -> Any | None:
        return next((m for m in self._models if m.id == name), None)

    def live(self, name: str) -> Live | None:
        return self._live.get(name)

    def is_active(self, name: str) -> bool:
        return name in self._jobs

    def fits(self, name: str) -> tuple:
        return self._fits.get(name, ())

    def devices(self) -> tuple:
        return self._device_list

    def card_fits(self, name: str) -> tuple:
        """The verdicts on the GPU card size picked with :meth:`set_card` (empty without one)."""
        return self._card_fits.get(name, ())

    def facts(self, name: str) -> RowFacts:
        """Description, download size and seconds per fill of a row (empty until computed)."""
        return self._facts.get(name, RowFacts())

    def sizing(self) -> Sizing:
        """The last sizing pass: devices, rate, the best model here and on the card."""
        return self._sizing

    def best(self) -> Any:
        """lacuna.engine.hub.advice.Advice: the best model for this machine, or None (not computed yet)."""
        return self._sizing.best

    def marked(self) -> str | None:
        """The id the window marks ★: the best model, or, when that is the bundled demonstration,
        the quickest model that writes (Advice.alternative)."""
        best = self._sizing.best
        if best is None:
            return None
        if best.bundled and best.alternative is not None:
            return best.alternative.id
        return best.id

    def card_gb(self) -> float | None:
        return self._card_gb

    def set_card(self, gb: float | None) -> None:
        """Size the models up for a GPU of ``gb`` GB as well (None: this machine only)."""
        gb = float(gb) if gb else None
        if gb == self._card_gb:
            return
        self._card_gb = gb
        self._card_fits = {}
        self.compute_fits()

    def status_text(self, name: str) -> str:
        info = self.model(name)
        live = self._live.get(name)
        if live is not None:
            if live.state == "downloading":
                p = live.progress
                if p is None or p.phase == "resolving":
                    return "starting…"
                if p.phase == "verifying" and p.done >= p.total:
                    return "verifying…"
                return p.describe()
            if live.state == "paused":
                p = live.progress
                return f"paused at {int(p.fraction * 100)}%" if p is not None and p.total else "paused"
            if live.state == "verifying":
                return "verifying…"
            if live.state == "failed":
                return f"failed: {live.message}"
            if live.state in ("verified", "corrupt") and info is not None and info.status in ("installed", "corrupt"):
                return live.state
        if info is None:
            return ""
        return {"installed": "installed", "corrupt": "corrupt", "available": "available",
                "partial": "paused (partly downloaded)", "bundled": "bundled", "local": "local folder",
                "cached": "in the HF cache", "missing": "missing"}.get(info.status, info.status)

    # ------------------------------------------------------------ fit
    def work(self) -> Any:
        """The document the verdicts are for (app.models.document.DocumentWork), or None."""
        return self._work

    def set_work(self, work: Any) -> None:
        """Size the verdicts up for ``work`` (None: each model's whole context); recomputes them when it changed."""
        if work == self._work:
            return
        self._work = work
        self.compute_fits()

    def compute_fits(self) -> None:
        """Fit verdicts for every row, on a worker thread (detecting CUDA imports torch)."""
        if self._closing:
            return
        if self._fit_job is not None:
            self._fits_dirty = True
            return
        self._fits_dirty = False
        worker = FitWorker(tuple(m.id for m in self._models), self._devices, self._work, self._card_gb, self._rate)
        worker.fitted.connect(self._on_sized)
        job = self._start(worker, None)
        self._fit_job = job
        worker.done.connect(self._on_fits)

    @Slot(object)
    def _on_sized(self, sizing: Sizing) -> None:
        """The verdicts of a pass, before its speeds: shown at once."""
        self._take(sizing)
        self.fitsReady.emit()

    @Slot(object)
    def _on_fits(self, sizing: Sizing) -> None:
        self._take(sizing)
        job, self._fit_job = self._fit_job, None
        self._join(job)
        if getattr(self, "_fits_dirty", False):
            self.compute_fits()
        self.fitsReady.emit()

    def _take(self, sizing: Sizing) -> None:
        if not sizing.devices:  # the pass failed: keep what was shown
            return
        if not sizing.timed and self._sizing.timed:  # keep the last speeds until the new ones come
            facts = {n: replace(f, seconds=self._facts.get(n, f).seconds) for n, f in sizing.facts}
            sizing = replace(sizing, facts=tuple(facts.items()), rate=self._sizing.rate, best=self._sizing.best,
                             card_best=self._sizing.card_best if sizing.card == self._sizing.card else None)
        self._sizing = sizing
        self._device_list = sizing.devices
        self._fits.update(dict(sizing.fits))
        self._card_fits = dict(sizing.card_fits)
        self._facts.update(dict(sizing.facts))

    # ------------------------------------------------------------ actions
    def download(self, name: str, *, revision: str | None = None, trust_remote_code: bool = False,
                 allow_pickle: bool = False) -> bool:
        """Start (or resume) a download; False if one is already running or we are closing."""
        if name in self._jobs or self._closing:
            return False
        from lacuna.engine.hub.download import PullOptions

        from lacuna.engine.hub import catalog

        if catalog.catalog_entry(name) is None and catalog.is_repo_id(name):
            catalog.add_user_entry(name)  # so the download has a row in the table
            self.refresh()
            self.compute_fits()
        options = self._options or PullOptions()
        if trust_remote_code or allow_pickle:
            options = replace(options, trust_remote_code=trust_remote_code or options.trust_remote_code,
                              allow_pickle=allow_pickle or options.allow_pickle)
        pause, cancel = threading.Event(), threading.Event()
        worker = DownloadWorker(name, revision, options, pause, cancel)
        worker.progress.connect(self._on_progress)
        worker.done.connect(self._on_done)
        self._live[name] = Live("downloading", self._live.get(name, Live("")).progress)
        self._jobs[name] = self._start(worker, name, pause, cancel)
        self.rowChanged.emit(name)
        return True

    resume = download

    def pause(self, name: str) -> None:
        job = self._jobs.get(name)
        if job is not None:
            job.pause.set()

    def cancel(self, name: str) -> None:
        job = self._jobs.get(name)
        if job is not None:
            job.cancel.set()
            return
        from lacuna.engine.hub.download import discard_partials

        discard_partials(name)
        self._live.pop(name, None)
        self.refresh()
        self.rowChanged.emit(name)

    def verify(self, name: str) -> bool:
        if name in self._jobs or self._closing:
            return False
        worker = VerifyWorker(name)
        worker.done.connect(self._on_done)
        self._live[name] = Live("verifying")
        self._jobs[name] = self._start(worker, name)
        self.rowChanged.emit(name)
        return True

    def delete(self, name: str) -> str:
        """Remove an installed model (quick: unlinks files). Returns a message."""
        if name in self._jobs:
            return f"{name} is busy; pause or cancel it first"
        from lacuna.engine.hub.download import discard_partials
        from lacuna.engine.hub.errors import NotInstalled
        from lacuna.engine.hub.fmt import human_bytes
        from lacuna.engine.hub.manage import remove

        try:
            freed = remove(name)
            message = f"{name} removed ({human_bytes(freed)} freed)"
        except NotInstalled as err:
            freed = discard_partials(name)
            message = f"{name}: partial files removed" if freed else str(err)
        self._live.pop(name, None)
        self.refresh()
        self.rowChanged.emit(name)
        return message

    def add(self, spec: str) -> str:
        """Add a Hub repo id or a local folder to the user's catalog; returns its id."""
        from lacuna.engine.hub.catalog import add_user_entry

        entry = add_user_entry(spec)
        self.refresh()
        self.compute_fits()
        return entry["id"]

    def grant_remote_code(self, outcome: Outcome) -> None:
        """The user agreed to the custom code listed in ``outcome``: remember it, download on."""
        from lacuna.engine.hub import records

        records.grant_consent(outcome.name if "/" in outcome.name else self._repo(outcome.name),
                              outcome.commit or "",
                              [{"path": p, "size": s, "sha256": h} for p, s, h in outcome.files])
        self.download(outcome.name)

    def _repo(self, name: str) -> str:
        from lacuna.engine.hub.catalog import repo_for

        return repo_for(name) or name

    # ------------------------------------------------------------ threads
    def _start(self, worker: QObject, name: str | None, pause: threading.Event | None = None,
               cancel: threading.Event | None = None) -> _Job:
        thread = QThread(self)
        thread.setObjectName(f"lacuna-model-{name or 'fit'}")
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.done.connect(thread.quit)
        # The worker has no Qt parent, so Python owns it: the job keeps it alive until
        # thread.wait() has returned, then drops it (no deleteLater, which would race
        # with PySide's own deletion of an unparented wrapper).
        job = _Job(thread, worker, pause or threading.Event(), cancel or threading.Event())
        thread.start()
        return job

    def _finish_job(self, name: str) -> None:
        self._join(self._jobs.pop(name, None))

    @staticmethod
    def _join(job: _Job | None) -> None:
        if job is not None:
            job.thread.quit()
            job.thread.wait()
            job.thread.deleteLater()

    @Slot(str, object)
    def _on_progress(self, name: str, p: Any) -> None:
        if name in self._jobs:
            self._live[name] = Live("downloading", p)
        self.progress.emit(name, p)
        self.rowChanged.emit(name)

    @Slot(object)
    def _on_done(self, outcome: Outcome) -> None:
        name = outcome.name
        self._finish_job(name)
        last = self._live.get(name)
        if outcome.state == "paused":
            self._live[name] = Live("paused", last.progress if last else None, outcome.message)
        elif outcome.state in ("failed",):
            self._live[name] = Live("failed", None, outcome.message)
        elif outcome.state in ("verified", "corrupt"):
            self._live[name] = Live(outcome.state, None, outcome.message)
        else:
            self._live.pop(name, None)
        self.refresh()
        self.rowChanged.emit(name)
        if outcome.state == "installed":
            self.compute_fits()
        self.jobFinished.emit(outcome)
        if outcome.state == "consent":
            self.consentNeeded.emit(outcome)

    @Slot()
    def shutdown(self) -> None:
        """Pause every download (partials kept), then join all threads: quit() and wait()."""
        self._closing = True
        jobs = list(self._jobs.values()) + ([self._fit_job] if self._fit_job else [])
        for job in jobs:
            job.pause.set()
        for job in jobs:
            job.thread.quit()
            job.thread.wait()
        self._jobs.clear()
        self._retired = jobs  # dropped with the manager, after every thread has ended
        self._fit_job = None
