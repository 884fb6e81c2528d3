"""📄 Export (export.py): every purchase as an .xlsx that opens right everywhere, and a CSV beside it."""
from __future__ import annotations

import csv
import io
import itertools
from datetime import datetime
from decimal import Decimal

import openpyxl

import export
from conftest import ADMIN_ID, Person
from models import PAID_MEDIA, Product, Purchase
from shopkit import callback

HEADERS = ["Date and time (UTC)", "Purchase", "Buyer", "Username", "Buyer id", "Product", "Kind", "Payment",
           "List price", "Price paid", "Currency", "Promo code", "Gift (giver → recipient)", "Subscription payment",
           "Refunded (UTC)", "Refunded by", "Telegram charge id", "Provider charge id",
           "Affiliate commission (⭐)", "Invited by (id)"]


def exported(shop, seller) -> tuple[list[tuple], list[list[str]], openpyxl.Workbook]:
    """📄 Export, then (the spreadsheet's rows as values, the CSV's rows, the workbook)."""
    seller.taps_data(callback("export_csv"))
    (xlsx_name, xlsx), (csv_name, machine) = [call.files["document"] for call in shop.api.of("sendDocument")[-2:]]
    assert xlsx_name.startswith("purchases-") and xlsx_name.endswith(".xlsx") and csv_name.endswith(".csv")
    book = openpyxl.load_workbook(io.BytesIO(xlsx))
    rows = list(book.active.iter_rows(values_only=True))
    return rows, list(csv.reader(io.StringIO(machine.decode("utf-8-sig")))), book


def test_the_export_is_a_spreadsheet_of_every_purchase_with_names_gifts_and_refunds(shop, seller, alice, bob):
    course = shop.add_product("Course", price=100)
    shop.add_promo("SPRING")
    alice.sends("/start promo_SPRING")
    alice.taps_data(callback("buy", course.id))
    alice.pays()  # 80 with the code
    bob.sends(f"/start p_{course.id}")
    bob.taps("Buy as a gift")
    bob.pays(charge_id="charge-gift")
    carol = Person(shop, 1003, "Carol")  # no username
    link = [t for t in bob.all_texts().split() if "start=gift_" in t][-1]
    carol.sends("/start " + link.split("?start=")[1])
    seller.sends(f"/grant {carol.id} {shop.add_product('Guide', price=30).id}")
    seller.taps_data(callback("confirm_refund", 1))  # Alice's purchase

    rows, machine, book = exported(shop, seller)

    assert rows[0] == tuple(HEADERS)
    paid, gift, claim, grant = rows[1:]
    assert isinstance(paid[0], datetime) and paid[1:14] == (
        1, "Alice", "@alice", 1001, "Course", "same content for all", "Telegram Stars", 100, 80, "XTR", "SPRING", None,
        None)
    assert isinstance(paid[14], datetime) and paid[15] == "the seller"
    assert paid[16] == alice.payment["telegram_payment_charge_id"] and paid[17] == "provider-" + paid[16]
    assert gift[7:13] == ("Telegram Stars", 100, 100, "XTR", None, "Bob (@bob, 1002) → Carol (1003)")
    assert claim[2] == "Carol" and claim[7:13] == ("gift", None, 0, "XTR", None, "Bob (@bob, 1002) → Carol (1003)")
    assert grant[5] == "Guide" and grant[7:10] == ("granted", None, 0) and grant[14] is None
    assert book.active["J2"].data_type == "n" and book.active["A2"].is_date  # numbers and dates, not text
    assert paid[18] is None  # no affiliate brought Alice

    assert machine[0] == [column.name for column in export.COLUMNS]
    assert machine[1][0] == f"{paid[0]:%Y-%m-%d %H:%M:%S}" and machine[1][8:12] == ["100", "80", "XTR", "SPRING"]
    assert machine[2][12] == "Bob (@bob, 1002) → Carol (1003)" and machine[4][9] == "0"


def test_card_amounts_are_in_whole_units(card_shop):
    card_shop.add_product("Course", price=499)
    buyer, seller = Person(card_shop, 1001, "Alice"), Person(card_shop, ADMIN_ID, "Seller")
    buyer.taps_data(callback("buy", 1))
    buyer.pays()
    _rows, machine, book = exported(card_shop, seller)
    assert book.active["J2"].value == Decimal("4.99") or book.active["J2"].value == 4.99
    assert book.active["J2"].number_format == "0.00" and machine[1][8:11] == ["4.99", "4.99", "USD"]


def test_no_cell_of_the_export_runs_as_a_formula(shop, seller):
    product = shop.add_product('=HYPERLINK("http://evil.example","Click")', price=25)
    shop.add_promo("-A1")
    mallory = Person(shop, 1005, "=1+1", "evil")
    mallory.sends("/start promo_-A1")
    mallory.taps_data(callback("buy", product.id))
    mallory.pays()

    rows, machine, book = exported(shop, seller)

    sheet = book.active
    for cell, value in [("C2", "=1+1"), ("F2", '=HYPERLINK("http://evil.example","Click")'), ("L2", "-A1"),
                        ("D2", "@evil")]:
        assert sheet[cell].value == value and sheet[cell].data_type == "s"  # a string cell, never a formula
        assert sheet[cell].quotePrefix  # ...that stays text when edited
    assert not sheet["B2"].quotePrefix  # the rest is plain
    assert machine[1][2] == "'=1+1" and machine[1][5].startswith("'=HYPERLINK") and machine[1][11] == "'-A1"
    assert machine[1][3] == "'@evil"


def test_a_long_export_edits_one_progress_message_then_sends_the_files_anew(shop, seller, alice, monkeypatch):
    product = shop.add_product("Guide", price=0)
    for n in range(5):
        Person(shop, 2000 + n, f"Buyer {n}").taps_data(callback("buy", product.id))
    monkeypatch.setattr(export, "BATCH", 1)
    shop.bot.shop.clock = itertools.count(0, 2).__next__  # every look at the clock, 2 seconds later

    seller.taps_data(callback("export_csv"))

    progress = [call for call in shop.api.of("sendMessage") if "Exporting" in call.params["text"]]
    edits = [call.params["text"] for call in shop.api.of("editMessageText")]
    assert len(progress) == 1 and progress[0].params["text"] == "⏳ Exporting… 40 %"  # 2 of 5, 4 s in
    assert edits == ["⏳ Exporting… 80 %", "⏳ Exporting… 100 %"]
    assert shop.api.calls[-1].method == "sendDocument" and shop.api.calls[-2].method == "sendDocument"
    assert "Exporting… 100 %" in seller.all_texts()


def test_a_quick_export_sends_no_progress_at_all(shop, seller, alice):
    alice.taps_data(callback("buy", shop.add_product("Guide", price=0).id))
    seller.taps_data(callback("export_csv"))
    assert not shop.api.of("editMessageText") and "Exporting" not in seller.all_texts()
    assert "Making the export" in seller.last_toast()


def test_a_paid_media_sale_and_telegrams_affiliate_commission_are_exported(shop, seller, alice):
    course = shop.add_product("Course", price=100)
    alice.taps_data(callback("buy", course.id))
    alice.pays()
    with shop.Session() as session:  # as the ledger found it: an affiliate brought Alice, and took 7.5 ⭐
        purchase = session.get(Purchase, 1)
        purchase.commission_nanostars = 7_500_000_000
        session.get(Product, course.id).kind = PAID_MEDIA
        session.commit()
    rows, machine, book = exported(shop, seller)
    assert rows[1][6] == "paid media" and rows[1][18] == Decimal("7.5") and machine[1][18] == "7.5"
