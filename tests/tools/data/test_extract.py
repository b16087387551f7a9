"""Files to text: web pages without their furniture, PDFs (with OCR for scans), Word, any text encoding, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.data.extract import decode_text, estimate_words, extract_file, extract_files, ocr_available
from tools.data.ingest import collect_documents, read_documents

PROSE = "Everyone gets twenty-five days of paid leave every year, and may carry five of them over. "


def text_pdf(pages: list[list[str]], *, title: str = "", encrypted: bool = False) -> bytes:
    """A minimal valid PDF with one Helvetica text line per string; `encrypted` locks it with an unknown password."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               f"<< /Type /Pages /Kids [{' '.join(f'{4 + 2 * i} 0 R' for i in range(len(pages)))}] "
               f"/Count {len(pages)} >>".encode(),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for i, lines in enumerate(pages):
        shown = [line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") for line in lines]
        stream = ("BT /F1 11 Tf 14 TL 40 750 Td\n" + "".join(f"({s}) Tj T*\n" for s in shown) + "ET").encode("latin-1")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
                       f"/Contents {5 + 2 * i} 0 R >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n%b\nendstream" % (len(stream), stream))
    objects.append(f"<< /Title ({title}) >>".encode())
    trailer = f"/Info {len(objects)} 0 R"
    if encrypted:  # the standard security handler with owner/user keys that match no password, not even ""
        objects.append(b"<< /Filter /Standard /V 1 /R 2 /O <" + b"ab" * 32 + b"> /U <" + b"cd" * 32 + b"> /P -44 >>")
        trailer += f" /Encrypt {len(objects)} 0 R /ID [<{'11' * 16}> <{'11' * 16}>]"
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R {trailer} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def docx_file(path: Path, paragraphs: list[tuple[str, str]], title: str = "") -> None:
    """A Word file of (style, text) paragraphs."""
    import docx

    document = docx.Document()
    document.core_properties.title = title
    for style, text in paragraphs:
        document.add_paragraph(text, style=style)
    document.save(str(path))


def test_web_page_keeps_title_headings_and_main_text_without_navigation_or_footer(tmp_path: Path) -> None:
    page = tmp_path / "handbook.html"
    page.write_text(f"""<html><head><title>Staff Handbook - Acme</title><script>var tracking = 1;</script></head>
<body><nav><ul><li><a href="/">Home</a></li><li><a href="/about">About us</a></li><li><a href="/jobs">Careers</a>
</li></ul></nav><header><div class="menu">Menu Login Sign up</div></header>
<main><article><h1>Staff Handbook</h1><p>{PROSE * 3}</p><h2>Leave</h2><p>{PROSE}</p>
<h3>Sick leave</h3><p>Tell your manager before ten on the first day you are ill, and send a note after three days.</p>
</article></main><footer><p>Copyright 2024 Acme Ltd. All rights reserved.</p><a href="/privacy">Privacy policy</a>
</footer></body></html>""")
    doc = extract_file(page).document
    assert doc.title == "Staff Handbook"
    lines = doc.text.splitlines()
    assert "# Staff Handbook" in lines and "## Leave" in lines and "### Sick leave" in lines
    assert "send a note after three days" in doc.text
    for furniture in ("Careers", "About us", "Sign up", "All rights reserved", "Privacy policy", "tracking"):
        assert furniture not in doc.text
    assert doc.source == str(page) and doc.modified.startswith("20")


def test_pdf_text_is_read_page_by_page_with_its_title(tmp_path: Path) -> None:
    pdf = tmp_path / "policy.pdf"
    pdf.write_bytes(text_pdf([["Leave policy (2024)", PROSE], ["Page two says invoices are kept for seven years."]],
                             title="Leave Policy"))
    extracted = extract_file(pdf)
    assert extracted.document.title == "Leave Policy"
    assert extracted.document.text.startswith("Leave policy (2024)\n")
    assert "\n\nPage two says invoices are kept for seven years." in extracted.document.text
    assert (extracted.ocr_pages, extracted.scanned_pages_skipped) == (0, 0)


def _scanned_pdf(path: Path) -> None:
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (1240, 500), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=48)
    draw.text((60, 100), "Scanned invoices are kept", fill="black", font=font)
    draw.text((60, 200), "for seven years.", fill="black", font=font)
    image.save(path, resolution=150)


@pytest.mark.skipif(not ocr_available(), reason="Tesseract is not installed (apt-get install tesseract-ocr)")
def test_a_scanned_pdf_is_read_with_ocr_when_tesseract_is_installed(tmp_path: Path) -> None:
    _scanned_pdf(tmp_path / "scan.pdf")
    extracted = extract_file(tmp_path / "scan.pdf")
    assert extracted.ocr_pages == 1 and extracted.scanned_pages_skipped == 0
    assert "Scanned invoices are kept" in extracted.document.text and "seven years" in extracted.document.text


def test_without_ocr_scanned_pages_are_skipped_counted_and_explained(tmp_path: Path) -> None:
    _scanned_pdf(tmp_path / "scan.pdf")
    (tmp_path / "mixed.pdf").write_bytes(text_pdf([[PROSE]]))
    result = extract_files([tmp_path / "scan.pdf", tmp_path / "mixed.pdf"], ocr=False)
    assert [Path(d.source).name for d in result.documents] == ["mixed.pdf"]
    assert result.counts() == {"scanned": 1} and result.scanned_pages_skipped == 1
    assert any("1 scanned PDF page(s)" in note and "apt-get install tesseract-ocr" in note for note in result.notes())


def test_word_files_keep_headings_lists_and_title(tmp_path: Path) -> None:
    docx_file(tmp_path / "memo.docx", [("Title", "Travel Rules"), ("Heading 1", "Booking"), ("Normal", PROSE),
                                       ("List Bullet", "Economy class below six hours")], title="")
    doc = extract_file(tmp_path / "memo.docx").document
    assert doc.title == "Travel Rules"
    assert doc.text.splitlines()[:3] == ["# Travel Rules", "", "# Booking"]
    assert "- Economy class below six hours" in doc.text and PROSE.strip() in doc.text


def test_corrupt_encrypted_and_binary_files_are_counted_never_read_as_text(tmp_path: Path) -> None:
    (tmp_path / "locked.pdf").write_bytes(text_pdf([["Salaries are secret."]], encrypted=True))
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 4)
    (tmp_path / "broken.docx").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    (tmp_path / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    (tmp_path / "good.md").write_text(f"# Good\n\n{PROSE}")
    result = collect_documents([{"kind": "folder", "location": str(tmp_path)}], tmp_path / "out" / "docs.jsonl")
    assert [d.title for d in read_documents(result.path)] == ["Good"]
    assert result.dropped == {"binary": 1, "corrupt": 2, "encrypted": 1}
    assert any("password-protected" in note and "locked.pdf" in note for note in result.notes)
    assert any("binary content" in note and "image.txt" in note for note in result.notes)


def test_text_in_latin1_or_with_a_bom_decodes_right() -> None:
    text = "Le café du matin est servi à huit heures; les employés reçoivent vingt-cinq jours de congés payés."
    assert decode_text(text.encode("latin-1")) == text
    assert decode_text(text.encode("utf-8")) == text
    assert decode_text(text.encode("utf-16")) == text  # UTF-16 has NUL bytes, but its BOM says it is text
    assert decode_text("Привет, как дела? Это пример текста в старой кодировке.".encode("cp1251")).startswith("Привет")


def test_latin1_file_is_ingested_with_its_accents(tmp_path: Path) -> None:
    text = "Les employés reçoivent vingt-cinq jours de congés payés chaque année, et peuvent en reporter cinq."
    (tmp_path / "conges.txt").write_bytes(text.encode("latin-1"))
    [doc] = read_documents(collect_documents([{"kind": "file", "location": str(tmp_path / "conges.txt")}],
                                             tmp_path / "docs.jsonl").path)
    assert doc.text == text and doc.language == "fr"


def test_word_estimates_need_no_extraction(tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(text_pdf([[PROSE], [PROSE]]))
    docx_file(tmp_path / "b.docx", [("Normal", PROSE)])
    (tmp_path / "c.md").write_text(PROSE)
    (tmp_path / "d.pdf").write_bytes(b"not a pdf")
    assert estimate_words(tmp_path / "a.pdf") == 600
    assert estimate_words(tmp_path / "b.docx") == len(PROSE.split())
    assert estimate_words(tmp_path / "c.md") == len(PROSE.split())
    assert estimate_words(tmp_path / "d.pdf") == 0
