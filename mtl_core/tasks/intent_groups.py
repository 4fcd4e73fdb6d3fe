"""The 77 Banking77 intents in 10 topic groups, for colours and legends that summarise (a legend of 77
near-identical colours reads as noise). Written by hand from the intent names; every intent is in
exactly one group (tests/test_viz.py checks it against the data's labels.json)."""
from __future__ import annotations

INTENT_GROUPS: dict[str, list[str]] = {
    "New cards": ["card_arrival", "card_delivery_estimate", "get_physical_card", "order_physical_card",
                  "getting_spare_card", "activate_my_card", "card_about_to_expire", "card_linking",
                  "getting_virtual_card", "get_disposable_virtual_card", "disposable_card_limits",
                  "visa_or_mastercard"],
    "Card problems and security": ["card_not_working", "lost_or_stolen_card", "compromised_card", "card_swallowed",
                                   "contactless_not_working", "pin_blocked", "change_pin", "passcode_forgotten",
                                   "lost_or_stolen_phone", "virtual_card_not_working"],
    "Card payments": ["pending_card_payment", "declined_card_payment", "reverted_card_payment?", "card_acceptance",
                      "apple_pay_or_google_pay", "card_payment_wrong_exchange_rate"],
    "Top-ups": ["automatic_top_up", "pending_top_up", "top_up_limits", "top_up_reverted", "topping_up_by_card",
                "top_up_by_cash_or_cheque", "top_up_failed", "verify_top_up"],
    "Transfers": ["cancel_transfer", "transfer_not_received_by_recipient", "declined_transfer", "pending_transfer",
                  "transfer_timing", "beneficiary_not_allowed", "receiving_money", "failed_transfer",
                  "transfer_into_account", "balance_not_updated_after_bank_transfer"],
    "Cash and ATMs": ["pending_cash_withdrawal", "wrong_amount_of_cash_received", "atm_support",
                      "declined_cash_withdrawal", "wrong_exchange_rate_for_cash_withdrawal",
                      "balance_not_updated_after_cheque_or_cash_deposit"],
    "Exchange and currencies": ["exchange_rate", "fiat_currency_support", "exchange_via_app",
                                "supported_cards_and_currencies", "country_support"],
    "Fees and charges": ["extra_charge_on_statement", "card_payment_fee_charged", "transfer_fee_charged",
                         "top_up_by_bank_transfer_charge", "top_up_by_card_charge", "cash_withdrawal_charge",
                         "exchange_charge"],
    "Refunds and unknown payments": ["request_refund", "Refund_not_showing_up", "transaction_charged_twice",
                                     "card_payment_not_recognised", "direct_debit_payment_not_recognised",
                                     "cash_withdrawal_not_recognised"],
    "Identity and account": ["edit_personal_details", "why_verify_identity", "unable_to_verify_identity",
                             "verify_my_identity", "verify_source_of_funds", "age_limit", "terminate_account"],
}
GROUP_OF: dict[str, str] = {intent: group for group, intents in INTENT_GROUPS.items() for intent in intents}
