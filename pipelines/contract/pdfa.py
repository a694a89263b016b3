"""The PDFs the hub writes itself (合意締結証明書, the sample contract set): Japanese text
in an embedded font, and the metadata of PDF/A-2b.

Fonts: IPAex明朝 and IPAexゴシック (Debian's ``fonts-ipaexfont``, IPA Font License), registered
in reportlab as TrueType fonts, so the glyphs used are embedded as a subset. The PDF then
shows the same text in every viewer; a built-in CID font (HeiseiMin-W3) is only named in
the file and a viewer without Adobe's Asian font pack shows empty boxes instead.

PDF/A: :func:`as_pdfa` adds what PDF/A-2b asks of the document beyond the fonts: an XMP
metadata stream that declares ``pdfaid:part=2``, ``conformance=B`` and agrees with the
document information dictionary, an sRGB output intent (the ICC profile of littlecms,
through Pillow) for reportlab's DeviceRGB/DeviceGray colours, and a file identifier.
pyHanko's signatures are incremental updates that keep these and update the XMP
modification date together with the information dictionary. veraPDF judges the
results PDF/A-2b, signed and unsigned (docs/contract.md).
"""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import escape

__all__ = [
    "FONT_FILES",
    "JapaneseFontMissingError",
    "as_pdfa",
    "japanese_font",
]

FONT_FILES: dict[str, tuple[Path, ...]] = {
    "IPAexMincho": (Path("/usr/share/fonts/opentype/ipaexfont-mincho/ipaexm.ttf"),
                    Path("/usr/share/fonts/truetype/ipaexfont-mincho/ipaexm.ttf")),
    "IPAexGothic": (Path("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf"),
                    Path("/usr/share/fonts/truetype/ipaexfont-gothic/ipaexg.ttf")),
}
"""Where each font is looked for, in order (Debian's ``fonts-ipaexfont`` first)."""


class JapaneseFontMissingError(RuntimeError):
    """The Japanese font file is not installed; the PDF is not written without it."""

    def __init__(self, name: str, looked: tuple[Path, ...]) -> None:
        where = ", ".join(str(p) for p in looked)
        super().__init__(
            f"the Japanese font {name} is not installed (looked in {where}); install "
            "Debian's fonts-ipaexfont (deploy/setup.d/10-system.sh). The hub does not write "
            "a PDF whose Japanese text would show as empty boxes.")
        self.font = name


def japanese_font(name: str = "IPAexMincho") -> str:
    """Register ``name`` (a key of :data:`FONT_FILES`) with reportlab as a TrueType font,
    embedded as a subset, and return the name to pass to ``setFont``.

    Raises :class:`JapaneseFontMissingError` when its file is missing; importing this
    module or other PDF code does not need it.
    """
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    looked = FONT_FILES[name]
    found = next((p for p in looked if p.is_file()), None)
    if found is None:  # checked every time: reportlab reads the file again when it embeds
        raise JapaneseFontMissingError(name, looked)
    if name not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(name, str(found)))
    return name


def _srgb_icc() -> bytes:
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return bytes(profile.tobytes())


def _pdf_date(at: datetime) -> str:
    offset = at.strftime("%z") or "+0000"
    return f"D:{at:%Y%m%d%H%M%S}{offset[:3]}'{offset[3:]}'"


def _xmp(title: str, author: str, subject: str, *, creator: str, at: datetime) -> bytes:
    when = at.isoformat(timespec="seconds")
    t, a, s, c = (escape(v) for v in (title, author, subject, creator))
    return f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/"
 xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:xmp="http://ns.adobe.com/xap/1.0/">
<pdfaid:part>2</pdfaid:part>
<pdfaid:conformance>B</pdfaid:conformance>
<dc:format>application/pdf</dc:format>
<dc:title><rdf:Alt><rdf:li xml:lang="x-default">{t}</rdf:li></rdf:Alt></dc:title>
<dc:creator><rdf:Seq><rdf:li>{a}</rdf:li></rdf:Seq></dc:creator>
<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{s}</rdf:li></rdf:Alt></dc:description>
<xmp:CreateDate>{when}</xmp:CreateDate>
<xmp:ModifyDate>{when}</xmp:ModifyDate>
<xmp:CreatorTool>{c}</xmp:CreatorTool>
</rdf:Description>
</rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>""".encode()


def as_pdfa(pdf: bytes, *, title: str, author: str, subject: str, at: datetime) -> bytes:
    """``pdf`` (reportlab's, fonts embedded) with the PDF/A-2b metadata: the information
    dictionary and an XMP stream saying the same, the sRGB output intent, a file id.

    ``at`` is an aware datetime: the creation and modification date of both.
    """
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import (
        ArrayObject,
        DecodedStreamObject,
        DictionaryObject,
        NameObject,
        NumberObject,
        TextStringObject,
    )

    # No /Producer: pyHanko's signature sets it to its own name in the dictionary and in
    # the XMP alike, where a producer of ours would stay in one and not the other.
    creator = "procurement-hub"
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    add = writer._add_object  # pypdf's way to add an indirect object
    date = _pdf_date(at)
    info = {"/Title": title, "/Author": author, "/Subject": subject, "/Creator": creator,
            "/CreationDate": date, "/ModDate": date}
    writer.add_metadata(info)
    stored = writer._info.get_object() if writer._info is not None else None
    if isinstance(stored, DictionaryObject):  # keys reportlab wrote the XMP would not repeat
        for key in [k for k in stored if k not in info]:
            del stored[key]
    metadata = DecodedStreamObject()
    metadata.set_data(_xmp(title, author, subject, creator=creator, at=at))
    metadata.update({NameObject("/Type"): NameObject("/Metadata"),
                     NameObject("/Subtype"): NameObject("/XML")})
    icc = DecodedStreamObject()
    icc.set_data(_srgb_icc())
    icc[NameObject("/N")] = NumberObject(3)
    intent = DictionaryObject({
        NameObject("/Type"): NameObject("/OutputIntent"),
        NameObject("/S"): NameObject("/GTS_PDFA1"),
        NameObject("/OutputConditionIdentifier"): TextStringObject("sRGB IEC61966-2.1"),
        NameObject("/Info"): TextStringObject("sRGB IEC61966-2.1"),
        NameObject("/DestOutputProfile"): add(icc),
    })
    root = writer.root_object
    root[NameObject("/Metadata")] = add(metadata)
    root[NameObject("/OutputIntents")] = ArrayObject([add(intent)])
    writer.generate_file_identifiers()
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
