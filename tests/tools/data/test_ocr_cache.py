"""The OCR cache: a scanned page is read by Tesseract once, and its text comes from the cache after that."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memory.workspace import Workspace
from tools.data.extract import OcrCache, extract_files, ocr_available, ocr_cache_key, ocr_page
from tools.data.ingest import collect_documents

needs_tesseract = pytest.mark.skipif(not ocr_available(),
                                     reason="Tesseract is not installed (apt-get install tesseract-ocr)")


def scanned_pdf(path: Path, pages: list[str]) -> Path:
    """A PDF of page images without a text layer, one line of large type a page, as a scanner writes it."""
    from PIL import Image, ImageDraw, ImageFont

    images = []
    for line in pages:
        image = Image.new("RGB", (1240, 400), "white")
        ImageDraw.Draw(image).text((60, 150), line, fill="black", font=ImageFont.load_default(size=48))
        images.append(image)
    images[0].save(path, save_all=True, append_images=images[1:], resolution=150)
    return path


def rendered_pages(path: Path, dpi: int = 300) -> list:
    """Each page of a PDF as the image OCR reads."""
    import pypdfium2 as pdfium

    with pdfium.PdfDocument(path) as pdf:
        return [page.render(scale=dpi / 72).to_pil() for page in pdf]


@needs_tesseract
def test_a_repeated_extraction_reads_every_scanned_page_from_the_cache(tmp_path: Path) -> None:
    pdf = scanned_pdf(tmp_path / "scan.pdf", ["Scanned invoices are kept", "for seven years by law."])
    cache = tmp_path / "ocr"
    first = extract_files([pdf], ocr_cache=cache)
    second = extract_files([pdf], ocr_cache=cache)
    assert (first.ocr_pages, first.ocr_cached_pages) == (2, 0)
    assert (second.ocr_pages, second.ocr_cached_pages) == (0, 2)
    assert second.documents[0].text == first.documents[0].text
    assert "Scanned invoices are kept" in first.documents[0].text and "seven years" in first.documents[0].text
    assert "Read 2 scanned PDF page(s) with OCR (Tesseract), 2 of them from the OCR cache;" in " ".join(second.notes())
    assert sorted(p.suffix for p in cache.iterdir()) == [".json", ".json"]  # one entry a page, no temp files left


@needs_tesseract
def test_another_dpi_misses_the_cache_and_without_one_nothing_is_kept(tmp_path: Path, workspace: Workspace) -> None:
    import pypdfium2 as pdfium

    pdf = scanned_pdf(tmp_path / "scan.pdf", ["Scanned invoices are kept"])
    cache = OcrCache(tmp_path / "ocr")
    with pdfium.PdfDocument(pdf) as document:
        assert [ocr_page(document[0], dpi, cache=cache)[1] for dpi in (300, 300, 200)] == [False, True, False]
    assert len(list(cache.folder.iterdir())) == 2
    assert [extract_files([pdf]).ocr_pages for _ in range(2)] == [1, 1]
    assert not (workspace.root / "cache").exists()


@needs_tesseract
def test_a_damaged_entry_is_read_again_with_ocr_and_repaired(tmp_path: Path) -> None:
    pdf = scanned_pdf(tmp_path / "scan.pdf", ["Scanned invoices are kept"])
    cache = tmp_path / "ocr"
    text = extract_files([pdf], ocr_cache=cache).documents[0].text
    (entry,) = cache.iterdir()
    entry.write_text(entry.read_text()[:10])  # as if cut off mid-write
    again = extract_files([pdf], ocr_cache=cache)
    assert (again.ocr_pages, again.ocr_cached_pages, again.documents[0].text) == (1, 0, text)
    assert extract_files([pdf], ocr_cache=cache).ocr_cached_pages == 1


def test_the_key_follows_the_pixels_dpi_language_and_tesseract_version(tmp_path: Path) -> None:
    pdf = scanned_pdf(tmp_path / "scan.pdf", ["Scanned invoices are kept", "for seven years by law."])
    first, second = rendered_pages(pdf)
    again = rendered_pages(scanned_pdf(tmp_path / "copy.pdf", ["Scanned invoices are kept"]))[0]
    key = ocr_cache_key(first, 300, "eng", "5.3.0")
    assert ocr_cache_key(again, 300, "eng", "5.3.0") == key  # the same page in another file
    assert len({key, ocr_cache_key(second, 300, "eng", "5.3.0"), ocr_cache_key(first, 200, "eng", "5.3.0"),
                ocr_cache_key(first, 300, "deu", "5.3.0"), ocr_cache_key(first, 300, "eng", "5.4.0")}) == 5


def test_entries_are_written_whole_and_read_back(tmp_path: Path) -> None:
    cache = OcrCache(tmp_path / "ocr")
    assert cache.get("a" * 64) is None
    cache.put("a" * 64, "Überstunden werden\nausgezahlt.")
    cache.put("b" * 64, "")
    assert cache.get("a" * 64) == "Überstunden werden\nausgezahlt." and cache.get("b" * 64) == ""
    assert sorted(p.name for p in cache.folder.iterdir()) == [f"{'a' * 64}.json", f"{'b' * 64}.json"]


def test_a_damaged_or_misplaced_entry_is_a_miss_and_is_overwritten(tmp_path: Path) -> None:
    cache = OcrCache(tmp_path / "ocr")
    cache.put("a" * 64, "Scanned invoices are kept for seven years.")
    entry = cache.folder / f"{'a' * 64}.json"
    whole = entry.read_bytes()
    for damaged in (whole[: len(whole) // 2], b"\xff\xfe not text", b"[]", b'{"text": 3}',
                    json.dumps({"key": "b" * 64, "text": "another page"}).encode()):
        entry.write_bytes(damaged)
        assert cache.get("a" * 64) is None
    cache.put("a" * 64, "read again")
    assert cache.get("a" * 64) == "read again"


@needs_tesseract
def test_ingest_passes_the_cache_on_and_says_what_came_from_it(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    scanned_pdf(folder / "scan.pdf", ["Scanned invoices are kept for seven", "years, then shredded by the archive."])
    runs = [collect_documents([{"kind": "folder", "location": str(folder)}], tmp_path / f"documents{n}.jsonl",
                              ocr_cache=tmp_path / "ocr") for n in range(2)]
    assert "Read 2 scanned PDF page(s) with OCR (Tesseract); check them for misreads." in runs[0].notes
    assert ("Read 2 scanned PDF page(s) with OCR (Tesseract), 2 of them from the OCR cache; check them for "
            "misreads.") in runs[1].notes
    assert runs[0].n_words == runs[1].n_words > 10
