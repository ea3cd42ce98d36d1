#!/bin/sh
# Per-user desktop integration for Lacuna on Linux: a menu entry, the icon, the
# AppStream metainfo and "Open with Lacuna" for plain text and Markdown files.
#
#   sh install.sh [--exec PATH] [--default]   install (PATH: the lacuna program;
#                                             default: the bundle beside this
#                                             script, else `lacuna` on PATH)
#   sh install.sh --uninstall                 remove exactly what install wrote
#
# --default also makes Lacuna the default application for text/plain and
# text/markdown (xdg-mime). Nothing is written outside $XDG_DATA_HOME
# (~/.local/share); no root needed.
set -eu

ID=io.github.lacuna_editor.Lacuna
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=${XDG_DATA_HOME:-$HOME/.local/share}
APPS=$DATA/applications
ICONS=$DATA/icons/hicolor
META=$DATA/metainfo
SIZES="16 24 32 48 64 128 256 512"

refresh() {
    command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$APPS" || true
    command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$ICONS" 2>/dev/null || true
}

if [ "${1:-}" = "--uninstall" ]; then
    rm -f "$APPS/$ID.desktop" "$META/$ID.metainfo.xml" "$ICONS/scalable/apps/$ID.svg"
    for s in $SIZES; do rm -f "$ICONS/${s}x${s}/apps/$ID.png"; done
    refresh
    echo "Lacuna's menu entry, icon and file associations are removed."
    exit 0
fi

EXEC=""
DEFAULT=no
while [ $# -gt 0 ]; do
    case "$1" in
        --exec) EXEC=$2; shift 2 ;;
        --default) DEFAULT=yes; shift ;;
        *) echo "install.sh: unknown option $1 (use --exec PATH, --default or --uninstall)" >&2; exit 2 ;;
    esac
done
if [ -z "$EXEC" ]; then
    if [ -x "$HERE/../lacuna" ]; then EXEC=$(cd "$HERE/.." && pwd)/lacuna      # inside the bundle
    elif command -v lacuna >/dev/null 2>&1; then EXEC=$(command -v lacuna)  # pip install
    else echo "install.sh: no lacuna program found; pass --exec PATH" >&2; exit 1
    fi
fi
[ -x "$EXEC" ] || { echo "install.sh: $EXEC is not an executable program" >&2; exit 1; }

# The icon: PNGs rendered by packaging/make_icons.py (shipped in the bundle as
# icons/ beside this script, or packaging/build/icons in a checkout), the SVG source.
PNGS=""
for d in "$HERE/icons" "$HERE/../build/icons"; do [ -f "$d/lacuna-256.png" ] && PNGS=$d && break; done
SVG=""
for f in "$HERE/../_internal/resources/icons/lacuna.svg" "$HERE/../../resources/icons/lacuna.svg"; do
    [ -f "$f" ] && SVG=$f && break
done
[ -n "$PNGS$SVG" ] || { echo "install.sh: the icon files are missing beside $HERE" >&2; exit 1; }

mkdir -p "$APPS" "$META"
# Desktop Entry Exec values quote paths with spaces in double quotes.
sed -e "s|^Exec=lacuna |Exec=\"$EXEC\" |" -e "s|^TryExec=lacuna\$|TryExec=$EXEC|" \
    "$HERE/$ID.desktop" > "$APPS/$ID.desktop"
cp "$HERE/$ID.metainfo.xml" "$META/$ID.metainfo.xml"
if [ -n "$SVG" ]; then mkdir -p "$ICONS/scalable/apps" && cp "$SVG" "$ICONS/scalable/apps/$ID.svg"; fi
if [ -n "$PNGS" ]; then
    for s in $SIZES; do
        [ -f "$PNGS/lacuna-$s.png" ] && mkdir -p "$ICONS/${s}x${s}/apps" && cp "$PNGS/lacuna-$s.png" "$ICONS/${s}x${s}/apps/$ID.png"
    done
fi
refresh
if [ "$DEFAULT" = yes ] && command -v xdg-mime >/dev/null 2>&1; then
    xdg-mime default "$ID.desktop" text/plain text/markdown
fi
echo "Lacuna is in your applications menu (runs $EXEC); uninstall with: sh $0 --uninstall"
