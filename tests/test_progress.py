"""Long work shows how far it got (shopkit/progress.py): a stock upload, a backup, the export (test_export.py)."""
from __future__ import annotations

import itertools

import pytest

import stock
from conftest import ADMIN_ID, stock_of, upload_stock
from models import STOCKED
from shopkit import Progress, callback
from shopkit import database as shopkit_database


def fake_clock(shop, step: float = 2.0) -> None:
    """Every look at the clock finds it ``step`` seconds later: work that takes long, in no time."""
    shop.bot.shop.clock = itertools.count(0, step).__next__


def progress_texts(shop, words: str) -> tuple[list[str], list[str]]:
    """(the progress messages sent, then the edits made of them)."""
    sent = [call.params["text"] for call in shop.api.of("sendMessage") if words in call.params["text"]]
    return sent, [call.params["text"] for call in shop.api.of("editMessageText") if words in call.params["text"]]


def test_progress_is_silent_for_quick_work_then_edits_one_message(shop):
    fake_clock(shop, step=1.0)
    progress = Progress(shop.bot.shop, ADMIN_ID, lambda percent: f"Working… {percent} %")
    for done in range(1, 8):  # at 1, 2 s nothing; at 3 s the message; at 6 s an edit
        progress.update(done, 10)
    progress.finish()
    assert progress_texts(shop, "Working") == (["Working… 30 %"], ["Working… 60 %", "Working… 100 %"])
    assert [call.params["message_id"] for call in shop.api.of("editMessageText")] == [progress.message_id] * 2


def test_a_progress_message_that_cannot_be_edited_is_sent_anew(shop):
    fake_clock(shop, step=5.0)
    progress = Progress(shop.bot.shop, ADMIN_ID, lambda percent: f"Working… {percent} %")
    progress.update(1, 4)
    first = progress.message_id
    shop.api.fail("editMessageText", 400, "Bad Request: message to edit not found")
    progress.update(2, 4)
    assert progress_texts(shop, "Working")[0] == ["Working… 25 %", "Working… 50 %"] and progress.message_id != first


def test_a_long_stock_upload_edits_one_progress_message(shop, seller, monkeypatch):
    product = shop.add_product("Key", kind=STOCKED)
    monkeypatch.setattr(stock, "CHUNK", 1000)
    fake_clock(shop)
    content = "\n".join(f"KEY-{n:05d}" for n in range(5000)).encode()
    upload_stock(seller, product, lambda s: s.sends_document("BIG", "keys.txt", content=content))
    assert progress_texts(shop, "Adding items") == (["⏳ Adding items… 40 %"],
                                                    ["⏳ Adding items… 80 %", "⏳ Adding items… 100 %"])
    assert len(stock_of(shop, product)) == 5000 and not shop.api.calls_in_transaction


def test_a_quick_stock_upload_says_nothing_of_progress(shop, seller):
    product = shop.add_product("Key", kind=STOCKED)
    upload_stock(seller, product, lambda s: s.sends_document("LIST", "keys.txt", content=b"K1\nK2"))
    assert progress_texts(shop, "Adding items") == ([], [])


def test_a_long_backup_edits_one_progress_message_then_sends_the_copy(shop, seller, monkeypatch):
    if shop.Session.kw["bind"].dialect.name != "sqlite":
        pytest.skip("a database server is backed up with its own tools")
    for n in range(200):
        shop.add_product(f"Product {n}", description="x" * 2000)  # a database of many pages
    monkeypatch.setattr(shopkit_database, "BACKUP_STEP", 20)
    fake_clock(shop)
    seller.taps_data(callback("backup"))
    sent, edits = progress_texts(shop, "Making the backup")
    assert len(sent) == 1 and edits and edits[-1] == "⏳ Making the backup… 100 %"
    percents = [int(text.split("… ")[1].split(" %")[0]) for text in sent + edits]
    assert percents == sorted(set(percents))  # it only goes forward
    assert shop.api.calls[-1].method == "sendDocument"  # the copy comes last, as a message of its own
