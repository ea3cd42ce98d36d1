"""The Qt binding the app runs on must not leak or steal references.

shiboken6/PySide6 6.12.0 on CPython 3.11 drops one reference to None on every
call of a Qt method that returns nothing; the count reaches zero after some
tens of thousands of calls and the interpreter aborts (none_dealloc), so an
idle window with a blinking cursor dies within half an hour. pyproject.toml
excludes that release below Python 3.12 (None is immortal from 3.12 on).
"""
import sys

from PySide6.QtCore import QRect


def test_void_qt_calls_keep_the_reference_count_of_none():
    rect = QRect()
    rect.setLeft(1)  # warm the method's binding
    before = sys.getrefcount(None)
    for i in range(2000):
        rect.setLeft(i)
    lost = before - sys.getrefcount(None)
    # other code may hold or free a few references meanwhile; the bug loses 2000
    assert abs(lost) < 100, f"{lost} references to None lost over 2000 void Qt calls"
