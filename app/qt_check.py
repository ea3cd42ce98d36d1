"""Can Qt open a window here? Answered before Qt is loaded, in one line.

Qt aborts the process (exit 134, a core dump) when its xcb platform plugin
misses a system library or when the X display cannot be reached, and its own
message then blames libxcb-cursor0 whatever is missing. This module reads the
plugin's ELF dependencies (DT_NEEDED, following Qt's own libraries inside the
PySide6 package), asks the dynamic loader for each system library, and opens
a test connection to the display through libxcb, so the user learns exactly
which libraries to install, or that the display is unreachable. Standard
library only: nothing here imports Qt.
"""
from __future__ import annotations

import ctypes
import importlib.util
import re
import struct
import sys
import threading
from collections.abc import Callable
from pathlib import Path

DT_NEEDED = 1
SHT_DYNAMIC = 6
CONNECT_TIMEOUT_S = 5.0


def elf_needed(path: Path) -> list[str]:
    """The DT_NEEDED entries (library sonames) of an ELF shared object, in order.

    Reads the section headers, the .dynamic section and the string table it
    links to; 32- and 64-bit, either byte order. ValueError for a file that is
    not ELF."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF":
        raise ValueError(f"{path} is not an ELF file")
    wide = data[4] == 2
    order = "<" if data[5] == 1 else ">"
    if wide:
        shoff, = struct.unpack_from(order + "Q", data, 0x28)
        shentsize, shnum = struct.unpack_from(order + "HH", data, 0x3A)
        section = order + "IIQQQQIIQQ"  # name type flags addr offset size link info align entsize
        entry = order + "qQ"
    else:
        shoff, = struct.unpack_from(order + "I", data, 0x20)
        shentsize, shnum = struct.unpack_from(order + "HH", data, 0x2E)
        section = order + "IIIIIIIIII"
        entry = order + "iI"
    headers = [struct.unpack_from(section, data, shoff + i * shentsize) for i in range(shnum)]
    needed = []
    for header in headers:
        if header[1] != SHT_DYNAMIC:
            continue
        offset, size, link = header[4], header[5], header[6]
        strtab = headers[link][4]
        step = struct.calcsize(entry)
        for at in range(offset, offset + size, step):
            tag, value = struct.unpack_from(entry, data, at)
            if tag == 0:
                break
            if tag == DT_NEEDED:
                end = data.index(b"\0", strtab + value)
                needed.append(data[strtab + value:end].decode("utf-8", "replace"))
    return needed


def xcb_plugin() -> Path | None:
    """PySide6's xcb platform plugin, found without importing Qt (None if absent)."""
    spec = importlib.util.find_spec("PySide6")
    for root in (spec.submodule_search_locations or []) if spec else []:
        plugin = Path(root) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
        if plugin.is_file():
            return plugin
    return None


def _loads(name: str) -> str | None:
    """None when the dynamic loader can load ``name`` (and what it needs), else the
    soname it could not find."""
    try:
        ctypes.CDLL(name)
        return None
    except OSError as exc:
        bundle = getattr(sys, "_MEIPASS", None)  # a frozen bundle may carry the library itself
        if bundle is not None and any(Path(bundle).rglob(name)):
            return None
        found = re.match(r"([^:\s]+\.so[.\d]*): cannot open shared object file", str(exc))
        return found.group(1) if found else name


def missing_libraries(plugin: Path, loads: Callable[[str], str | None] = _loads) -> list[str]:
    """System libraries the plugin needs that the loader cannot find, in first-need order.

    Qt's own libraries (beside the plugin in the PySide6 package) are followed, not
    loaded; every other soname is asked of ``loads`` (returns the missing soname, or None)."""
    qt_lib = plugin.parent.parent.parent / "lib"
    seen: set[str] = set()
    missing: list[str] = []

    def visit(path: Path) -> None:
        try:
            names = elf_needed(path)
        except (OSError, ValueError, struct.error):
            return
        for name in names:
            if name in seen:
                continue
            seen.add(name)
            if (qt_lib / name).is_file():
                visit(qt_lib / name)
                continue
            lost = loads(name)
            if lost is not None and lost not in missing:
                missing.append(lost)

    visit(plugin)
    return missing


def debian_package(soname: str) -> str:
    """Debian's package name for a library soname (its library packaging policy):
    libxcb-icccm.so.4 -> libxcb-icccm4, libxkbcommon-x11.so.0 -> libxkbcommon-x11-0."""
    m = re.fullmatch(r"(lib[\w+.-]*?)\.so\.(\d+)(?:\.[\d.]+)?", soname)
    if not m:
        return soname
    stem, version = m.group(1).lower().replace("_", "-"), m.group(2)
    return f"{stem}-{version}" if stem[-1].isdigit() else f"{stem}{version}"


def x_display_error(display: str) -> str | None:
    """Why libxcb cannot connect to ``display`` (None when it can); bounded in time."""
    try:
        xcb = ctypes.CDLL("libxcb.so.1")
    except OSError:
        return None  # reported as a missing library instead
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    result: dict[str, int] = {}

    def connect() -> None:
        conn = xcb.xcb_connect(display.encode(), None)
        result["error"] = xcb.xcb_connection_has_error(conn) if conn else 1
        if conn:
            xcb.xcb_disconnect(conn)

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(CONNECT_TIMEOUT_S)
    if worker.is_alive():
        return f"no answer from it within {CONNECT_TIMEOUT_S:g} s"
    if result.get("error"):
        return "the connection was refused (is the X server running, and may this user use it?)"
    return None


def display_problem(env, platform: str = sys.platform, plugin: Path | None = None,
                    loads: Callable[[str], str | None] = _loads,
                    display_error: Callable[[str], str | None] = x_display_error) -> str | None:
    """Why Qt could not open a window here, in one line starting "lacuna: ", or None."""
    if not platform.startswith("linux") or env.get("QT_QPA_PLATFORM"):
        return None
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        return ("lacuna: no display found (neither DISPLAY nor WAYLAND_DISPLAY is set); start it in a "
                "desktop session, or use `lacuna --self-test` or `lacuna-cli` without one")
    if env.get("WAYLAND_DISPLAY"):
        return None
    plugin = plugin or xcb_plugin()
    missing = missing_libraries(plugin, loads) if plugin is not None else []
    if missing:
        names = " and ".join([", ".join(missing[:-1]), missing[-1]] if len(missing) > 1 else missing)
        packages = " ".join(debian_package(m) for m in missing)
        return (f"lacuna: Qt cannot open a window on X11: the system {'libraries' if len(missing) > 1 else 'library'} "
                f"{names} {'are' if len(missing) > 1 else 'is'} missing; install "
                f"{'them' if len(missing) > 1 else 'it'} (Debian/Ubuntu: sudo apt install {packages})")
    why = display_error(env["DISPLAY"])
    if why is not None:
        return (f"lacuna: cannot open the X display {env['DISPLAY']!r}: {why}; or use `lacuna --self-test` "
                "or `lacuna-cli` without a display")
    return None
