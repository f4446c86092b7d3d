"""Office files built by hand with zipfile: a minimal .docx, and hostile archives that must be
refused quickly with a clear message and bounded memory (measured in a subprocess: the peak
RSS the conversion adds on top of the imports)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from bot.rag.errors import SourceError
from bot.rag.ingest.convert import convert

MB = 1 << 20
W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)
PACKAGE_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Target="word/document.xml" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/></Relationships>'
)
# Runs in a subprocess: peak RSS added by one conversion, its time, and its result.
MEASURE = """
import json, sys, time
import docx, openpyxl, lxml.etree
from bot.rag.errors import SourceError
from bot.rag.ingest.convert import convert
import bot.rag.ingest.formats_office
path, max_bytes = sys.argv[1], int(sys.argv[2])
data = open(path, "rb").read()
def status(field):  # kB
    return int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith(field + ":")))
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # the peak (VmHWM) starts again from the current RSS
before = status("VmRSS")
started = time.perf_counter()
try:
    doc = convert(data, path.rsplit("/", 1)[-1], max_bytes=max_bytes)
    outcome = "read %d characters" % len(doc.text)
except SourceError as exc:
    outcome = str(exc)
seconds = time.perf_counter() - started
added = status("VmHWM") - before
print(json.dumps({"outcome": outcome, "seconds": seconds, "added_mb": added / 1024}))
"""


def paragraph(text: str, style: str | None = None) -> str:
    properties = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
    return f"<w:p>{properties}<w:r><w:t>{text}</w:t></w:r></w:p>"


def document_xml(body: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="{W_NS}"><w:body>{body}</w:body></w:document>'


def minimal_docx(body: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", PACKAGE_RELS)
        archive.writestr("word/document.xml", document_xml(body))
    return buffer.getvalue()


def measure(tmp_path: Path, name: str, data: bytes, max_bytes: int = 5 * MB) -> dict[str, object]:
    path = tmp_path / name
    path.write_bytes(data)
    done = subprocess.run([sys.executable, "-c", MEASURE, str(path), str(max_bytes)],
                          capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(name, result)  # shown with -s: the numbers reported for the hostile inputs
    return result


def test_minimal_docx_keeps_its_headings() -> None:
    body = (paragraph("Read this first.") + paragraph("Installing", "Heading1")
            + paragraph("Bolt the widget to a flat surface.") + paragraph("Tools", "Heading2")
            + paragraph("A wrench and a screwdriver.") + paragraph("Upkeep", "Heading1")
            + paragraph("Oil it every six months."))
    doc = convert(minimal_docx(body), "minimal.docx", max_bytes=5 * MB)
    assert doc.kind == "docx" and doc.title == "Installing"
    paths = [(s.heading_path, doc.text[s.start:s.end].splitlines()[-1]) for s in doc.sections]
    assert paths == [
        ((), "Read this first."),
        (("Installing",), "Bolt the widget to a flat surface."),
        (("Installing", "Tools"), "A wrench and a screwdriver."),
        (("Upkeep",), "Oil it every six months."),
    ]


def test_docx_tables_and_lists_are_read() -> None:
    import docx

    document = docx.Document()
    document.add_heading("Prices", level=1)
    document.add_paragraph("Apples are cheap", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    for (row, col), text in {(0, 0): "item", (0, 1): "price", (1, 0): "pear", (1, 1): "2 | 3"}.items():
        table.cell(row, col).text = text
    buffer = io.BytesIO()
    document.save(buffer)
    doc = convert(buffer.getvalue(), "prices.docx", max_bytes=5 * MB)
    assert "- Apples are cheap" in doc.text
    assert "| item | price |" in doc.text and "| pear | 2 \\| 3 |" in doc.text
    assert all(s.heading_path == ("Prices",) for s in doc.sections)


def test_docx_whose_directory_understates_sizes_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """word/document.xml declares 1,000 bytes (with the CRC of its first 1,000) but inflates to 300 MB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", PACKAGE_RELS)
        with archive.open("word/document.xml", "w") as member:
            member.write(document_xml(paragraph("x" * 500)).encode()[:1000])
            for _ in range(300):
                member.write(bytes(MB))
        liar = archive.getinfo("word/document.xml")
        prefix = document_xml(paragraph("x" * 500)).encode()[:1000]
        liar.file_size, liar.CRC = len(prefix), zlib.crc32(prefix)
    data = buffer.getvalue()
    assert len(data) < MB
    result = measure(tmp_path, "liar.docx", data)
    assert result["outcome"] == (
        "liar.docx: the part word/document.xml holds more than the zip directory declares "
        "(a damaged file or a zip bomb); it cannot be read."
    )
    assert result["seconds"] < 2 and result["added_mb"] < 32


def big_docx(megabytes: int) -> bytes:
    """An honest .docx whose text part unpacks to `megabytes` MB, compressed about 50 to 1."""
    row = paragraph("The quick brown fox jumps over the lazy dog, line {:09d}.")
    count = megabytes * MB // len(row)
    body = "".join(row.format(i) for i in range(count))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", PACKAGE_RELS)
        archive.writestr("word/document.xml", document_xml(body))
    return buffer.getvalue()


def test_docx_unpacking_far_past_the_limit_is_refused_quickly(tmp_path: Path) -> None:
    data = big_docx(97)
    assert len(data) < 4 * MB
    result = measure(tmp_path, "huge.docx", data)
    assert str(result["outcome"]).startswith("huge.docx: expands to ")
    assert "over the 20,971,520-byte limit (too large to read, or a zip bomb)." in str(result["outcome"])
    assert result["seconds"] < 2 and result["added_mb"] < 32


def test_docx_just_under_the_limit_is_read_in_bounded_time_and_memory(tmp_path: Path) -> None:
    result = measure(tmp_path, "large.docx", big_docx(3), max_bytes=MB)
    assert str(result["outcome"]).startswith("read ")
    assert result["seconds"] < 20 and result["added_mb"] < 200


def big_xlsx(megabytes: int) -> bytes:
    """A workbook whose sheet unpacks to `megabytes` MB of rows (an inline string and a number)."""
    row = '<row><c t="inlineStr"><is><t>The quick brown fox jumps over the lazy dog, line {0:09d}.</t></is></c><c><v>{0}</v></c></row>'
    count = megabytes * MB // len(row.format(100000))
    rows = "".join(row.format(i) for i in range(count))
    return workbook(rows)


def workbook(rows: str) -> bytes:
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>'))
        archive.writestr("_rels/.rels", (
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Target="xl/workbook.xml" '
            f'Type="{rel}/officeDocument"/></Relationships>'))
        archive.writestr("xl/workbook.xml", (
            f'<workbook xmlns="{main}" xmlns:r="{rel}"><sheets>'
            '<sheet name="Data" sheetId="1" r:id="rId1"/></sheets></workbook>'))
        archive.writestr("xl/_rels/workbook.xml.rels", (
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Target="worksheets/sheet1.xml" Type="{rel}/worksheet"/></Relationships>'))
        archive.writestr("xl/worksheets/sheet1.xml", (
            f'<worksheet xmlns="{main}"><dimension ref="A1:XFD1048576"/><sheetData>{rows}</sheetData></worksheet>'))
    return buffer.getvalue()


def test_xlsx_unpacking_far_past_the_limit_is_refused_quickly(tmp_path: Path) -> None:
    data = big_xlsx(97)
    assert len(data) < 5 * MB
    result = measure(tmp_path, "huge.xlsx", data)
    print(len(data))
    assert str(result["outcome"]).startswith("huge.xlsx: expands to ")
    assert result["seconds"] < 2 and result["added_mb"] < 32


def test_xlsx_read_streamed_in_bounded_memory(tmp_path: Path) -> None:
    """A sheet of 3 MB is read row by row, though its declared dimension says A1:XFD1048576."""
    result = measure(tmp_path, "rows.xlsx", big_xlsx(3), max_bytes=MB)
    assert str(result["outcome"]).startswith("read ")
    assert result["seconds"] < 20 and result["added_mb"] < 100


def test_xlsx_of_far_apart_cells_is_refused_quickly(tmp_path: Path) -> None:
    """Each row's one cell in the last column would make rows of 16,384 cells each."""
    rows = "".join(f'<row r="{i}"><c r="XFD{i}"><v>{i}</v></c></row>' for i in range(1, 20_001))
    result = measure(tmp_path, "sparse.xlsx", workbook(rows))
    assert result["outcome"] == "sparse.xlsx: the workbook has over 2,000,000 cells, too many to read."
    assert result["seconds"] < 10 and result["added_mb"] < 100


def test_office_part_with_unusual_compression_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_BZIP2) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("word/document.xml", document_xml(paragraph("hello")))
    with pytest.raises(SourceError, match=r"^odd\.docx: not a valid \.docx file \(a part uses an unusual zip compression\)\.$"):
        convert(buffer.getvalue(), "odd.docx", max_bytes=5 * MB)


def test_office_part_with_a_bad_crc_is_refused() -> None:
    data = bytearray(minimal_docx(paragraph("Hello there, reader.")))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("word/document.xml")
    at = data.find(b"word/document.xml", data.index(b"PK\x01\x02")) - 46  # its central directory entry
    assert data[at:at + 4] == b"PK\x01\x02"
    started = time.perf_counter()
    data[at + 16:at + 20] = (info.CRC ^ 1).to_bytes(4, "little")
    with pytest.raises(SourceError, match=r"^bad\.docx: the \.docx file is damaged \(its part word/document\.xml"):
        convert(bytes(data), "bad.docx", max_bytes=5 * MB)
    assert time.perf_counter() - started < 1
