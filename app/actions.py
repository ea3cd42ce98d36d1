"""The window's actions, menus and toolbar (with the model picker), wired to its controllers."""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import QComboBox, QLabel, QMessageBox, QToolBar, QWidget

from .infill_controller import INSTRUCT_TIP
from .model_controller import OPEN_FOLDER, STARTER

if TYPE_CHECKING:
    from .window import MainWindow

HELP = (
    "1. Open a text (Ctrl+O) or type one.\n"
    "2. Select words and press Ctrl+M to mask them; with no selection Ctrl+M inserts a mask "
    "at the cursor. Double-click a mask to set its length and strength.\n"
    "3. Press Ctrl+Enter: the model fills every mask, token by token. With an instruction-tuned "
    "model, Ctrl+Shift+M asks for the fill in words: type what you want (\u201cmake it more formal\u201d) "
    "and press Enter.\n"
    "4. Enter keeps the fill, Esc discards it, Ctrl+R samples again. Ctrl+Z undoes an accepted fill.\n"
    "5. Save with Ctrl+S.")
INSTRUCT_KEYS = "Ctrl+Shift+M"
ABOUT = ("Lacuna — fill masked spans of text with masked diffusion language models, "
         "and watch every token resolve.")


def show_help(parent: QWidget) -> None:
    QMessageBox.information(parent, "How to use Lacuna", HELP)


def about_text() -> str:
    from lacuna.engine import __version__

    return f"Lacuna {__version__}\n\n{ABOUT}"


def show_about(parent: QWidget) -> None:
    QMessageBox.about(parent, "About Lacuna", about_text())


def make_action(w: QWidget, text: str, name: str, slot=None, shortcut=None, tip: str = "",
                checkable: bool = False) -> QAction:
    a = QAction(text, w, objectName=name)
    if shortcut is not None:
        if isinstance(shortcut, (list, tuple)):
            a.setShortcuts([QKeySequence(s) for s in shortcut])
        else:
            a.setShortcut(QKeySequence(shortcut))
    if tip:
        a.setStatusTip(tip)
        keys = a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        a.setToolTip(f"{tip} ({keys})" if keys else tip)
    a.setCheckable(checkable)
    if slot is not None:
        a.triggered.connect(slot)
    w.addAction(a)  # on the window, so the shortcuts work wherever the focus is
    return a


def build_actions(w: MainWindow) -> None:
    """Create the actions as attributes of ``w``, then the menus and the toolbar that show them."""
    _file_menu(w)
    _edit_menu(w)
    _infill_menu(w)
    mm = w.menuBar().addMenu("&Model")
    w.model_manager_action = make_action(w, "Model &Manager…", "modelManagerAction", w.models.open_model_manager,
                                         tip="Download and manage models")
    w.open_model_folder_action = make_action(w, "Open Model &Folder…", "openModelFolderAction",
                                             w.models.choose_model_folder, tip="Load a model from a local folder")
    mm.addActions([w.model_manager_action, w.open_model_folder_action])
    v = w.menuBar().addMenu("&View")
    for d in (w.denoise_dock, w.cand_dock, w.settings_dock):
        v.addAction(d.toggleViewAction())
    h = w.menuBar().addMenu("&Help")
    h.addAction(make_action(w, "&How to use Lacuna", "helpAction", lambda: show_help(w),
                            QKeySequence.StandardKey.HelpContents))
    h.addAction(make_action(w, "&About Lacuna", "aboutAction", lambda: show_about(w)))
    _toolbar(w)
    w.files.rebuild_recent()


def _file_menu(w: MainWindow) -> None:
    K, files = QKeySequence.StandardKey, w.files
    m = w.menuBar().addMenu("&File")
    w.new_action = make_action(w, "&New", "newAction", files.new_file, K.New)
    w.open_action = make_action(w, "&Open…", "openAction", files.open_dialog, K.Open)
    w.recent_menu = m.addMenu("Open &Recent")
    w.recent_menu.setObjectName("recentMenu")
    w.reopen_encoding_action = make_action(
        w, "Reopen with &Encoding…", "reopenEncodingAction", lambda: files.reopen_with_encoding(),
        tip="Read the file again as UTF-8, UTF-16, Windows-1252 or Latin-1; saving keeps that encoding")
    w.save_action = make_action(w, "&Save", "saveAction", files.save, K.Save)
    w.save_as_action = make_action(w, "Save &As…", "saveAsAction", files.save_as, K.SaveAs)
    w.recover_action = make_action(w, "Recover &Unsaved Work…", "recoverAction", files.offer_recovery,
                                   tip="Offer the autosaves of windows that did not close properly")
    w.quit_action = make_action(w, "&Quit", "quitAction", w.close, K.Quit)
    m.insertAction(w.recent_menu.menuAction(), w.new_action)
    m.insertAction(w.recent_menu.menuAction(), w.open_action)
    m.addAction(w.reopen_encoding_action)
    m.addSeparator()
    m.addActions([w.save_action, w.save_as_action])
    m.addSeparator()
    m.addAction(w.recover_action)
    m.addSeparator()
    m.addAction(w.quit_action)


def _edit_menu(w: MainWindow) -> None:
    K, ed = QKeySequence.StandardKey, w.editor
    e = w.menuBar().addMenu("&Edit")
    w.undo_action = make_action(w, "&Undo", "undoAction", ed.undo, K.Undo)
    w.redo_action = make_action(w, "&Redo", "redoAction", ed.redo, [K.Redo, "Ctrl+Y"])
    w.cut_action = make_action(w, "Cu&t", "cutAction", ed.cut, K.Cut)
    w.copy_action = make_action(w, "&Copy", "copyAction", w.copy, K.Copy)
    w.paste_action = make_action(w, "&Paste", "pasteAction", ed.paste, K.Paste)
    w.select_all_action = make_action(w, "Select &All", "selectAllAction", ed.selectAll, K.SelectAll)
    w.find_action = make_action(w, "&Find…", "findAction", lambda: w.findbar.open(False), K.Find)
    w.replace_action = make_action(w, "Find and &Replace…", "replaceAction", lambda: w.findbar.open(True), "Ctrl+H")
    e.addActions([w.undo_action, w.redo_action])
    e.addSeparator()
    e.addActions([w.cut_action, w.copy_action, w.paste_action, w.select_all_action])
    e.addSeparator()
    e.addActions([w.find_action, w.replace_action])
    w.undo_action.setEnabled(False)
    w.redo_action.setEnabled(False)


def _infill_menu(w: MainWindow) -> None:
    infill = w.infill
    i = w.menuBar().addMenu("&Infill")
    i.setToolTipsVisible(True)  # a disabled "Fill with instruction…" says why on hover
    w.mask_action = make_action(w, "&Mask Selection", "maskAction", infill.mask_selection, "Ctrl+M",
                                "Mask the selected text (or insert a mask at the cursor)")
    w.instruct_action = make_action(w, "Fill with I&nstruction…", "instructAction", infill.fill_with_instruction,
                                    INSTRUCT_KEYS, INSTRUCT_TIP)
    # the action is disabled for a model without a chat template; the same keys then say why
    w.instruct_refusal_shortcut = QShortcut(QKeySequence(INSTRUCT_KEYS), w, infill.say_refusal,
                                            objectName="instructRefusalShortcut")
    w.instruct_refusal_shortcut.setEnabled(False)
    w.clear_masks_action = make_action(w, "C&lear Masks", "clearMasksAction", infill.clear_masks,
                                       "Ctrl+Shift+Backspace", "Remove every mask")
    w.infill_action = make_action(w, "&Infill", "infillAction", lambda: infill.start(False),
                                  ["Ctrl+Return", "Ctrl+Enter"], "Fill the masks with the model")
    w.stop_action = make_action(w, "&Stop", "stopAction", infill.stop, "Esc", "Stop the run and restore the text")
    w.accept_action = make_action(w, "&Accept", "acceptAction", infill.accept, ["Return", "Enter"],
                                  "Keep the previewed fill (one undo step)")
    w.reject_action = make_action(w, "&Reject", "rejectAction", infill.reject, "Esc", "Discard the fill")
    w.regenerate_action = make_action(w, "Re&generate", "regenerateAction", lambda: infill.start(True),
                                      "Ctrl+R", "Sample new fills (new seeds; at temperature 0 sampled at 0.8 so they differ)")
    w.tint_action = make_action(w, "Confidence &Tint", "tintAction", infill.toggle_tint, "Ctrl+T",
                                "Tint the accepted tokens by confidence until the next edit", checkable=True)
    w.tint_action.setChecked(w.s.value("view/tint", True) in (True, "true"))
    i.addActions([w.mask_action, w.instruct_action, w.clear_masks_action])
    i.addSeparator()
    i.addActions([w.infill_action, w.stop_action, w.accept_action, w.reject_action, w.regenerate_action])
    i.addSeparator()
    i.addAction(w.tint_action)


def _toolbar(w: MainWindow) -> None:
    tb = QToolBar("Infill", w, objectName="mainToolbar")
    tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    tb.setMovable(False)
    w.addToolBar(tb)
    tb.addActions([w.open_action, w.save_action])
    tb.addSeparator()
    tb.addActions([w.mask_action, w.clear_masks_action, w.infill_action, w.stop_action,
                   w.accept_action, w.reject_action, w.regenerate_action, w.tint_action])
    tb.addSeparator()
    tb.addWidget(QLabel(" Model "))
    w.model_picker = QComboBox(objectName="modelPicker")
    w.model_picker.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
    w.model_picker.setMinimumContentsLength(14)
    w.model_picker.setToolTip("The model that fills the masks")
    w.model_picker.addItem("Lacuna starter", STARTER)
    w.model_picker.addItem("Open folder…", OPEN_FOLDER)
    tb.addWidget(w.model_picker)
    w.model_picker.activated.connect(w.models.on_picker_activated)
