"""Unsigned PDFs for the signing tests and the benchmark, of a chosen size."""

from __future__ import annotations

import os
from io import BytesIO

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from reportlab.pdfgen import canvas


def make_pdf(size: int = 10_000, title: str = "Contract 2026-001") -> bytes:
    """A one-page PDF padded to about ``size`` bytes with an incompressible stream."""
    out = BytesIO()
    page = canvas.Canvas(out)
    page.setTitle(title)
    page.drawString(72, 770, title)
    page.save()
    pad = size - len(out.getvalue()) - 600
    if pad <= 0:
        return out.getvalue()
    writer = IncrementalPdfFileWriter(BytesIO(out.getvalue()))
    filler = writer.add_object(generic.StreamObject(stream_data=os.urandom(pad)))
    writer.root[generic.NameObject("/HubFiller")] = filler
    writer.update_root()
    padded = BytesIO()
    writer.write(padded)
    return padded.getvalue()
