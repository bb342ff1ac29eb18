"""Merchant-presented QR codes made by public generators we did not write (PyPI), one JSON
object a line: the generator, the network the code is for, what the scheme says its merchant
account holds, the amount, and the payload. tests/qr_interop.rs reads them.

The expected values are written here from each scheme's rules, not computed by Corridor."""

import json
from importlib.metadata import version

from bakong_khqr import KHQR
from promptpay import qrcode as promptpay
from vietnam_qr_pay import QRPay


def emit(generator, network, payload, merchant=None, acquirer=None, amount=None):
    print(
        json.dumps(
            {
                "generator": f"{generator} {version(generator)} (PyPI)",
                "network": network,
                "merchant": merchant,
                "acquirer": acquirer,
                "amount": amount,
                "payload": str(payload),
            }
        )
    )


# PromptPay credit transfer: a mobile number (0812345678 -> 0066812345678, Thailand's
# country code for the leading 0, 13 digits), a national id (13 digits), an e-wallet (15).
emit("promptpay", "promptpay", promptpay.generate_payload("0812345678"), merchant="0066812345678")
emit(
    "promptpay",
    "promptpay",
    promptpay.generate_payload("1234567890123", 100.25),
    merchant="1234567890123",
    amount="100.25",
)
emit(
    "promptpay",
    "promptpay",
    promptpay.generate_payload("123456789012345", 50),
    merchant="123456789012345",
    amount="50.00",
)

# VietQR (NAPAS): the member bank's BIN in 38.01.00, the account in 38.01.01.
emit(
    "vietnam-qr-pay",
    "napas",
    QRPay.init_viet_qr(bank_bin="970415", bank_number="113366668888", amount="79000", purpose="Thanh toan").build(),
    merchant="113366668888",
    acquirer="970415",
    amount="79000",
)
emit(
    "vietnam-qr-pay",
    "napas",
    QRPay.init_viet_qr(bank_bin="970436", bank_number="0011001932418").build(),
    merchant="0011001932418",
    acquirer="970436",
)
# VNPAY-QR: VNPAY's merchant code in 26.01; no MCC, no city.
emit(
    "vietnam-qr-pay",
    "vnpay",
    QRPay.init_vnpay_qr(
        merchant_id="0102154778", merchant_name="TUGIACOMPANY", store="TU GIA COMPUTER", terminal="TUGIACO1"
    ).build(),
    merchant="0102154778",
)

# KHQR (Bakong), made offline with a developer token: the account "name@bank" in 29.00, the
# acquiring participant after the "@".
khqr = KHQR("offline-token").create_qr(
    account_id="coffee_shop@aclb",
    merchant_name="Coffee Shop",
    merchant_city="Phnom Penh",
    amount=12.5,
    currency="USD",
    bill_number="INV-1",
    terminal_label="T1",
)
emit("bakong-khqr", "khqr", khqr, acquirer="aclb", amount="12.5")
