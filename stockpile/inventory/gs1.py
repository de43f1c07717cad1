"""Scanned GS1 element strings (GS1 DataMatrix, GS1-128) on receipt: item, lot, expiry.

Parsing is done by ``biip``. Two forms are accepted: the raw string a scanner sends, with FNC1
as a group separator (``\\x1d``) and optionally a symbology identifier such as ``]d2``, and the
human-readable form printed under the barcode, ``(01)07032069804988(17)261100(10)AB12``.
The AIs used are 01 (GTIN), 10 (lot), 17 (expiry; day ``00`` means the last day of the
month, which biip resolves) and 21 (serial, kept but not stored).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import biip
import sqlalchemy as sa
import sqlalchemy.orm as so
from biip.gs1_messages import GS1Message

from stockpile.errors import InvalidInput, NotFound
from stockpile.inventory.models import Item

FIELD = "gs1"


@dataclass(frozen=True)
class Scan:
    """What a GS1 element string says about one pack."""

    gtin: str  # GTIN-14, the form ``Item.gtin`` is stored in
    lot_number: str | None
    expiry: dt.date | None
    serial: str | None


def _refuse(message: str) -> InvalidInput:
    return InvalidInput(message, fields={FIELD: [message]})


def _message(value: str) -> GS1Message:
    if value.startswith("("):
        try:
            return GS1Message.parse_hri(value)
        except biip.ParseError as exc:
            raise _refuse(f"Not a readable GS1 code: {exc}") from exc
    try:
        result = biip.parse(value)
    except biip.ParseError as exc:
        raise _refuse(f"Not a readable GS1 code: {exc}") from exc
    if result.gs1_message is not None:
        return result.gs1_message
    if result.gtin is not None:
        raise _refuse("This is a bare GTIN without lot or expiry; scan the GS1 DataMatrix or "
                      "GS1-128 code that carries (01), (17) and (10).")
    raise _refuse(f"Not a readable GS1 code: {result.gs1_message_error or 'unrecognised format'}")


def parse(value: str) -> Scan:
    """The GTIN, lot, expiry and serial in ``value``; ``InvalidInput`` (field ``gs1``) naming
    what is missing or malformed otherwise."""
    value = value.strip()
    if not value:
        raise _refuse("The scanned GS1 code is empty.")
    message = _message(value)
    elements = {element.ai.ai: element for element in message.element_strings}
    gtin_element = elements.get("01")
    if gtin_element is None:
        raise _refuse("The GS1 code has no GTIN (AI 01), so the item cannot be identified.")
    if gtin_element.gtin is None:
        raise _refuse(f"The GTIN (AI 01) {gtin_element.value} is not valid: {gtin_element.gtin_error}")
    expiry_element = elements.get("17")
    lot_element = elements.get("10")
    serial_element = elements.get("21")
    return Scan(gtin=gtin_element.gtin.as_gtin_14(),
                lot_number=lot_element.value if lot_element else None,
                expiry=expiry_element.date if expiry_element else None,
                serial=serial_element.value if serial_element else None)


def item_for(session: so.Session, scan: Scan) -> Item:
    """The item registered with the scan's GTIN; ``NotFound`` (field ``gs1``) if none is."""
    item = session.scalar(sa.select(Item).where(Item.gtin == scan.gtin))
    if item is None:
        message = (f"No item is registered with GTIN {scan.gtin}; add the GTIN to the item "
                   "first or enter item, lot and expiry by hand.")
        raise NotFound(message, fields={FIELD: [message]})
    return item


def for_receipt(session: so.Session, value: str) -> tuple[Item, str, dt.date | None]:
    """Item, lot number and expiry of a scanned pack, ready for ``services.receive``.

    Refuses a code without a lot number (AI 10), and one without an expiry (AI 17) when the
    item has a shelf life.
    """
    scan = parse(value)
    item = item_for(session, scan)
    if not scan.lot_number:
        raise _refuse("The GS1 code has no lot number (AI 10); a receipt needs the lot.")
    if scan.expiry is None and item.has_expiry:
        raise _refuse(f"The GS1 code has no expiry date (AI 17), and {item.code} has a shelf life.")
    return item, scan.lot_number, scan.expiry
