"""Files to text: a web page's main text, PDFs page by page (OCR for scanned pages), Word, and plain text."""

from __future__ import annotations

import codecs
import functools
import hashlib
import json
import logging
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from memory.workspace import atomic_write_text
from tools.data.sources import HTML_SUFFIXES, PDF_SUFFIXES, WORD_SUFFIXES
from tools.progress import Progress

if TYPE_CHECKING:
    from PIL import Image

OCR_INSTALL_HINT = "install Tesseract (apt-get install tesseract-ocr) and pytesseract to read them"
REFUSAL_REASONS = {
    "binary": "binary content under a text suffix",
    "undecodable": "text in no encoding that could be detected",
    "encrypted": "password-protected",
    "corrupt": "damaged or not the format its suffix says",
    "scanned": "only scanned pages, and no OCR",
    "no_text": "no text found",
}
"""Why extract refuses a file; the keys are what ingest counts it under."""
_SCANNED_PAGE_CHARS = 16  # fewer visible characters than this on a page with an image: a scan (maybe a page number)
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


@dataclass
class Document:
    """One source document as text, headings kept as Markdown `#` lines where the format has them."""

    id: str
    """Content hash; equal texts share an id and are kept once."""
    title: str
    """Heading, document title or file name."""
    text: str
    """The text; after `tools.data.clean`, normalised and PII-scrubbed."""
    source: str
    """Where it came from (a path, or builtin:NAME)."""
    modified: str = ""
    """When the file was last modified (ISO 8601, UTC); empty for built-in corpora."""
    language: str = ""
    """ISO 639-1 code detected by `tools.data.clean`; empty until cleaned."""


def make_document(title: str, text: str, source: str, modified: str = "", language: str = "") -> Document:
    """A Document whose id is the hash of its stripped text."""
    text = text.strip()
    return Document(hashlib.sha256(text.encode()).hexdigest()[:16], title.strip(), text, source, modified, language)


class Unreadable(Exception):
    """A file extract refuses; `reason` is one of REFUSAL_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass
class Extracted:
    """One file's text and what could not be read of it."""

    document: Document
    ocr_pages: int = 0
    """PDF pages without a text layer read by OCR."""
    ocr_cached_pages: int = 0
    """PDF pages without a text layer whose OCR text came from the OCR cache instead of Tesseract."""
    scanned_pages_skipped: int = 0
    """PDF pages without a text layer left out because OCR is not installed."""


@dataclass
class Extraction:
    """What `extract_files` read, and every file it refused with the reason."""

    documents: list[Document] = field(default_factory=list)
    refused: dict[str, list[str]] = field(default_factory=dict)
    """reason (a REFUSAL_REASONS key) → the files refused for it."""
    ocr_pages: int = 0
    ocr_cached_pages: int = 0
    scanned_pages_skipped: int = 0

    def counts(self) -> dict[str, int]:
        return {reason: len(files) for reason, files in self.refused.items()}

    def notes(self) -> list[str]:
        """One sentence per kind of refusal, and one for scanned pages, for the person reading the trace."""
        notes = []
        for reason, files in self.refused.items():
            more = f" and {len(files) - 3} more" if len(files) > 3 else ""
            names = ", ".join(Path(f).name for f in files[:3]) + more
            notes.append(f"Skipped {len(files)} file(s) ({REFUSAL_REASONS[reason]}): {names}.")
        if self.scanned_pages_skipped:
            notes.append(f"Skipped {self.scanned_pages_skipped} scanned PDF page(s) that have no text layer; "
                         f"{OCR_INSTALL_HINT}.")
        if self.ocr_pages or self.ocr_cached_pages:
            cached = f", {self.ocr_cached_pages} of them from the OCR cache" if self.ocr_cached_pages else ""
            notes.append(f"Read {self.ocr_pages + self.ocr_cached_pages} scanned PDF page(s) with OCR (Tesseract)"
                         f"{cached}; check them for misreads.")
        return notes


def extract_files(files: list[Path], *, ocr: bool = True, ocr_cache: Path | None = None,
                  progress: Progress | None = None) -> Extraction:
    """Read every file, counting the ones refused by reason instead of reading them as text.

    `progress("extract", done, total)` follows the files. OCR is the slow part (seconds a scanned page), so
    with `ocr_cache` (a folder, see OcrCache) each page's OCR text is kept there and an interrupted or repeated
    extraction OCRs no page twice. Nothing else is kept between calls: it is simply read again (about 20 ms a
    web page).
    """
    result = Extraction()
    report = progress or (lambda stage, done, total: None)
    report("extract", 0, len(files))
    for n, file in enumerate(files, 1):
        _extract_into(result, file, ocr, ocr_cache)
        report("extract", n, len(files))
    return result


def _extract_into(result: Extraction, file: Path, ocr: bool, ocr_cache: Path | None) -> None:
    try:
        extracted = extract_file(file, ocr=ocr, ocr_cache=ocr_cache)
    except Unreadable as refusal:
        result.refused.setdefault(refusal.reason, []).append(str(file))
        return
    result.ocr_pages += extracted.ocr_pages
    result.ocr_cached_pages += extracted.ocr_cached_pages
    result.scanned_pages_skipped += extracted.scanned_pages_skipped
    if extracted.document.text:
        result.documents.append(extracted.document)
    else:
        reason = "scanned" if extracted.scanned_pages_skipped else "no_text"
        result.refused.setdefault(reason, []).append(str(file))


def extract_file(path: Path, *, ocr: bool = True, ocr_cache: Path | None = None) -> Extracted:
    """The text of one file by its suffix (any other suffix is read as plain text); raises Unreadable."""
    suffix = path.suffix.lower()
    modified = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
    pages = (0, 0, 0)
    if suffix in PDF_SUFFIXES:
        title, text, pages = pdf_text(path, ocr=ocr, ocr_cache=ocr_cache)
    elif suffix in WORD_SUFFIXES:
        title, text = docx_text(path)
    elif suffix in HTML_SUFFIXES:
        title, text = html_text(decode_text(path.read_bytes()))
    else:
        text = decode_text(path.read_bytes())
        title = first_heading(text) or ""
    title = title or path.stem.replace("-", " ").replace("_", " ")
    return Extracted(make_document(title, text, str(path), modified), *pages)


def decode_text(raw: bytes) -> str:
    """Bytes as text: a BOM's encoding, else UTF-8, else the detected one; binary data is refused."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            return raw.decode(encoding, errors="replace")
    if b"\x00" in raw:
        raise Unreadable("binary", "NUL bytes: binary data, not text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    import charset_normalizer

    matches = list(charset_normalizer.from_bytes(raw))
    if not matches:
        raise Unreadable("undecodable", "no text encoding fits these bytes")
    best = matches[0]
    # Latin-alphabet text often fits several Western code pages equally well; cp1252 (a superset of
    # latin-1's printable range) is by far the commonest of them, so it wins a tie.
    for match in matches:
        if (match.chaos, match.coherence) == (best.chaos, best.coherence) and "cp1252" in match.could_be_from_charset:
            return raw.decode("cp1252", errors="replace")
    return str(best)


def html_text(raw: str) -> tuple[str, str]:
    """(title, main text as Markdown) of a web page: navigation, headers, footers and scripts are dropped."""
    if not re.search(r"<[a-zA-Z!/]", raw):  # no markup at all: a text file that happens to be named .html
        return first_heading(raw) or "", raw
    import trafilatura

    # trafilatura logs an ERROR for every page it finds no main text in; the fallback below handles those.
    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    text = trafilatura.extract(raw, output_format="markdown", include_formatting=True, include_tables=True,
                               include_links=False, include_images=False, include_comments=False)
    metadata = trafilatura.extract_metadata(raw)
    text = text or trafilatura.html2txt(raw)  # a page too small to tell content from furniture: all its text
    title = (metadata.title if metadata else None) or first_heading(text) or ""
    return title, text


def pdf_text(path: Path, *, ocr: bool = True, ocr_cache: Path | None = None) -> tuple[str, str, tuple[int, int, int]]:
    """(title, text, (pages read by OCR, pages whose OCR text came from `ocr_cache`, scanned pages skipped)) of a
    PDF, its pages separated by blank lines."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        pdf = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as err:
        locked = getattr(err, "err_code", None) in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY)
        raise Unreadable("encrypted" if locked else "corrupt", str(err)) from err
    use_ocr = ocr and ocr_available()
    cache = OcrCache(ocr_cache) if ocr_cache is not None else None
    texts, ocr_pages, cached_pages, skipped = [], 0, 0, 0
    try:
        title = (pdf.get_metadata_dict().get("Title") or "").removeprefix("Microsoft Word - ")
        for page in pdf:
            text = page.get_textpage().get_text_bounded().replace("\r\n", "\n")
            scanned = len("".join(text.split())) < _SCANNED_PAGE_CHARS and any(
                page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=2))
            if scanned and use_ocr:
                text, cached = ocr_page(page, cache=cache)
                if cached:
                    cached_pages += 1
                else:
                    ocr_pages += 1
            elif scanned:
                skipped += 1
            texts.append(text.strip())
    except pdfium.PdfiumError as err:
        raise Unreadable("corrupt", str(err)) from err
    finally:
        pdf.close()
    # A title equal to the file name (as PIL and some scanners write it) says nothing.
    title = "" if title.strip() == path.stem else title
    return title, "\n\n".join(t for t in texts if t), (ocr_pages, cached_pages, skipped)


def ocr_available() -> bool:
    """Tesseract on PATH and pytesseract importable."""
    import importlib.util

    return shutil.which("tesseract") is not None and importlib.util.find_spec("pytesseract") is not None


def ocr_page(page: object, dpi: int = 300, lang: str = "eng", *, cache: OcrCache | None = None) -> tuple[str, bool]:
    """A PDF page's text read by Tesseract from a `dpi` rendering, and whether it came from `cache` instead."""
    import pytesseract

    image = page.render(scale=dpi / 72).to_pil()  # type: ignore[attr-defined]
    if cache is None:
        return pytesseract.image_to_string(image, lang=lang), False
    key = ocr_cache_key(image, dpi, lang, _tesseract_version())
    cached = cache.get(key)
    if cached is not None:
        return cached, True
    text = pytesseract.image_to_string(image, lang=lang)
    cache.put(key, text)
    return text, False


@functools.cache
def _tesseract_version() -> str:
    """Asked once a process: each call starts `tesseract --version`."""
    import pytesseract

    return str(pytesseract.get_tesseract_version())


def ocr_cache_key(image: Image.Image, dpi: int, lang: str, tesseract_version: str) -> str:
    """The OCR cache key of a rendered page: its pixels (so an edited or replaced PDF misses, and the same page
    in another file hits), the rendering's dpi, the language and the Tesseract version that reads it."""
    digest = hashlib.sha256(json.dumps([tesseract_version, dpi, lang, image.mode, image.size]).encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


class OcrCache:
    """A folder of page texts read by Tesseract, one `<key>.json` per page (see `ocr_cache_key`).

    Entries are written atomically (temp file and rename), so a killed process leaves no half entry; one that is
    unreadable anyway (damaged, or from another layout) counts as a miss and is read again and overwritten.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def get(self, key: str) -> str | None:
        try:
            entry = json.loads((self.folder / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or not isinstance(entry.get("text"), str):
            return None
        return entry["text"]

    def put(self, key: str, text: str) -> None:
        atomic_write_text(self.folder / f"{key}.json", json.dumps({"key": key, "text": text}, ensure_ascii=False))


def docx_text(path: Path) -> tuple[str, str]:
    """(title, text) of a Word file: headings as `#` lines, list items as `- `, table rows joined by ` | `."""
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table

    if path.read_bytes()[:4] == b"\xd0\xcf\x11\xe0":  # an OLE container: password-protected .docx or an old .doc
        raise Unreadable("encrypted", "an OLE container, as Word writes a password-protected file")
    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as err:
        raise Unreadable("corrupt", f"not a Word .docx package: {err}") from err
    lines, title = [], document.core_properties.title or ""
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            lines += [" | ".join(cell.text.strip() for cell in row.cells) for row in block.rows]
            lines.append("")
            continue
        text, style = block.text.strip(), (block.style.name if block.style is not None else "") or ""
        if not text:
            continue
        level = re.fullmatch(r"Heading (\d)", style)
        if style == "Title":
            title = title or text
            lines += [f"# {text}", ""]
        elif level:
            lines += [f"{'#' * int(level.group(1))} {text}", ""]
        elif style.startswith("List"):
            lines.append(f"- {text}")
        else:
            lines += [text, ""]
    return title, "\n".join(lines)


def first_heading(text: str) -> str | None:
    """The first Markdown heading (#, ## or ###) in the first 20 lines."""
    for line in text.splitlines()[:20]:
        match = re.match(r"#{1,3}\s+(.+)", line)
        if match:
            return match.group(1).strip()
    return None


def estimate_words(path: Path) -> int:
    """About how many words a document holds, without extracting it (for the plan's estimate)."""
    suffix = path.suffix.lower()
    try:
        if suffix in PDF_SUFFIXES:
            import pypdfium2 as pdfium

            with pdfium.PdfDocument(path) as pdf:
                return len(pdf) * 300  # a typical page of prose
        if suffix in WORD_SUFFIXES:
            with zipfile.ZipFile(path) as package:
                xml = package.read("word/document.xml").decode("utf-8", errors="replace")
            return len(re.sub(r"<[^>]+>", " ", xml).split())
        return len(path.read_text(errors="replace").split())
    except Exception:  # an estimate never fails on a bad file; extraction counts it later
        return 0
