"""Everything the shop says in English (texts.py explains the templates)."""

EN = {
    # --- the storefront -------------------------------------------------
    "welcome": "👋 Hello, {name}!\n\nWelcome to <b>{shop}</b>. Pick something in the catalog: "
               "you pay right here in Telegram and receive it instantly.",
    "menu": "What would you like to do?",
    "btn_catalog": "🛍 Catalog",
    "btn_purchases": "📦 My purchases",
    "btn_help": "❓ Help",
    "btn_back": "⬅️ Back",
    "btn_copy": "📋 Copy",
    "btn_copy_link": "📋 Copy link",
    "btn_menu": "🏠 Menu",
    "btn_prev": "◀️ Prev",
    "btn_next": "Next ▶️",
    "catalog": "🛍 <b>Catalog</b>\n\nChoose a category:",
    "catalog_empty": "🛍 The shop is being stocked right now. Please come back a little later!",
    "category": "🗂 <b>{name}</b>\n\nChoose a product:",
    "category_button": "{name} ({count})",
    "product_button": "{name} — {price}",
    "product_card": "<b>{name}</b>\n💰 {price}\n\n{description}",
    "product_card_subscription": "<b>{name}</b>\n{price}\n\n{description}",
    "btn_buy": "Buy for {price}",
    "btn_get_free": "Get for free",
    "btn_owned": "✅ Yours — open",
    "free": "Free",
    "unavailable": "This item is no longer available.",
    "stale_button": "This button is out of date.",
    "page_out_of_range": "That page no longer exists.",
    "product_not_found": "Sorry, this product is not available any more. Here is the menu:",
    "product_not_found_removed": "Sorry, this item was removed from the shop. Here is the menu:",
    "unavailable_removed": "This item was removed from the shop.",
    "hint": "I'm a shop bot: use the buttons below, or /help to see how everything works.",
    "help": "❓ <b>How it works</b>\n\n"
            "1. Open the 🛍 Catalog and pick a product.\n"
            "2. Tap <b>Buy</b> and pay right here in Telegram.\n"
            "3. You receive the product at once. It stays in 📦 My purchases for good.\n\n"
            "<b>Commands</b>\n"
            "/start — main menu\n/catalog — the catalog\n/purchases — my purchases\n"
            "/paysupport — a problem with a payment\n/terms — terms of sale\n/help — this help",
    "sorry": "😔 Sorry, something went wrong on our side. Please try again in a moment.",
    "private_only": "I sell in private chats only: {link}",
    # --- paying -----------------------------------------------------------
    "invoice_sent": "Invoice sent below 👇",
    "already_owned": "You already own this. Here it is again:",
    "thanks": "✅ <b>Thank you for your purchase!</b>\n\nHere is <b>{name}</b>:",
    "here_again": "📦 <b>{name}</b>",
    "nothing_hidden": "(The seller has not added any content yet. They will contact you.)",
    "file_failed": "⚠️ We could not send the file for this purchase. The seller has been told "
                   "and will contact you shortly. Your purchase is saved.",
    "checkout_invalid": "This invoice is no longer valid. Please open the product again.",
    "checkout_unavailable": "Sorry, this product is no longer on sale.",
    "checkout_price_changed": "The price has changed. Please open the product again.",
    "checkout_promo_not_applied": "This invoice names a promo code you have not applied. Please open the product "
                                  "again.",
    "checkout_owned": "You already own this product: open it in My purchases.",
    "paid_but_gone": "⚠️ This product was removed while you were paying. Your payment has been refunded.",
    "paid_but_gone_card": "⚠️ This product was removed while you were paying. The seller has been told "
                          "and will refund you.",
    # --- my purchases -----------------------------------------------------
    "purchases": "📦 <b>My purchases</b>\n\nTap one to open it again, or ⭐ to review it:",
    "purchases_empty": "📦 You have no purchases yet. Have a look at the catalog!",
    "purchase_button": "{name} · {date}",
    "purchase_refunded_button": "↩️ {name} (refunded)",
    "purchase_refund_due_button": "↩️ {name} (being refunded)",
    "purchase_refunded": "This purchase was refunded.",
    "purchase_refund_due": "This payment could not be honoured and is being refunded, so there is nothing to open.",
    "not_your_purchase": "This purchase is not available.",
    # --- ⭐ reviews (reviews.py) ------------------------------------------
    "btn_review": "⭐",
    "review_rate": "⭐ How many stars would you give <b>{name}</b>?",
    "review_yours": "Your review: {stars} {text}\nNew stars replace it.",
    "review_ask": "⭐ How do you like <b>{name}</b>? Tap the stars to rate it: your review helps other buyers choose.",
    "review_ask_text": "{stars} for <b>{name}</b>. Add a few words for other buyers (up to {limit} characters), or tap "
                       "➡️ No text.",
    "btn_review_no_text": "➡️ No text",
    "review_text_only": "A review is words only: please send a text.",
    "review_too_long": "That is too long: at most {limit} characters, and this has {length}.",
    "review_saved": "✅ Thank you! Your review of <b>{name}</b> is saved: {stars}",
    "review_refused": "You can review only something you bought and have not had refunded.",
    "review_bad_stars": "A rating is 1 to 5 stars.",
    "review_too_often": "🙏 This review has changed often enough for one hour: please try again a little later.",
    "rating_line": "★ {average} · {reviews}",
    "rating_average": "{whole}.{tenth}",
    "n_reviews": ("{count} review", "{count} reviews"),
    "btn_reviews": "💬 Reviews",
    "reviews_title": "💬 <b>Reviews of {name}</b>",
    "reviews_none": "💬 No reviews of <b>{name}</b> to show yet.",
    "review_entry": "{stars} <b>{name}</b> · {date}",
    "review_buyer": "A buyer",
    "review_reply_entry": "↪️ <i>Seller:</i> {reply}",
    "review_seller_replied": "💬 The seller replied to your review of <b>{name}</b>:\n\n{reply}",
    "admin_new_review": "⭐ New review of <b>{name}</b> from {who} (id <code>{id}</code>): {stars}\n{text}",
    "admin_review_changed": "✏️ {who} (id <code>{id}</code>) changed their review of <b>{name}</b>: {stars}\n{text}",
    "admin_review": "⭐ Review of <b>{name}</b> from {who} (id <code>{id}</code>): {stars}\n{text}",
    "admin_review_hidden": "🙈 Hidden: it counts nowhere, in the average or the list.",
    "btn_review_reply": "↩️ Reply",
    "btn_review_hide": "🙈 Hide",
    "btn_review_show": "👁 Show again",
    "admin_review_hidden_toast": "🙈 The review is hidden.",
    "admin_review_shown_toast": "👁 The review shows again.",
    "admin_review_ask_reply": "↩️ Write your reply to {who}'s review of <b>{name}</b> (up to {limit} characters). It "
                              "will show under the review, and the buyer will be told.",
    "admin_review_reply_empty": "The reply is empty.",
    "admin_review_replied": "✅ Your reply shows under the review, and the buyer has been told.",
    "admin_review_gone": "This review no longer exists: the purchase was refunded.",
    # --- support ----------------------------------------------------------
    # Support tickets (support.py): /paysupport, the customer's side...
    "paysupport": "🆘 <b>Payment support</b> · ticket #{ticket}\n\nDescribe the problem here (a screenshot helps). "
                  "Everything you send in this chat reaches the seller until the ticket is resolved; buttons and "
                  "commands work as usual.",
    "support_open": "🆘 Your ticket #{ticket} is open: just write here, the seller gets every message.",
    "support_sent": "✅ Sent to the seller (ticket #{ticket}). They will answer you here, and whatever else you "
                    "write here reaches them too.",
    "support_unreachable": "😔 Your message could not reach the seller just now. Please try again later.",
    "support_later": "🙏 You have opened several tickets in the last hour, and the seller has your messages. You can "
                     "open a new one a little later.",
    "support_flood": "✋ That is a lot of messages at once. Please wait a minute: the seller has the ones so far.",
    "seller_writes": "💬 <b>The seller answers</b> (ticket #{ticket}):",
    "support_resolved": "✅ The seller marked your ticket #{ticket} as resolved. If you need more help, write "
                        "/paysupport.",
    "support_silent": "⌛ Your ticket #{ticket} was closed after 24 hours without messages. If you need more help, "
                      "write /paysupport.",
    "support_closed": "Ticket #{ticket} is closed.",
    "support_no_ticket": "There is no such ticket.",
    "btn_close_ticket": "✖️ Close the ticket",
    # ...and the seller's (who the customer is and what they bought: plain words, escaped with the notice)
    "admin_support_message": "🆘 <b>Ticket #{ticket}</b>: {who} (id <code>{id}</code>) writes to /paysupport.\n"
                             "Latest purchases:\n{purchases}\n\nReply to this message or the next one to answer.",
    "admin_ticket_message": "🆘 <b>Ticket #{ticket}</b> · {who} (id <code>{id}</code>):",
    "admin_ticket_answered": "💬 <b>Ticket #{ticket}</b> · answered by {admin}:",
    "admin_ask_reply": "💬 Send your answer to ticket #{ticket} (a text, photo or document): the customer gets it "
                       "from the bot.",
    "admin_reply_sent": "✅ Your answer was delivered (ticket #{ticket}).",
    "admin_reply_reopened": "✅ Your answer was delivered, and ticket #{ticket} is open again.",
    "admin_reply_blocked": "❌ Not delivered: the customer has blocked the bot (ticket #{ticket}).",
    "admin_resolved": "✅ Ticket #{ticket} resolved.",
    "admin_ticket_resolved": "✅ {admin} marked ticket #{ticket} ({who}) as resolved.",
    "admin_ticket_silent": "⌛ Ticket #{ticket} ({who}) was closed after 24 hours without messages.",
    "admin_ticket_cancelled": "✖️ {who} closed ticket #{ticket}.",
    "admin_ticket_closed": "Ticket #{ticket} is already closed.",
    "admin_ticket_unknown": "There is no such ticket.",
    "admin_ticket_newer": "Not sent: this customer has opened a newer ticket, #{newer}. Answer there.",
    "support_gift": "🎁 gift: {giver} → {recipient}",
    "support_unclaimed": "not claimed yet",
    "support_refunded": "↩️ refunded",
    "support_refund_due": "↩️ being refunded",
    "btn_reply": "💬 Reply",
    "btn_resolve": "✅ Resolved",
    "terms": "📄 <b>Terms of sale</b>\n\n"
             "• You buy digital goods delivered in this chat right after payment.\n"
             "• Payments are processed by Telegram.\n"
             "• If something you bought does not work, write /paysupport: the seller will help "
             "or refund you.",
    "cancelled": "Cancelled.",
    "nothing_to_cancel": "There is nothing to cancel.",
    # --- unique stock and search ---------------------------------------------
    "in_stock": "📦 {count} in stock",
    "sold_out_line": "❌ Sold out",
    "sold_out": "sold out",
    "sold_out_toast": "Sorry, it has just sold out.",
    "btn_notify": "🔔 Notify me",
    "notify_saved": "🔔 We will message you when it is back in stock.",
    "back_in_stock": "🔔 <b>{name}</b> is back in stock!",
    "btn_open_product": "🛍 Open",
    "checkout_sold_out": "Sorry, this product has just sold out.",
    "sold_out_refunded": "😔 Someone bought the last one a moment before you. Your payment has been refunded.",
    "sold_out_refund_pending": "😔 Someone bought the last one a moment before you. The seller has been told "
                               "and will refund you.",
    "owned_refunded": "↩️ You already own {name}, so this second payment has been refunded. Open it in 📦 My "
                      "purchases.",
    "owned_refund_pending": "You already own {name}. The seller has been told and will refund this second payment. "
                            "Open it in 📦 My purchases.",
    # A late renewal of a subscription the customer replaced with a new one (checkout.refund_at_once)
    "superseded_refunded": "↩️ Telegram charged your old subscription to <b>{name}</b> late, but your new subscription "
                           "already pays for this time, so that payment has been refunded and Telegram has been asked "
                           "to stop the old subscription. Your new subscription goes on as before.",
    "superseded_refund_pending": "⚠️ Telegram charged your old subscription to <b>{name}</b> late, but your new "
                                 "subscription already pays for this time. The seller has been told and will refund "
                                 "that payment, and Telegram has been asked to stop the old subscription.",
    "admin_superseded_refunded": "↩️ Telegram charged {who} (id <code>{id}</code>) {amount} late for their old "
                                 "subscription to <b>{product}</b>, which a new subscription had replaced. Purchase "
                                 "#{purchase} was refunded automatically, and the old subscription cancelled.",
    "admin_superseded_refund_failed": "⚠️ Telegram charged {who} (id <code>{id}</code>) {amount} late for their old "
                                      "subscription to <b>{product}</b>, which a new subscription had replaced, and "
                                      "refused the automatic refund. Please refund purchase #{purchase} here: open it "
                                      "below → ↩️ Refund.",

    "delivery_delayed": "✅ We have received your payment. Delivery is taking a little longer than usual: it will "
                        "arrive here shortly, and nothing more is needed from you.",
    "delivery_late": "📦 Sorry for the wait! Here is <b>{name}</b>:",
    "paid_late": "🙏 Sorry: your payment of {date} reached the shop only now. Here is what you bought:",
    "refunded_by_telegram": "↩️ Telegram has refunded your payment for <b>{name}</b>, so the purchase is closed.",
    "refunded_by_shop": "↩️ The shop has refunded your payment for <b>{name}</b>: the Stars are back on your "
                        "account, and the purchase is closed.",
    "refunded_by_shop_card": "↩️ The shop is refunding your payment for <b>{name}</b> through the payment provider, "
                             "and the purchase is closed.",
    "revoked_by_shop": "↩️ The shop has taken back <b>{name}</b>: it no longer opens. Nothing was paid for it, so "
                       "there is nothing to refund.",
    "checkout_try_later": "The shop cannot take payments at this very moment. Please try again in a minute: nothing "
                          "was charged.",
    "slow_down": "⏳ That is a lot of taps at once: give me a second, then carry on.",
    "search_results": "🔎 «{query}»: {count} found",
    "search_more": "🔎 «{query}»: more than {count} found. Here are the first {count}; add a word to narrow "
                   "the search.",
    "search_nothing": "🔎 Nothing found for «{query}». Try other words, or browse the catalog. /help shows "
                      "how the shop works.",
    "search_how": "🔎 Send me a word or two to search the catalog, e.g. <code>/search netflix</code>.",
    # --- the seller's panel (/admin) -----------------------------------------
    "admin_panel": "🛠 <b>Admin panel</b>\n\nWhat would you like to do?",
    "btn_add_product": "➕ Add product",
    "btn_categories": "🗂 Categories",
    "btn_products": "📦 Products",
    "btn_sales": "📊 Sales",
    "btn_recent": "🧾 Recent purchases",
    "btn_broadcast": "📣 Broadcast",
    "btn_export": "📄 Export",
    "btn_backup": "💾 Backup",
    "btn_alerts_on": "🔔 Sale alerts: on",
    "btn_alerts_off": "🔕 Sale alerts: off",
    "btn_daily_on": "🔁 Daily to me: on",
    "btn_daily_off": "🔁 Daily to me: off",
    "btn_cancel": "✖️ Cancel",
    "btn_save": "✅ Save",
    "btn_send": "✅ Send",
    "btn_new_category": "➕ New category",
    "btn_edit_name": "✏️ Name",
    "btn_edit_price": "✏️ Price",
    "btn_edit_description": "✏️ Description",
    "btn_edit_description_file": "✏️ Description file",
    "btn_edit_hidden": "✏️ Hidden content",
    "admin_choose_kind": "What does each buyer receive?\n\n♾ <b>The same content</b> for everyone: a guide, a course, "
                         "a link.\n🔑 <b>A unique item</b> of their own: a licence key, a gift code, an account. You "
                         "upload the items; when they run out, the product is sold out.",
    "btn_kind_unlimited": "♾ The same content for everyone",
    "btn_kind_stocked": "🔑 A unique item each (keys, codes)",
    "btn_edit_kind": "✏️ Kind",
    "btn_hide": "🙈 Hide",
    "btn_show": "👁 Show",
    "btn_delete": "🗑 Delete",
    "btn_refund": "↩️ Refund",
    "btn_confirm_refund": "↩️ Yes, refund",
    "btn_upload_stock": "📥 Upload stock",
    "btn_clear_stock": "🧹 Remove unsold",
    "admin_unlimited": "unlimited (everyone gets the hidden content)",
    "admin_ask_stock": "📥 Send the stock: paste items one per line, or send a .txt/.csv file with one item per line "
                       "(blank lines and duplicates are skipped). Any other file or photo becomes one item. Send as "
                       "many messages and files as you need, then tap ✅ Done. Each buyer gets one item of their "
                       "own; the hidden content is sent to all of them too.",
    "admin_stock_added": "📥 Added {added}, skipped {skipped}.",
    "admin_stock_so_far": "📥 So far: {added} added, {skipped} skipped. Send more (a long paste may arrive in "
                          "several messages), or tap ✅ Done.",
    "btn_done": "✅ Done",
    "err_item_too_long": "❗ Line {line} has {length} characters; one item may have at most {limit}. Nothing from "
                         "this upload was added: shorten that line and send it again.",
    "admin_confirm_clear_stock": "Remove {items}? Sold ones stay with their buyers.",
    "admin_stock_removed": "Removed {items}.",
    "admin_low_stock": "⚠️ <b>{name}</b> (#{id}) is running low: {count} left. /admin → 📦 Products → 📥 Upload stock.",
    "admin_sold_out": "❌ <b>{name}</b> (#{id}) has sold out. Customers can ask to be notified; upload stock "
                      "to sell it again.",
    "admin_sold_out_refunded": "↩️ Purchase #{purchase} ({product}, {amount}) by {who} (id <code>{id}</code>) found "
                           "no stock left (someone else got the last item). It was refunded automatically.",
    "admin_sold_out_refund_pending": "⚠️ Purchase #{purchase} ({product}, {amount}) by {who} (id <code>{id}</code>) "
                                "found no stock left. Please refund it in your provider's dashboard (provider charge "
                                "<code>{provider}</code>).",
    "admin_sold_out_refund_failed": "⚠️ Purchase #{purchase} ({product}, {amount}) by {who} (id <code>{id}</code>) "
                                    "found no stock left, and Telegram refused the automatic refund. Please refund "
                                    "purchase #{purchase} here: open it below → ↩️ Refund.",
    "admin_owned_refunded": "↩️ {who} (id <code>{id}</code>) paid a second time for <b>{product}</b> ({amount}), which "
                            "they already own. Purchase #{purchase} was refunded automatically.",
    "admin_owned_refund_pending": "⚠️ {who} (id <code>{id}</code>) paid a second time for <b>{product}</b> "
                                 "({amount}), which they already own. Please refund purchase #{purchase} in your "
                                 "provider's dashboard (provider charge <code>{provider}</code>) and mark it "
                                 "refunded here.",
    "admin_owned_refund_failed": "⚠️ {who} (id <code>{id}</code>) paid a second time for <b>{product}</b> "
                                 "({amount}), which they already own, and Telegram refused the automatic refund. "
                                 "Please refund purchase #{purchase} here: open it below → ↩️ Refund.",
    "admin_refunded_by_telegram": "↩️ Telegram refunded purchase #{purchase} ({product}) of {who} (id "
                                  "<code>{id}</code>). It is marked refunded; the buyer no longer has access.",
    "admin_ledger_fixed": "🧾 Telegram's Stars ledger showed what the shop had missed: {payments} recorded and "
                          "delivered, {refunds} applied.",
    "admin_ledger_started": "🧾 This database reads Telegram's Stars ledger from now on. {payments} made before it "
                            "were left alone: nothing was recorded, refunded or sent to anyone.",
    "admin_ledger_restored": "♻️ Telegram's Stars ledger showed {payments} that this shop had recorded and "
                             "delivered but this database had lost (was it restored from an older copy?). They are "
                             "recorded again; the buyers were not written to.\n\nSales that lack their key or "
                             "product in this database (the buyer has it, check by hand):\n{missing}",
    "admin_ledger_unhonoured": "⚠️ Telegram's Stars ledger shows {count} payment(s) the shop never heard of and "
                               "cannot honour. Nothing was refunded and the buyers were not told: check each, and "
                               "refund with its button.\n{payments}",
    "admin_journal_failed": "⚠️ The payments journal <code>{path}</code> cannot be written ({error}). Payments are "
                            "still recorded in the database, but the shop has lost its second chance if the "
                            "database fails: free some disk space or fix the folder's permissions.",
    "ledger_item": "{amount} from {who} (id {id}), purchase {purchase}: {why}. Charge {charge}",
    "ledger_gone": "its product is gone",
    "ledger_sold_out": "sold out",
    "ledger_owned": "a second payment for something the buyer owns",
    "ledger_promo": "its promo code has no use left",
    "ledger_key_missing": "its key is not in this database",
    "ledger_product_missing": "its product is not in this database, so it was not recorded",
    "btn_refund_payment": "↩️ Refund {number}",
    "admin_payment_recorded_late": "⚠️ Payment <code>{charge}</code> ({amount}) from {who} (id <code>{id}</code>) "
                                   "could be recorded only after a retry; it is recorded and delivered now. "
                                   "Provider charge: <code>{provider}</code>.",
    "err_stock_kind": "❗ Send text lines, a .txt/.csv file, or a file or photo to sell as one item.",
    "err_not_text_file": "❗ That file is not text. Send a .txt or .csv file with one item per line.",
    "err_file_too_big": "❗ That file is over 20 MB, more than Telegram lets bots download. Split it.",
    "try_again": "Please send it again, or /cancel.",
    "admin_choose_category": "➕ <b>New product</b>\n\nChoose its category:",
    "admin_ask_category_name": "Send the category's name (up to 64 characters).",
    "admin_ask_name": "Send the product's name (up to 64 characters).",
    "admin_ask_price": "Send the price in {currency}, e.g. <code>{example}</code>. <code>0</code> makes it free.",
    "admin_ask_description": "Send the product's description (what customers see before buying).",
    "admin_ask_description_file": "Send a photo or a document to show with the description, or /skip for none.",
    "admin_ask_hidden": "Send the hidden content: what the buyer receives after paying. A text (key, link...), "
                        "a document or a photo; a file's caption is kept too.",
    "admin_preview": "👀 <b>Preview</b>: this is how customers will see the card.",
    "admin_saved": "Saved: the product is on sale.",
    "admin_categories": "🗂 <b>Categories</b>\n\n⬆️⬇️ reorder · ✏️ rename · 🗑 delete (only when empty).",
    "admin_category_not_empty": "Only an empty category can be deleted.",
    "admin_deleted": "Deleted.",
    "admin_products": "📦 <b>Products</b>\n\nChoose a category:",
    "admin_category": "🗂 <b>{name}</b>: {products} (🙈 = hidden)",
    "admin_on_sale": "on sale",
    # --- issue 27: a stocked product without items, and what a change of kind does ---
    "admin_stock": "Stock: {stock}",
    "admin_sold_out_status": "❌ sold out until you upload stock (📥 Upload stock, below)",
    "admin_kind_to_unlimited": "\n\nNow 🔑 a unique item each, with {items}. Switched to ♾ the same content for "
                               "everyone, those items are kept but no longer sold; switching back sells them again.",
    "admin_kind_to_stocked": "\n\nNow ♾ the same content for everyone. Switched to 🔑 a unique item each, it is "
                             "sold out until you upload stock (📥 Upload stock).",
    "admin_kind_to_stocked_again": "\n\nNow ♾ the same content for everyone. Switched to 🔑 a unique item each, "
                                   "it sells the {items} kept from before.",
    "admin_hidden": "🙈 hidden",
    "admin_product": "<b>#{id} {name}</b>\nCategory: {category}\nPrice: {price}\nStatus: {status}\n"
                     "Sold: {sales} · revenue {revenue} · 🎁 free: {free} · granted: {granted}\n{stock}\n\n"
                     "<b>Description</b>\n{description}\n"
                     "Description file: {file}\n\n<b>Hidden content</b>\n<tg-spoiler>{hidden}</tg-spoiler>\n"
                     "Hidden file: {hidden_file}",
    "admin_hidden_not_deleted": "People bought it, so it was hidden instead: they keep their access.",
    "admin_confirm_delete": "Delete <b>{name}</b> for good?",
    "admin_sales": "📊 <b>Sales</b>",
    "admin_sales_line": "\n<b>{period}</b>: {sales} · {revenue}\n🎁 free: {free} · granted: {granted} · ↩️ refunds: "
                        "{refunds} · 👤 new users: {users}",
    "period_today": "Today",
    "period_7d": "7 days",
    "period_30d": "30 days",
    "period_all": "All time",
    "admin_top": "\n🏆 <b>Top products, 30 days</b>",
    "admin_top_line": "{place}. {name} — {count}",
    "admin_recent": "🧾 <b>Recent purchases</b> (↩️ = refunded, 🎁 = a gift)",
    "admin_no_purchases": "🧾 No purchases yet.",
    "admin_purchase": "🧾 <b>Purchase #{id}</b>\nBuyer: {buyer} · id <code>{buyer_id}</code>\nProduct: {product}\n"
                      "Price: {price}\nPayment: {type} · <code>{payment_id}</code>\nDate: {date}",
    "admin_refunded_at": "↩️ Refunded: {date}",
    "admin_refund_due": "⚠️ The shop could not honour this payment: it waits for a refund.",
    "admin_confirm_refund": "Refund purchase #{id} ({product}, {price}) to {buyer}? They lose access to it.",
    "admin_refunded": "✅ Refunded: the Stars are back with the buyer.",
    "admin_refund_marked": "✅ Marked as refunded. Refund the money in your payment provider's dashboard.",
    # Telegram's refusals, said in the reader's words (shopkit.telegram_error)
    "tg_error_refunded": "it was refunded already",
    "tg_error_no_charge": "Telegram has no such payment",
    "tg_error_balance": "the bot's Stars balance is too low",
    "tg_error_rights": "the bot lacks the administrator rights it needs there",
    "tg_error_not_member": "the bot is no longer in the chat",
    "tg_error_no_chat": "Telegram cannot find the chat",
    "tg_error_no_file": "Telegram no longer has the file",
    "tg_error_other": "Telegram said: {description}",
    "admin_refund_failed": "❌ Telegram refused the refund: {error}. Nothing was changed.",
    "admin_already_refunded": "This purchase is already refunded.",
    "admin_refund_usage": "Usage: <code>/refund &lt;payment id&gt;</code> (see 🧾 Recent purchases).",
    "admin_grant_usage": "Usage: <code>/grant &lt;telegram id&gt; &lt;product id&gt;</code>",
    "admin_grant_owned": "This customer already owns the product.",
    "admin_granted": "✅ Granted and delivered (purchase #{id}).",
    "admin_new_sale": "💰 New sale: <b>{product}</b> — {price} ({type}) to {who}",
    "admin_unmatched_payment": "⚠️ Payment <code>{charge}</code> ({amount}) from {who} (id <code>{id}</code>) "
                               "was for a product that no longer exists. Please refund it.",
    "admin_unmatched_payment_refunded": "⚠️ Payment <code>{charge}</code> ({amount}) from {who} "
                                        "(id <code>{id}</code>) was for a product that no longer exists. "
                                        "It was refunded automatically.",
    "admin_file_failed": "⚠️ Telegram refused the file of <b>{product}</b> for purchase #{purchase}: {error}. "
                         "Please send it to the buyer and fix the product.",
    # Broadcast: whom it reaches, part of the audience, ⚡ fast (broadcast.py)
    "admin_ask_broadcast": "📣 Send the message to broadcast: a text, or a photo or document with a caption. "
                           "Under its preview you choose who gets it.",
    "admin_confirm_broadcast": "☝️ This is the preview. Send it?",
    "admin_broadcast_to_everyone": "👥 To {people} who started the bot, {buyers}.",
    "admin_broadcast_blocked_left_out": " Left out: {people} who blocked the bot.",
    "admin_broadcast_to_buyers": "👥 To the buyers (they paid for something and were not refunded; free items, "
                                 "grants and gifts received do not count): {people}.",
    "admin_broadcast_to_product": "👥 To the buyers of <b>{product}</b> (they paid for it and were not refunded; "
                                  "free copies, grants and gifts received do not count): {people}.",
    "admin_broadcast_to_subscribers": "👥 To the active subscribers of <b>{product}</b> (their paid access has not "
                                      "ended): {people}.",
    "admin_broadcast_fast_hint": "⚡ At standard speed (about 30 a second) this takes about {minutes} min. A fast "
                                 "broadcast sends up to a thousand a second, for 0.1 ⭐ a message.",
    "admin_broadcast_audiences": "👥 Who should get it?",
    "admin_broadcast_pick_product": "📦 The buyers of which product? (Paid and not refunded.)",
    "admin_broadcast_pick_subscription": "📅 The active subscribers of which subscription?",
    "admin_broadcast_none_to_pick": "Nobody yet.",
    "admin_broadcast_fast_offer": "⚡ <b>Fast broadcast</b> to {people}: 0.1 ⭐ × {count} = {cost}.\n"
                                  "The bot's balance: {balance}.",
    "admin_broadcast_fast_ok": "Telegram takes the fee from the bot's balance and delivers up to a thousand "
                               "messages a second.",
    "admin_broadcast_fast_short": "❗ The bot's balance cannot pay for it. Send it at standard speed instead: "
                                  "it is free.",
    "admin_broadcast_refused_balance": "❗ The fast broadcast was not sent: it costs {cost}, and the bot's balance "
                                       "is {balance}. Nobody got it; you may send it again at standard speed.",
    "admin_broadcast_balance_ran_out": "⚡ The bot's balance ran out: Telegram refuses more paid messages, so "
                                       "the rest of the broadcast goes at standard speed.",
    "admin_broadcast_fee": "⚡ Fast: {cost} paid to Telegram.",
    "admin_broadcast_unsure": "⚠️ {people} may not have it: the shop stopped while sending to them, and they "
                              "were not written to again, so that nobody gets it twice.",
    "btn_broadcast_audience": "👥 Change audience",
    "btn_broadcast_fast": "⚡ Fast broadcast…",
    "btn_send_fast": "⚡ Send fast ({cost})",
    "btn_audience_everyone": "👥 Everyone ({count})",
    "btn_audience_buyers": "💰 Buyers ({count})",
    "btn_audience_product": "📦 Buyers of a product…",
    "btn_audience_subscribers": "📅 Subscribers of…",
    "btn_audience_of": "{name} ({count})",
    "n_people": ("{count} person", "{count} people"),
    "n_of_them_buyers": ("{count} of them a buyer", "{count} of them buyers"),
    "admin_broadcast_busy": "A broadcast is already running.",
    "admin_broadcast_started": "📣 Sending to {people}. The shop keeps serving meanwhile.",
    "admin_broadcast_progress": "📣 Broadcast: {done} of {total}…",
    "admin_broadcast_done": "📣 Broadcast finished: {sent} sent, {blocked} blocked the bot, {failed} failed.",
    # Export, figures that agree, gifts and refunds seen by the seller, progress of long work (issue 27)
    "admin_exporting": "📄 Making the export…",
    "admin_export_caption": "📄 Every purchase; dates and times are in UTC. The .csv file is the same, for other "
                            "programs.",
    "progress_export": "⏳ Exporting… {percent} %",
    "progress_stock": "⏳ Adding items… {percent} %",
    "progress_backup": "⏳ Making the backup… {percent} %",
    "admin_sparkline": "📈 {days} days: {sparkline} · best day {best}",
    "admin_discounts_free": " · 🎁 free: {free}",
    "admin_refunded_at_by": "↩️ Refunded: {date}, by {who}",
    "admin_new_gift_sale": "💰 New sale, 🎁 a gift: <b>{product}</b> — {price} ({type}) from {who}. It goes to whoever "
                           "opens the gift link first.",
    "admin_gift_claimed_alert": "🎁 Gift claimed: <b>{product}</b>, {giver} → {recipient}",
    "export_sheet": "Purchases",
    "export_date": "Date and time (UTC)",
    "export_purchase": "Purchase",
    "export_buyer": "Buyer",
    "export_username": "Username",
    "export_buyer_id": "Buyer id",
    "export_product": "Product",
    "export_kind": "Kind",
    "export_payment": "Payment",
    "export_list_price": "List price",
    "export_price": "Price paid",
    "export_currency": "Currency",
    "export_code": "Promo code",
    "export_gift": "Gift (giver → recipient)",
    "export_subscription": "Subscription payment",
    "export_refunded_at": "Refunded (UTC)",
    "export_refunded_by": "Refunded by",
    "export_telegram_charge": "Telegram charge id",
    "export_provider_charge": "Provider charge id",
    "export_kind_unlimited": "same content for all",
    "export_kind_stocked": "unique item",
    "export_kind_subscription": "subscription",
    "export_kind_paid_media": "paid media",
    "export_commission": "Affiliate commission (⭐)",
    "export_invited_by": "Invited by (id)",
    "export_first_payment": "first payment",
    "export_renewal": "renewal",
    "export_unclaimed": "not claimed yet",
    "export_refunded_by_shop": "the seller",
    "export_refunded_by_auto": "the shop, automatically",
    "export_refunded_by_telegram": "Telegram",
    "become_admin": "🛠 This shop has no admin yet. If it is yours, add <code>ADMIN_IDS={id}</code> to its "
                    "settings (the environment, e.g. /etc/shopbot.env) and restart it: {id} is your Telegram id.\n\n"
                    "What would you like to do?",
    "admin_backup": "💾 <b>Backup</b>\n\nEach copy of the shop is sent to you here: a gzip-compressed SQLite file. "
                    "The newest {keep} of each kind (daily, and made here) are also kept on the server, in "
                    "<code>{folder}</code>.\n\n"
                    "To restore one: stop the shop, then run "
                    "<code>python shopbot.py --restore backups/COPY.db.gz</code>: it checks the copy, keeps the "
                    "database before beside it and puts the copy in place. Then start the shop again.\n\n"
                    "🔁 <b>Daily to me</b>, on the panel: a copy every 24 hours, in this chat.",
    "backup_caption": "💾 A copy of the shop. The newest copies are also kept on the server, in <code>{folder}</code>.",
    "backup_too_big": "💾 This copy of the shop is {size} MB, more than the 50 MB Telegram lets a bot send. "
                      "It is kept on the server: <code>{path}</code>",
    "daily_backup_on": "🔁 Daily copies on: the next one comes within the day.",
    "daily_backup_off": "Daily copies off.",
    "backup_no_room": "only {free} MB free in {folder}, and a copy needs {needed} MB there, with room to spare "
                      "for the shop",
    "backup_failed": "💾 <b>No copy was made</b>: {reason}.\n\nNothing half-written was left on the server. "
                     "Tap 💾 Backup again once that is fixed.",
    "daily_backup_failed": "🔁 <b>The daily backup failed</b>: {reason}.\n\nNothing half-written was left on the "
                           "server, and the shop goes on. The next try is in {minutes} minutes, then less and less "
                           "often (at least every 6 hours). You are told again only if a copy fails after one has "
                           "been made.",
    "admin_disk_full": "⚠️ <b>The server's disk is nearly full</b>: {free} MB free in <code>{folder}</code>.\n\n"
                       "Until there are {low} MB free again, payments are refused before anyone is charged, "
                       "and customers are asked to try again later. Free some space (old copies in backups/, "
                       "logs): the shop goes on by itself.",
    "admin_disk_back": "✅ <b>The server's disk has room again</b>: {free} MB free. Payments are taken again.",
    "admin_backup_server": "💾 The shop uses a database server: back it up with its own tools, e.g. "
                           "<code>pg_dump DATABASE_URL &gt; shop.sql</code> for PostgreSQL.",
    # --- /status (status.py) ---------------------------------------------------
    "status": "🩺 <b>Status</b>\n\n"
              "Running since {since}\n"
              "Version: {version}\n"
              "Database: {size}; {free} free on its disk\n"
              "Last backup: {backup}\n"
              "{ledger}\n"
              "Updates waiting at Telegram: {pending}\n"
              "Errors in the last 24 hours: {errors}",
    "status_never": "none yet",
    "status_backup": "{when} (<code>{name}</code>)",
    "status_backup_server": "made with the database server's own tools (pg_dump), which the shop does not see",
    "status_unknown": "unknown ({why})",
    # --- why the seller's answer was not taken -------------------------------
    "err_expected_text": "❗ I need a text here.",
    "err_expected_file": "❗ I need a photo or a document here (or /skip).",
    "err_name_too_long": "❗ That is too long: at most {limit} characters.",
    "err_description_too_long": "❗ The description has {length} characters; at most {limit} fit the card.",
    "err_price_not_number": "❗ That is not a price. Send a number such as {example}.",
    "err_price_decimals": "❗ This currency allows {places} decimal places.",
    "err_price_whole": "❗ A price in {currency} is a whole number: send e.g. {example}.",
    "err_download_failed": "❗ I could not download that file from Telegram. Please send it again.",
    "admin_hint": "🛠 You are this shop's admin: /admin opens your panel.",
    "err_price_too_high": "❗ Telegram accepts at most {limit} per payment.",
    "err_category_exists": "❗ A category with this name already exists.",
    "err_use_buttons": "❗ Use the buttons under the preview: ✅ Save or ✖️ Cancel.",
    "err_broadcast_kind": "❗ Send a text, a photo or a document.",
    "n_products": ("{count} product", "{count} products"),
    "n_items": ("{count} item", "{count} items"),
    "n_unsold_items": ("{count} unsold item", "{count} unsold items"),
    "n_duplicates": ("{count} duplicate", "{count} duplicates"),
    "n_customers": ("{count} customer", "{count} customers"),
    "n_sales": ("{count} sale", "{count} sales"),
    "n_payments": ("{count} payment", "{count} payments"),
    "n_refunds": ("{count} refund", "{count} refunds"),
    "admin_ledger_never": "\n🧾 Telegram's Stars ledger has not been checked yet.",
    "admin_ledger_checked": "\n🧾 Telegram's Stars ledger checked {date}; it fixed {payments} and {refunds}.",
    # --- ⭐ Stars net of Telegram's cuts, from its ledger (ledger.py) ---
    "admin_stars": "\n⭐ <b>Stars in Telegram's ledger</b>: gross − affiliate commissions − paid-broadcast fees = net",
    "admin_stars_line": "{period}: {gross} − {commissions} − {fees} = <b>{net}</b>",
    "admin_stars_balance": "Balance now: {balance}",
    "admin_stars_balance_unknown": "Balance now: Telegram did not say; try again in a moment.",
    "admin_stars_unknown": "⚠️ Transactions of a kind this shop does not know yet, in the ledger: {count}. Counted "
                           "apart and logged; nothing was done about them.",
    "payment_stars": "Telegram Stars",
    "payment_card": "card",
    "payment_free": "free",
    "payment_manual": "granted",
    "file_photo": "photo",
    "file_document": "document",
    "admin_granted_undelivered": "✅ Granted (purchase #{id}), but not delivered: the customer has blocked the "
                                 "bot. It waits in their 📦 My purchases.",
    "admin_confirm_revoke": "Take back #{id} ({product}) from {buyer}? It was free, so there is no money to return; "
                            "they lose access to it.",
    "btn_confirm_revoke": "↩️ Yes, take back",
    "admin_revoked": "✅ Taken back: the customer no longer has access. It was free, so no money moved.",
    # --- issue 27: buttons that mean what they say, honest /grant, prompts that match the currency ---
    "btn_take_back": "↩️ Take back",
    "btn_refund_giver": "↩️ Refund {giver}'s payment",
    "admin_confirm_refund_gift": "Refund purchase #{id} ({product}, {price}) to {buyer}, who paid for this gift? "
                                 "{recipient} loses access to it; both are told.",
    "granted_gift": "🎁 <b>A gift from the shop:</b> {name}. Here it is:",
    "admin_grant_no_product": "There is no product {id}. Its number is on its screen in /admin → 📦 Products "
                              "(#{id}).",
    "admin_grant_pending": "⏳ {id} has not opened the bot yet, so Telegram does not let it write to them. They "
                           "will get <b>{product}</b> when they do (their first /start), and you will be told.",
    "admin_grant_arrived": "✅ {who} opened the bot and received <b>{product}</b>, granted by you (purchase #{id}).",
    "admin_grant_waiting_failed": "⚠️ {who} opened the bot, but <b>{product}</b>, granted by you, could not be "
                                  "given: it is sold out, or they own it already. Grant it again if you wish.",
    "admin_category_first": "It is first already.",
    "admin_category_last": "It is last already.",
    "currency_stars": "Stars",
    # --- 📅 subscriptions to a channel or group (subscriptions.py, channels.py) ---
    "subscription_price": "📅 {price} a month",
    "btn_subscribe": "📅 Subscribe — {price} a month",
    "btn_subscribe_pay": "⭐ Subscribe for {price} a month",
    "btn_subscribe_short": "📅 Subscribe",
    "subscription_invoice": "📅 <b>{name}</b>: {price} a month.\n\nTelegram renews it every 30 days until you "
                            "cancel it (📦 My purchases). Your link to the chat comes right after the payment.",
    "subscription_already": "You are subscribed already.",
    "checkout_subscribed": "You are subscribed already: see 📦 My purchases.",
    "subscription_join": "🔗 Your own link to <b>{chat}</b>: open it and ask to join, and I let you in at once. It "
                         "works for you only.",
    "btn_join": "🔗 Join {chat}",
    "subscription_link_later": "⏳ Your subscription is active, but I cannot make your link to <b>{chat}</b> right "
                               "now. Open 📦 My purchases → 🔗 Join a little later.",
    "subscription_joined": "✅ Welcome to <b>{chat}</b>!",
    "subscription_members_only": "🔒 <b>{chat}</b> is for subscribers only. Subscribe, and you get a link of your "
                                 "own.",
    "subscription_ended": "⌛ Your subscription to <b>{name}</b> has ended, so you are no longer in <b>{chat}</b>. "
                          "Renew it to come back.",
    "subscription_refunded": "↩️ Your payment for <b>{name}</b> was refunded, so your access to <b>{chat}</b> has "
                             "ended.",
    "subscription_ended_still_in": "⌛ Your subscription to <b>{name}</b> has ended. You stay in <b>{chat}</b> "
                                   "through your other subscription.",
    "btn_renew": "♻️ Renew",
    "subscription": "📅 <b>{name}</b>\nChat: {chat}\n{status}\nPrice: {price} a month",
    "sub_state_active": "✅ Active · renews on {date}",
    "sub_state_cancelled": "⏸ Cancelled · access until {date}",
    "sub_state_ended": "⌛ Ended on {date}",
    "sub_button_active": "renews {date}",
    "sub_button_cancelled": "until {date}",
    "sub_button_ended": "ended",
    "btn_cancel_subscription": "❌ Cancel",
    "btn_resume_subscription": "♻️ Resume",
    "subscription_cancel_done": "Cancelled: no more payments. Your access lasts until {date}.",
    "subscription_resume_done": "♻️ Resumed. If Telegram still shows it as cancelled, turn it back on in Telegram: "
                                "Settings → My Stars.",
    "subscription_edit_failed": "Telegram did not accept that right now. Please try again later.",
    # --- 📅 Telegram's word on a subscription, and the reminder before one ends (subscriptions.py) ---
    "sub_state_failed": "⚠️ Renewal failed · access until {date}",
    "sub_button_failed": "unpaid, until {date}",
    "btn_subscribe_again": "♻️ Subscribe again",
    "subscription_reenable_in_telegram": "\n\nYou turned renewal off in Telegram, so only you can turn it back "
                                         "on, there: Settings → My Stars → this subscription.",
    "subscription_resume_in_telegram": "You turned renewal off in Telegram: turn it back on there, in Settings → "
                                       "My Stars.",
    "subscription_renewal_failed_note": "\n\nTelegram could not charge the renewal. ♻️ Renew to pay for a new "
                                        "month.",
    "subscription_renewal_failed": "⚠️ Telegram could not renew your subscription to <b>{name}</b>: there were not "
                                   "enough Stars on your balance. Your access lasts until {date}. Top up your "
                                   "Stars in Telegram (Settings → My Stars), or tap ♻️ Renew to pay for a new month.",
    "subscription_ending": "⏳ Your subscription to <b>{name}</b> ends on {date}, and you leave <b>{chat}</b> "
                           "then: it was cancelled. ♻️ Resume it to stay.",
    "subscription_ending_in_telegram": "⏳ Your subscription to <b>{name}</b> ends on {date}, and you leave "
                                       "<b>{chat}</b> then: you turned renewal off in Telegram. To stay, turn it "
                                       "back on there: Settings → My Stars → this subscription.",
    "btn_kind_subscription": "📅 A subscription to a channel or group",
    "admin_kind_subscription": "\n📅 <b>A subscription</b>: monthly access to your private channel or group, paid in "
                               "Stars. The hidden content is a welcome note, sent with the invite.",
    "admin_subscription_needs_stars": "📅 Telegram bills subscriptions in Stars only, and this shop takes cards "
                                      "(PAYMENT_PROVIDER_TOKEN), so it cannot sell them.",
    "admin_ask_subscription_chat": "📅 Which channel or group does the subscription open?\n\n1. Add me to it as an "
                                   "administrator allowed to <b>invite users via link</b> and to <b>ban users</b>.\n"
                                   "2. Send its @username or id here, or forward me a post from it.",
    "err_chat_reference": "❗ Send the chat's @username, its id (like <code>-1001234567890</code>), or forward a post "
                          "from it.",
    "err_chat_unreachable": "❗ I cannot see that chat. Add me to it as an administrator first.",
    "err_chat_type": "❗ That is not a channel or a supergroup, and only there can bots let members in and out. "
                     "(Telegram makes a group a supergroup when, for example, its history is made visible to new "
                     "members.)",
    "err_chat_not_admin": "❗ I am not an administrator of <b>{chat}</b>. Make me one, allowed to invite users via "
                          "link and to ban users.",
    "err_chat_rights": "❗ In <b>{chat}</b> I still need these administrator rights: {rights}. Switch them on in the "
                       "chat's settings → Administrators → me.",
    "right_invite": "invite users via link",
    "right_ban": "ban users",
    "admin_ask_subscription_price": "Send the price per month in Stars, from 1 to 10 000 (Telegram's limits), e.g. "
                                    "<code>{example}</code>.",
    "err_subscription_price": "❗ A subscription costs from 1 to {limit} a month.",
    "admin_subscribers": "📅 {chat}: {subscribers}",
    "admin_subscriber_line": "• {who} — {state}",
    "admin_subscribers_more": "…and {count} more",
    "btn_all_subscribers": "👥 All subscribers",
    "admin_all_subscribers": "👥 <b>{name}</b> — {chat}",
    "n_subscribers": ("{count} subscriber", "{count} subscribers"),
    "admin_subscription_figures": "\n📅 <b>Subscriptions</b>: {subscribers} · {monthly} a month\n30 days: 🔁 "
                                  "renewals: {renewals} · ❌ cancellations: {cancellations} · ⚠️ failed renewals: "
                                  "{failed}",
    "admin_chat_rights_lost": "⚠️ I can no longer manage <b>{chat}</b> ({error}). Until this is fixed, "
                              "subscribers cannot join and expired ones stay in. Open the chat → Administrators → "
                              "me, and allow me to invite users via link and to ban users. I keep trying every "
                              "minute; nothing is lost meanwhile.",
    "admin_grant_subscription": "A subscription cannot be granted: Telegram bills it every month.",
    # --- 📸 paid media and 🔒 protected content (paid_media.py, channels.py, admin.py) ---
    "btn_kind_paid_media": "📸 Paid media: photos and videos",
    "admin_kind_paid_media": "\n📸 <b>Paid media</b>: up to 10 photos and videos, shown blurred until the customer "
                             "pays in Stars; Telegram unlocks them right in the chat.",
    "admin_paid_media_needs_stars": "📸 Telegram sells paid media for Stars only, and this shop takes cards "
                                    "(PAYMENT_PROVIDER_TOKEN), so it cannot sell it.",
    "admin_ask_paid_media": "📸 Send the photos and videos, one per message, up to {limit}. Tap ✅ Done when they are "
                            "all here.",
    "admin_paid_media_so_far": "📸 {count} of {limit} received. Send more, or tap ✅ Done.",
    "err_paid_media_kind": "❗ Only photos and videos can be sold as paid media: not a document, a sticker or a text.",
    "err_paid_media_full": "❗ Telegram takes at most {limit} photos and videos in one paid media. Tap ✅ Done.",
    "err_paid_media_none": "Send at least one photo or video first.",
    "admin_ask_paid_media_price": "Send the price in Stars, from 1 to 25,000 (Telegram's limits), e.g. "
                                  "<code>{example}</code>.",
    "err_paid_media_price": "❗ Paid media costs from 1 to {limit}.",
    "admin_ask_paid_media_caption": "Send the caption shown under the photos (up to 1,024 characters), or /skip for "
                                    "none.",
    "err_caption_too_long": "❗ A caption holds at most {limit} characters; this one has {length}.",
    "btn_edit_caption": "✏️ Caption",
    "admin_paid_media": "📸 {photos}, {videos}",
    "n_photos": ("{count} photo", "{count} photos"),
    "n_videos": ("{count} video", "{count} videos"),
    "btn_post_to_channel": "📣 Post to channel",
    "admin_ask_post_channel": "📣 Which channel should I post it in?\n\n1. Make me an administrator of it, allowed to "
                              "<b>post messages</b>.\n2. Send its @username or id here, or forward me a post from "
                              "it.\n\nTelegram pays the Stars of paid media bought in a channel to the channel's own "
                              "balance and tells me nothing, so those sales are not in 📊 Sales.",
    "err_post_chat_type": "❗ That is not a channel: paid media is posted in channels.",
    "err_post_not_admin": "❗ I am not an administrator of <b>{chat}</b>. Make me one, allowed to post messages.",
    "right_post": "Post messages",
    "admin_posted": "📣 Posted in <b>{chat}</b>. Its buyers pay the channel: Telegram puts those Stars on the "
                    "channel's balance and does not tell me, so they are not counted in 📊 Sales.",
    "admin_post_failed": "❗ I could not post in <b>{chat}</b>: {error}",
    "paid_media_card": "📸 {count} photos and videos, unlocked right here once paid. Telegram collects the price "
                       "itself, so promo codes and gifts do not apply.",
    "protected_card": "🔒 Protected: it cannot be forwarded or saved.",
    "paid_media_sent": "📸 Sent below: pay there to unlock it.",
    "admin_paid_media_twice": "⚠️ {who} (id <code>{id}</code>) paid a second time for <b>{product}</b> ({amount}): "
                              "two blurred copies were both unlocked. Please refund purchase #{purchase}: open it "
                              "below → ↩️ Refund.",
    "paid_media_thanks": "✅ <b>Thank you!</b> <b>{name}</b> is unlocked above, and stays in 📦 My purchases.",
    "btn_protected_on": "🔒 Protected: on",
    "btn_protected_off": "🔓 Protected: off",
    # --- promo codes and gifts (promos.py, promo_panel.py, gifts.py) ----------
    "btn_promo_code": "🏷 Promo code",
    "btn_buy_gift": "🎁 Buy as a gift",
    "promo_ask": "🏷 Send your promo code.",
    "promo_applied": "✅ Promo code <b>{code}</b> applied.",
    "product_card_promo": "<b>{name}</b>\n💰 <s>{old}</s> {new} · 🏷 {code} {discount}{stock}\n\n{description}",
    "promo_unknown": "❌ There is no such promo code. Check the spelling and send it again from the card.",
    "promo_expired": "❌ This promo code has expired.",
    "promo_used_up": "❌ This promo code has been used up.",
    "promo_used_already": "❌ You have already used this promo code.",
    "promo_wait": "⏳ That is a lot of promo codes that did not work. Please try again in {minutes} min.",
    "promo_hold_wait": "This promo code's last use was set aside for you a moment ago, but no payment followed. To be "
                       "fair to other customers, it can be set aside for you again about 10 minutes later.",
    "promo_not_for_product": "❌ This promo code is not for this product. It is kept for your next purchase of one "
                             "it covers.",
    "promo_for_nothing": "❌ This promo code does not apply to anything on sale in the shop.",
    "promo_nothing_off": "❌ This promo code would take nothing off this product's price, so it is not used here. "
                         "It is kept for your next purchase it makes cheaper.",
    "promo_welcome": "👋 Hello, {name}!\n\n🏷 Your promo code <b>{code}</b> gives you <b>{discount}</b> on {scope}. "
                     "It applies to your next purchase.",
    "promo_scope_shop": "everything in the shop",
    "promo_scope_category": "everything in «{name}»",
    "promo_scope_product": "«{name}»",
    "promo_refunded": "↩️ The promo code ran out before your payment for {name} arrived, so it has been refunded. "
                      "You can buy it again at the full price.",
    "promo_refund_pending": "😔 The promo code ran out before your payment for {name} arrived. The seller has been "
                            "told and will refund you.",
    "admin_promo_refunded": "↩️ Purchase #{purchase} ({product}, {amount}) by {who} (id <code>{id}</code>) came "
                            "with a promo code that had no use left for them. It was refunded automatically.",
    "admin_promo_refund_pending": "⚠️ Purchase #{purchase} ({product}, {amount}) by {who} (id <code>{id}</code>) "
                                  "came with a promo code that had no use left for them. Please refund it in your "
                                  "provider's dashboard (provider charge <code>{provider}</code>).",
    "admin_promo_refund_failed": "⚠️ Purchase #{purchase} ({product}, {amount}) by {who} (id <code>{id}</code>) "
                                 "came with a promo code that had no use left for them, and Telegram refused the "
                                 "automatic refund. Please refund purchase #{purchase} here: open it below → ↩️ "
                                 "Refund.",
    "admin_promo_over_limit": "⚠️ Purchase #{purchase} ({product}, {amount}) by {who} (id <code>{id}</code>) "
                              "landed after its hold on promo code {code} had lapsed, and the code's last use had "
                              "gone to someone else meanwhile. It was honoured at the price paid, and nothing was "
                              "refunded: the code now has {uses} uses of {limit}.",
    "admin_unexpected_amount": "⚠️ Purchase #{purchase} ({product}) by {who} (id <code>{id}</code>) was paid "
                               "{amount}, but the shop asked {expected}. It is recorded as paid; please check it.",
    "gift_paid": "🎁 <b>Thank you!</b> Your gift, <b>{name}</b>, is ready to give:",
    "gift_to_forward": "🎁 A gift for you: <b>{name}</b>.\n\nOpen this link to receive it: {link}\n\n"
                       "(Forward this message to the person it is for. The first one to open the link gets it.)",
    "gift_unclaimed_button": "🎁 Gift, not claimed yet: {name}",
    "gift_claimed_button": "🎁 Gift claimed: {name}",
    "gift_taken_back_button": "🎁 Gift taken back: {name}",
    "gift_received": "🎁 <b>{giver}</b> has given you <b>{name}</b>! It stays in 📦 My purchases. Here it is:",
    "gift_claimed": "🎁 {who} has received your gift, <b>{name}</b>.",
    "gift_unknown": "❌ This gift link is not valid. Check that it was copied whole.",
    "gift_own": "🎁 This is the gift you bought: <b>{name}</b>. Send the message with the link to the person it is "
                "for; the first one to open it gets it. You find the link again in 📦 My purchases.",
    "gift_already_claimed": "🎁 This gift has already been claimed.",
    "gift_refunded": "❌ This gift was refunded, so it can no longer be claimed.",
    "gift_taken_back": "↩️ The payment for <b>{name}</b>, the gift {giver} gave you, has been refunded, so it is no "
                       "longer yours.",
    "gift_refund_due": "❌ The payment for this gift could not be honoured and is being refunded, so it cannot be "
                       "claimed.",
    "gift_already_owned": "🎁 You already own <b>{name}</b>, so this gift stays unclaimed: it can go to someone else.",
    "payment_gift": "gift",
    # --- 🤝 the referral program (referrals.py) ---------------------------
    "btn_invite": "🤝 Invite friends",
    "invite": "🤝 <b>Invite friends</b>\n\nShare your personal link. When a friend who is new to the shop makes a "
              "purchase and keeps it for {hold}, you get a promo code: <b>{reward}</b> on your next purchase.",
    "invite_welcome_part": "Your friend gets {discount} on their first purchase.",
    "invite_link": "Your link: {link}\n\nInvited: {invited} · bought: {bought} · rewards: {rewards}",
    "invite_codes": "🏷 <b>Your reward codes</b> (type one under a product's card, 🏷 Promo code):",
    "invite_code_line": "<code>{code}</code> · {discount}, until {until}",
    "invite_share_text": "Have a look at this shop:",
    "btn_share": "📤 Share",
    "invite_off": "The shop has no referral program at the moment.",
    "invite_unknown": "👋 Hello, {name}! This invite link is not valid (perhaps it was not copied whole), but you "
                      "are welcome all the same. What would you like to do?",
    "invite_own": "🤝 This is your own invite link: send it to your friends. When they buy, you get the reward.",
    "invite_known": "👋 Welcome back, {name}! You have been here before, so this invite link changes nothing. "
                    "What would you like to do?",
    "invite_welcome": "👋 Hello, {name}! {inviter} invited you here. Pick something in the catalog: you pay right "
                      "here in Telegram and receive it instantly.",
    "invite_welcome_code": "🏷 Your welcome code <b>{code}</b> gives you <b>{discount}</b> on your first purchase. "
                           "It is already applied.",
    "referral_reward": "🎉 {friend}, whom you invited, bought something and kept it. Thank you! Your reward is the "
                       "promo code <code>{code}</code>: <b>{discount}</b> on your next purchase, until {until}. "
                       "Type it under a product's card (🏷 Promo code) or open {link}",
    "btn_copy_code": "📋 Copy code",
    "n_days": ("{count} day", "{count} days"),
    "btn_referrals": "🤝 Referrals",
    "admin_referrals": "🤝 <b>Referrals</b> · {status}\n\nInviter's reward: {reward}, codes valid {valid}\n"
                       "Welcome discount for a friend: {welcome}\nHolding time: {hold} · monthly cap per inviter: "
                       "{cap}\n\nInvited: {invited} · bought: {bought}\nRewards earned: {rewarded} · "
                       "used: {used}\nRevenue from invited friends: {revenue}",
    "referral_no_welcome": "none",
    "admin_referrals_top": "<b>Top inviters</b>",
    "admin_referrals_top_line": "{place}. {who}: invited {invited} · bought {bought} · rewards {rewards}",
    "admin_referrals_saved": "✅ Saved.",
    "btn_referral_reward": "🎁 Reward",
    "btn_referral_welcome": "👋 Welcome discount",
    "btn_referral_hold": "⏳ Holding time",
    "btn_referral_cap": "🔢 Monthly cap",
    "admin_ask_referral_reward": "🎁 Send the inviter's reward: a percentage such as <code>10%</code>, or an amount "
                                 "in {currency} such as <code>{example}</code>.",
    "admin_ask_referral_days": "How many days does each code work (the inviter's reward, a friend's welcome)? From 1 "
                               "to {most}.",
    "admin_ask_referral_welcome": "👋 Send the discount a friend gets on their first purchase: a percentage such as "
                                  "<code>10%</code>, or an amount in {currency} such as <code>{example}</code>; or "
                                  "/skip for none.",
    "admin_ask_referral_hold": "⏳ For how many days must a friend keep their first purchase before the inviter is "
                               "rewarded? From 1 to {most}. A refund within that time earns nothing.",
    "admin_ask_referral_cap": "🔢 The most rewards one inviter may earn in a month: from 1 to {most}.",
    "err_referral_number": "❗ Send a whole number from 1 to {most}.",
    "admin_sales_referrals": "\n🤝 <b>Referrals, 30 days</b>: {invited} invited · {bought} bought · revenue "
                             "{revenue} · rewards {rewarded} (used {used})",
    "btn_promos": "🏷 Promo codes",
    "admin_promos": "🏷 <b>Promo codes</b> (⛔ = off)\n\nTap a code to see its uses, revenue and share link.",
    "admin_no_promos": "🏷 <b>Promo codes</b>\n\nNo codes yet. ➕ New code makes one (e.g. WEEKEND for −20 %); "
                       "🎟 Generate codes makes many one-time codes at once.",
    "btn_new_promo": "➕ New code",
    "btn_generate_promos": "🎟 Generate codes",
    "promo_batch_button": "🎟 {codes} codes · {discount}",
    "n_codes": ("{count} one-time code", "{count} one-time codes"),
    "admin_promo": "🏷 <b>{code}</b> · {status}\nDiscount: {discount} on {scope}\nExpires: {expires}\n"
                   "Used: {uses} (each customer once)\nRevenue: {revenue} · discounts given: {discounts}\n\n"
                   "Share link: {link}",
    "admin_promo_batch": "🎟 <b>{codes}</b> · {status}\nDiscount: {discount} on {scope}\nExpires: {expires}\n"
                         "Used: {uses}\nRevenue: {revenue} · discounts given: {discounts}",
    "promo_never": "never",
    "promo_until": "{date}",
    "promo_on": "✅ on",
    "promo_off": "⛔ off",
    "btn_promo_on": "✅ Turn on",
    "btn_promo_off": "⛔ Turn off",
    "btn_promo_file": "📄 The codes (.txt)",
    "admin_ask_promo_code": "🏷 Send the new code: 3 to 32 letters, digits, - or _ (e.g. <code>WEEKEND</code>). "
                            "Customers may type it in any case.",
    "admin_ask_promo_count": "🎟 How many one-time codes? From 1 to {most}.",
    "admin_ask_promo_discount": "Send the discount: a percentage such as <code>20%</code>, or an amount in "
                                "{currency} such as <code>{example}</code>.",
    "admin_choose_promo_scope": "What does the code apply to? The whole shop, or choose a category (and then, if you "
                                "like, one of its products).",
    "admin_choose_promo_product": "🗂 <b>{name}</b>: the whole category, or one product?",
    "btn_promo_shop": "🏪 The whole shop",
    "btn_promo_category": "🗂 All of «{name}»",
    "admin_ask_promo_limit": "How many uses in all? Send a number, or /skip for no limit. Each customer may use "
                             "the code once either way.",
    "admin_ask_promo_expiry": "Until when? Send the last day it works, e.g. <code>2026-12-31</code> (it ends when "
                              "that day ends, UTC), or /skip for no end.",
    "admin_saved_promo": "✅ Saved: the code works now.",
    "admin_purchase_promo": "🏷 Promo code {code} ({discount}); list price {list_price}",
    "admin_gift_unclaimed": "🎁 A gift, not claimed yet. Refunding it closes the link.",
    "admin_gift_claimed": "🎁 A gift, claimed by {who} (purchase #{id}). Refunding it takes theirs back too.",
    "admin_gift_received": "🎁 Received as a gift (bought in purchase #{id}): {giver} paid {price}. Refunding it "
                           "gives the giver their payment back.",
    "admin_discounts": "\n🏷 <b>Promo codes, 30 days</b>: {sales} · {off} off list prices",
    "err_promo_code": "❗ A code has 3 to 32 letters (A-Z), digits, - or _, and no spaces.",
    "err_promo_code_taken": "❗ That code exists already. Choose another.",
    "err_promo_count": "❗ Send a whole number from 1 to {most}.",
    "err_promo_percent": "❗ A percentage is a whole number from 1 to 100, e.g. 20%.",
    "err_promo_discount": "❗ Send a percentage such as 20%, or an amount in {currency} such as {example}.",
    "err_promo_limit": "❗ Send a whole number from 1 to {most}, or /skip.",
    "err_promo_date": "❗ Send a date such as 2026-12-31 (or 31.12.2026), or /skip.",
    "err_promo_past": "❗ That day is over already. Send today or a later day.",
    "err_promo_use_buttons": "❗ Choose with the buttons above, or ✖️ Cancel.",
}
