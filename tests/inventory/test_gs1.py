import datetime as dt

import pytest

from stockpile.errors import InvalidInput, NotFound
from stockpile.inventory import gs1
from tests import factories

GS = "\x1d"


def test_raw_element_string_with_group_separator():
    scan = gs1.parse(f"0107032069804988172705311012AB{GS}21SER-9")
    assert scan == gs1.Scan(gtin="07032069804988", lot_number="12AB",
                            expiry=dt.date(2027, 5, 31), serial="SER-9")


def test_human_readable_form_with_parentheses():
    scan = gs1.parse("(01)07032069804988(17)270531(10)12AB(21)SER-9")
    assert scan == gs1.Scan(gtin="07032069804988", lot_number="12AB",
                            expiry=dt.date(2027, 5, 31), serial="SER-9")


def test_symbology_identifier_of_a_datamatrix_scan_is_accepted():
    scan = gs1.parse("]d201070320698049881727053110LOT7")
    assert (scan.gtin, scan.lot_number, scan.expiry) == ("07032069804988", "LOT7", dt.date(2027, 5, 31))


@pytest.mark.parametrize(("yymmdd", "expected"), [
    ("261100", dt.date(2026, 11, 30)),
    ("280200", dt.date(2028, 2, 29)),  # leap year
    ("270200", dt.date(2027, 2, 28)),
    ("271200", dt.date(2027, 12, 31)),
])
def test_day_00_means_last_day_of_the_month(yymmdd, expected):
    assert gs1.parse(f"(01)07032069804988(17){yymmdd}(10)A").expiry == expected
    assert gs1.parse(f"010703206980498817{yymmdd}10A").expiry == expected


def test_gtin_13_in_ai_01_is_returned_as_gtin_14():
    # A GTIN-13 encoded in AI 01 is zero-padded to 14 digits, as Item.gtin stores it.
    assert gs1.parse("(01)07032069805015(10)X").gtin == "07032069805015"


@pytest.mark.parametrize(("value", "needle"), [
    ("", "empty"),
    ("   ", "empty"),
    ("hello world", "Not a readable GS1 code"),
    ("07032069804988", "bare GTIN"),
    ("(17)270531(10)A", "no GTIN (AI 01)"),
    ("0107032069804989172705311012AB", "not valid"),  # wrong check digit
    ("(01)0703206980498(17)270531", "Not a readable GS1 code"),  # 13 digits in AI 01
    ("0107032069804988171313011012AB", "Not a readable GS1 code"),  # month 13
])
def test_unreadable_codes_are_refused_naming_the_field(value, needle):
    with pytest.raises(InvalidInput) as refused:
        gs1.parse(value)
    assert needle in refused.value.message
    assert list(refused.value.fields) == ["gs1"]
    assert refused.value.status == 400


def test_item_is_found_by_gtin(session):
    item = factories.item(session, "SYRINGE", "consumable", gtin="7032069805008")
    found, lot, expiry = gs1.for_receipt(session, "(01)07032069805008(17)300100(10)S-1")
    assert (found.id, lot, expiry) == (item.id, "S-1", dt.date(2030, 1, 31))


def test_unknown_gtin_is_not_found(session):
    with pytest.raises(NotFound) as refused:
        gs1.for_receipt(session, "(01)07032069805022(17)300100(10)S-1")
    assert "No item is registered with GTIN 07032069805022" in refused.value.message
    assert refused.value.fields == {"gs1": [refused.value.message]}


def test_receipt_needs_a_lot_number(session):
    factories.item(session, "SYRINGE", "consumable", gtin="7032069805008")
    with pytest.raises(InvalidInput, match=r"no lot number \(AI 10\)"):
        gs1.for_receipt(session, "(01)07032069805008(17)300100")


def test_expiry_required_only_for_items_with_a_shelf_life(session):
    factories.item(session, "SYRINGE", "consumable", gtin="7032069805008")
    factories.item(session, "STRETCHER", "equipment", gtin="07032069805015", has_expiry=False)
    with pytest.raises(InvalidInput, match=r"no expiry date \(AI 17\), and SYRINGE"):
        gs1.for_receipt(session, "(01)07032069805008(10)S-1")
    item, lot, expiry = gs1.for_receipt(session, "(01)07032069805015(10)ST-1")
    assert (item.code, lot, expiry) == ("STRETCHER", "ST-1", None)
