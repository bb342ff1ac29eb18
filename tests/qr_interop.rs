//! Cross-border QR payments end to end over loopback TCP: wallets in Thailand, mainland China
//! and Singapore pay merchants' EMV QR codes through the switch (its market: CN) to
//! UnionPay, NAPAS and PromptPay, each a separate simulated network; the switch routes by the
//! networks in the code and the originator's partnership policy, fills the merchant's fields
//! and both currencies' amounts and rates, and declines what its quotes and limits refuse.
//!
//! Every expected amount and rate below is worked out by hand in the comments, not computed
//! with the switch's own functions.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)] // test code

use corridor_config::fixture::rate;
use corridor_qr::{encode, nested};
use corridor_tests::{
    peer::{Behaviour, Conn, Issuer, Wire, WAIT_MAX},
    switch::TestSwitch,
};
use corridor_wire::{de, FieldId, Mti, OwnedMessage};

fn config(unionpay: &Issuer, napas: &Issuer, promptpay: &Issuer) -> String {
    let (u, n, p) = (unionpay.addr, napas.addr, promptpay.addr);
    let rates = [
        rate("CNY", "THB", "4.9", 50),
        rate("VND", "CNY", "0.00028", 30),
        rate("VND", "THB", "0.00137", 50),
        rate("THB", "SGD", "0.0375", 25),
        rate("CNY", "USD", "0.14", 0),
        rate("VND", "USD", "0.0000394", 0),
        rate("THB", "USD", "0.0279", 0),
    ]
    .concat();
    format!(
        r#"
[switch]
market = "CN"

[currency]
settlement = "USD"

# CNY -> THB for Thai wallets paying in China; VND -> CNY and VND -> THB for Vietnamese
# merchants; THB -> SGD for Singaporean wallets in Thailand; each currency -> USD to settle.
{rates}[[rate]]
quote = "CNY-THB-OLD"
from = "CNY"
to = "THB"
rate = "4.8"
markup_bps = 50
valid_from = 2020-01-01T00:00:00Z
valid_to = 2020-01-02T00:00:00Z

[[participant]]
id = "wallet-th"
roles = ["acquirer"]
acquirer_ids = ["11110001"]
market = "TH"
currency = "THB"
currencies = ["USD"]
limit = "20000.00"
  [[participant.link]]
  name = "wallet-th-1"
  mode = "listen"
  address = "127.0.0.1:0"
  framing = "native"
  dialect = "native"
  sign_on_required = false

[[participant]]
id = "wallet-cn"
roles = ["acquirer"]
acquirer_ids = ["22220002"]
market = "CN"
currency = "CNY"
limit = "20000.00"
qr_policy = ["napas", "unionpay"]
  [[participant.link]]
  name = "wallet-cn-1"
  mode = "listen"
  address = "127.0.0.1:0"
  framing = "bin2"
  dialect = "iso87-ascii"
  sign_on_required = false

[[participant]]
id = "wallet-sg"
roles = ["acquirer"]
acquirer_ids = ["33330003"]
market = "SG"
currency = "SGD"
  [[participant.link]]
  name = "wallet-sg-1"
  mode = "listen"
  address = "127.0.0.1:0"
  framing = "native"
  dialect = "native"
  sign_on_required = false

[[participant]]
id = "unionpay"
roles = ["network"]
market = "CN"
currency = "CNY"
networks = ["unionpay"]
  [[participant.link]]
  name = "unionpay-1"
  mode = "dial"
  address = "{u}"
  framing = "native"
  dialect = "native"
  reconnect_min_ms = 50
  reconnect_max_ms = 200

[[participant]]
id = "napas"
roles = ["network"]
market = "VN"
currency = "VND"
limit = "50000000"
networks = ["napas"]
  [[participant.link]]
  name = "napas-1"
  mode = "dial"
  address = "{n}"
  framing = "ascii4"
  dialect = "iso87-hex"
  reconnect_min_ms = 50
  reconnect_max_ms = 200

[[participant]]
id = "promptpay"
roles = ["network"]
market = "TH"
currency = "THB"
networks = ["promptpay"]
  [[participant.link]]
  name = "promptpay-1"
  mode = "dial"
  address = "{p}"
  framing = "native"
  dialect = "native"
  reconnect_min_ms = 50
  reconnect_max_ms = 200

[[route]]
qr_network = "unionpay"
destination = "unionpay"

[[route]]
qr_network = "napas"
destination = "napas"

[[route]]
qr_network = "promptpay"
destination = "promptpay"
"#
    )
}

const ASCII_BIN2: Wire = Wire::classic(corridor_wire::LengthHeader::Bin2, corridor_wire::Dialect::Iso87Ascii);
const HEX_ASCII4: Wire = Wire::classic(corridor_wire::LengthHeader::Ascii4, corridor_wire::Dialect::Iso87Hex);

struct Net {
    unionpay: Issuer,
    napas: Issuer,
    promptpay: Issuer,
    switch: TestSwitch,
}

fn start() -> Net {
    let unionpay = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let napas = Issuer::start(HEX_ASCII4, Behaviour::Approve);
    let promptpay = Issuer::start(Wire::NATIVE, Behaviour::Approve);
    let switch = TestSwitch::start(&config(&unionpay, &napas, &promptpay));
    switch.wait_signed_on(&["unionpay-1", "napas-1", "promptpay-1"]);
    Net { unionpay, napas, promptpay, switch }
}

/// A Beijing restaurant's dynamic UnionPay code: acquirer IIN 62500123, forwarding IIN
/// 62500456, merchant id 123456789012345; 100.00 CNY.
fn unionpay_code(amount: &str) -> String {
    encode(&[
        (0, "01"),
        (1, "12"),
        (15, "6250012362500456123456789012345"),
        (52, "5812"),
        (53, "156"),
        (54, amount),
        (58, "CN"),
        (59, "BEIJING DUCK"),
        (60, "BEIJING"),
        (62, &nested(&[(7, "T0000001")]).unwrap()),
    ])
    .unwrap()
}

/// A Hanoi shop's VietQR (NAPAS, member bank 970436) code.
fn vietqr_code(amount: &str) -> String {
    let napas = nested(&[
        (0, "A000000727"),
        (1, &nested(&[(0, "970436"), (1, "0123456789")]).unwrap()),
        (2, "QRPUSH"),
    ])
    .unwrap();
    encode(&[
        (0, "01"),
        (1, "12"),
        (38, &napas),
        (52, "5411"),
        (53, "704"),
        (54, amount),
        (58, "VN"),
        (59, "CO OP MART"),
        (60, "HANOI"),
    ])
    .unwrap()
}

/// A Vietnamese sticker that takes both UnionPay (ID 15, first) and NAPAS (ID 38).
fn sticker_both(amount: &str) -> String {
    let napas =
        nested(&[(0, "A000000727"), (1, &nested(&[(0, "970436"), (1, "0123456789")]).unwrap())]).unwrap();
    encode(&[
        (0, "01"),
        (1, "12"),
        (15, "6250012362500456123456789012345"),
        (38, &napas),
        (52, "5812"),
        (53, "704"),
        (54, amount),
        (58, "VN"),
        (59, "PHO 24"),
        (60, "HANOI"),
    ])
    .unwrap()
}

/// A Bangkok stall's PromptPay (credit transfer) code.
fn promptpay_code(amount: &str) -> String {
    let pp = nested(&[(0, "A000000677010111"), (1, "0066812345678")]).unwrap();
    encode(&[
        (0, "01"),
        (1, "12"),
        (29, &pp),
        (52, "5812"),
        (53, "764"),
        (54, amount),
        (58, "TH"),
        (59, "SOM TAM"),
        (60, "BANGKOK"),
    ])
    .unwrap()
}

/// A wallet's payment of `code`: no amount or currency of its own (the code has them).
fn payment(code: &str, stan: &str, acquirer: &str) -> OwnedMessage {
    let mut m = OwnedMessage::new(Mti::FINANCIAL_REQUEST);
    m.set(de::PROCESSING_CODE, b"000000".to_vec()).unwrap();
    m.set(de::TRANSMISSION_TIME, b"1201101500".to_vec()).unwrap();
    m.set(de::STAN, stan.as_bytes().to_vec()).unwrap();
    m.set(de::ACQUIRER_ID, acquirer.as_bytes().to_vec()).unwrap();
    m.set(de::RRN, format!("533510{stan}").into_bytes()).unwrap();
    m.set(de::QR_PAYLOAD, code.as_bytes().to_vec()).unwrap();
    m
}

fn field(m: &OwnedMessage, id: FieldId) -> String {
    String::from_utf8_lossy(m.get(id).unwrap_or_else(|| panic!("{id} present"))).into_owned()
}

fn pay(conn: &mut Conn, correlation: u64, m: &OwnedMessage) -> OwnedMessage {
    conn.send(correlation, m);
    let (_, answer) = conn.recv_app_within(WAIT_MAX).expect("an answer");
    answer
}

/// The request `issuer` saw with RRN `rrn` (the switch keeps the STAN on native links and puts
/// its own on classic ones; the RRN is the originator's either way), waiting for it.
fn seen_with_rrn(issuer: &Issuer, rrn: &str) -> Option<OwnedMessage> {
    issuer.wait_for(WAIT_MAX, |seen| seen.iter().any(|m| m.get(de::RRN) == Some(rrn.as_bytes())));
    issuer.seen().into_iter().find(|m| m.get(de::RRN) == Some(rrn.as_bytes()))
}

#[test]
fn inbound_outbound_and_third_market_payments_get_both_currencies_filled() {
    let net = start();
    // Inbound: a Thai wallet pays 100.00 CNY in Beijing.
    let mut th = Conn::connect(net.switch.addr("wallet-th-1"), Wire::NATIVE);
    let a = pay(&mut th, 1, &payment(&unionpay_code("100.00"), "000001", "11110001"));
    assert_eq!(field(&a, de::RESPONSE_CODE), "00");
    let f = seen_with_rrn(&net.unionpay, "533510000001").expect("UnionPay got it");
    // The merchant's fields from the code.
    assert_eq!(field(&f, de::AMOUNT), "000000010000");
    assert_eq!(field(&f, de::CURRENCY), "156");
    assert_eq!(field(&f, de::MERCHANT_TYPE), "5812");
    assert_eq!(field(&f, de::TERMINAL_ID), "T0000001");
    assert_eq!(field(&f, de::MERCHANT_ID), "123456789012345");
    assert_eq!(field(&f, de::MERCHANT_NAME), format!("{:<23}{:<13}  CN", "BEIJING DUCK", "BEIJING"));
    // Billing: 4.9 with 50 bps = 4.9245 (N8 "40049245"); 10,000 fen × 4.9245 = 49,245 satang.
    assert_eq!(field(&f, de::RATE_BILLING), "40049245");
    assert_eq!(field(&f, de::AMOUNT_BILLING), "000000049245");
    assert_eq!(field(&f, de::CURRENCY_BILLING), "764");
    // Settlement at the mid rate: 10,000 fen × 0.14 = 1,400 cents.
    assert_eq!(field(&f, de::RATE_SETTLEMENT), "20000014");
    assert_eq!(field(&f, de::AMOUNT_SETTLEMENT), "000000001400");
    assert_eq!(field(&f, de::CURRENCY_SETTLEMENT), "840");
    // The payload itself goes through for the network.
    assert_eq!(f.get(de::QR_PAYLOAD), Some(unionpay_code("100.00").as_bytes()));

    // Outbound: a mainland wallet pays 250,000 VND in Hanoi, over iso87-ascii to NAPAS on
    // iso87-hex.
    let mut cn = Conn::connect(net.switch.addr("wallet-cn-1"), ASCII_BIN2);
    let a = pay(&mut cn, 0, &payment(&vietqr_code("250000"), "000002", "22220002"));
    assert_eq!(field(&a, de::RESPONSE_CODE), "00");
    let f = seen_with_rrn(&net.napas, "533510000002").expect("NAPAS got it");
    assert_eq!(field(&f, de::AMOUNT), "000000250000");
    assert_eq!(field(&f, de::MERCHANT_ID), "0123456789     ");
    // 0.00028 × 1.003 = 0.00028084, seven decimals in N8: 0.0002808; × 250,000 = 70.20 CNY.
    assert_eq!(field(&f, de::RATE_BILLING), "70002808");
    assert_eq!(field(&f, de::AMOUNT_BILLING), "000000007020");
    assert_eq!(field(&f, de::CURRENCY_BILLING), "156");
    // 250,000 × 0.0000394 = 9.85 USD.
    assert_eq!(field(&f, de::AMOUNT_SETTLEMENT), "000000000985");

    // Third market: a Singaporean wallet pays 150.00 THB in Bangkok.
    let mut sg = Conn::connect(net.switch.addr("wallet-sg-1"), Wire::NATIVE);
    let a = pay(&mut sg, 3, &payment(&promptpay_code("150.00"), "000003", "33330003"));
    assert_eq!(field(&a, de::RESPONSE_CODE), "00");
    let f = seen_with_rrn(&net.promptpay, "533510000003").expect("PromptPay got it");
    // 0.0375 × 1.0025 = 0.03759375 → 0.0375938 (half up at seven decimals); 15,000 satang ×
    // 0.0375938 = 563.907 → 564 cents.
    assert_eq!(field(&f, de::RATE_BILLING), "70375938");
    assert_eq!(field(&f, de::AMOUNT_BILLING), "000000000564");
    assert_eq!(field(&f, de::CURRENCY_BILLING), "702");
    // 15,000 × 0.0279 = 418.5 → 419 cents: a half rounds up.
    assert_eq!(field(&f, de::AMOUNT_SETTLEMENT), "000000000419");
    assert!(net.unionpay.seen_mti(200).len() == 1 && net.napas.seen_mti(200).len() == 1);

    // The metrics have the market pairs and their flows.
    let admin = corridor_ops::admin::start(
        corridor_ops::admin::listen("127.0.0.1:0".parse().unwrap()).unwrap(),
        corridor_ops::admin::AdminConfig {
            token: std::sync::Arc::new(std::sync::RwLock::new(corridor_tests::ops::TOKEN.to_owned())),
            token_name: "test".into(),
            journal_dir: None,
            reloader: None,
            reload_counts: std::sync::Arc::default(),
            cluster: None,
        },
        net.switch.handle().clone(),
    )
    .unwrap();
    let (status, metrics) =
        corridor_tests::ops::http(admin.address(), "GET", "/metrics", Some(corridor_tests::ops::TOKEN))
            .unwrap();
    assert_eq!(status, 200);
    for line in [
        r#"corridor_market_answers_total{from_market="TH",to_market="CN",flow="inbound"} 1"#,
        r#"corridor_market_answers_total{from_market="CN",to_market="VN",flow="outbound"} 1"#,
        r#"corridor_market_answers_total{from_market="SG",to_market="TH",flow="third-market"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    admin.stop();
}

#[test]
fn a_multi_network_sticker_goes_by_each_originators_policy() {
    let net = start();
    let code = sticker_both("500000");
    // The mainland wallet's policy prefers the direct network-to-network link: NAPAS.
    let mut cn = Conn::connect(net.switch.addr("wallet-cn-1"), ASCII_BIN2);
    assert_eq!(field(&pay(&mut cn, 0, &payment(&code, "000010", "22220002")), de::RESPONSE_CODE), "00");
    assert!(seen_with_rrn(&net.napas, "533510000010").is_some(), "by policy: NAPAS first");
    // The Thai wallet has no policy: the code's order, UnionPay (ID 15) before NAPAS (ID 38).
    let mut th = Conn::connect(net.switch.addr("wallet-th-1"), Wire::NATIVE);
    assert_eq!(field(&pay(&mut th, 1, &payment(&code, "000011", "11110001")), de::RESPONSE_CODE), "00");
    let f = seen_with_rrn(&net.unionpay, "533510000011").expect("no policy: the payload's order");
    // 500,000 VND at 0.00137 × 1.005 = 0.00137685 → 0.0013769 (N8 "70013769") → 688.45 THB.
    assert_eq!(field(&f, de::AMOUNT_BILLING), "000000068845");
    assert!(net.unionpay.seen().iter().all(|m| m.get(de::RRN) != Some(b"533510000010")));
    assert!(net.napas.seen().iter().all(|m| m.get(de::RRN) != Some(b"533510000011")));
}

#[test]
fn quotes_limits_and_bad_codes_are_declined_by_the_switch_and_never_forwarded() {
    let net = start();
    let mut th = Conn::connect(net.switch.addr("wallet-th-1"), Wire::NATIVE);
    let mut decline = |stan: &str, m: &OwnedMessage| -> String {
        let a = pay(&mut th, stan.parse().unwrap(), m);
        field(&a, de::RESPONSE_CODE)
    };
    // An expired quote named in DE 125: 12.
    let mut expired = payment(&unionpay_code("100.00"), "000020", "11110001");
    expired.set(de::QUOTE_ID, b"CNY-THB-OLD".to_vec()).unwrap();
    assert_eq!(decline("000020", &expired), "12");
    // An unknown quote: 12. The quote in force, named: approved.
    let mut unknown = payment(&unionpay_code("100.00"), "000021", "11110001");
    unknown.set(de::QUOTE_ID, b"NO-SUCH-QUOTE".to_vec()).unwrap();
    assert_eq!(decline("000021", &unknown), "12");
    let mut named = payment(&unionpay_code("100.00"), "000022", "11110001");
    named.set(de::QUOTE_ID, b"CNY-THB-1".to_vec()).unwrap();
    assert_eq!(decline("000022", &named), "00");
    // The wallet's own DE 6 at the right rate passes; one unit off is 13.
    let mut own = payment(&unionpay_code("100.00"), "000023", "11110001");
    own.set(de::AMOUNT_BILLING, b"000000049245".to_vec()).unwrap();
    own.set(de::RATE_BILLING, b"40049245".to_vec()).unwrap();
    assert_eq!(decline("000023", &own), "00");
    let mut off = payment(&unionpay_code("100.00"), "000024", "11110001");
    off.set(de::AMOUNT_BILLING, b"000000049246".to_vec()).unwrap();
    off.set(de::RATE_BILLING, b"40049245".to_vec()).unwrap();
    assert_eq!(decline("000024", &off), "13");
    // A wallet account in another of its currencies (DE 51 = USD, which the directory lists):
    // billed at the CNY -> USD quote, 0.14 with no markup: 14.00 USD. One it does not hold: 12.
    let mut usd = payment(&unionpay_code("100.00"), "000031", "11110001");
    usd.set(de::CURRENCY_BILLING, b"840".to_vec()).unwrap();
    assert_eq!(decline("000031", &usd), "00");
    let mut eur = payment(&unionpay_code("100.00"), "000032", "11110001");
    eur.set(de::CURRENCY_BILLING, b"978".to_vec()).unwrap();
    assert_eq!(decline("000032", &eur), "12");
    // A DE 4 that disagrees with the code's amount: 13.
    let mut amount = payment(&unionpay_code("100.00"), "000025", "11110001");
    amount.set(de::AMOUNT, b"000000009999".to_vec()).unwrap();
    assert_eq!(decline("000025", &amount), "13");
    // Over the Thai wallet's 20,000.00 THB limit: 5,000.00 CNY is 24,622.50 THB. 61.
    assert_eq!(decline("000026", &payment(&unionpay_code("5000.00"), "000026", "11110001")), "61");
    // Within the mainland wallet's 20,000.00 CNY (60,000,000 VND × 0.0002808 = 16,848.00
    // CNY) but over NAPAS's 50,000,000 VND: 61, the lower of the two limits at the converted
    // amount applies.
    let mut cn = Conn::connect(net.switch.addr("wallet-cn-1"), ASCII_BIN2);
    let a = pay(&mut cn, 0, &payment(&vietqr_code("60000000"), "000027", "22220002"));
    assert_eq!(field(&a, de::RESPONSE_CODE), "61");
    let a = pay(&mut cn, 0, &payment(&vietqr_code("40000000"), "000028", "22220002"));
    assert_eq!(field(&a, de::RESPONSE_CODE), "00", "within both");
    // A code whose CRC is wrong: 30. One with no network the switch routes: 92.
    let code = unionpay_code("100.00");
    let bad = format!("{}0000", &code[..code.len() - 4]);
    assert_eq!(decline("000029", &payment(&bad, "000029", "11110001")), "30");
    let other = encode(&[
        (0, "01"),
        (26, &nested(&[(0, "COM.EXAMPLE.PAY"), (1, "X")]).unwrap()),
        (52, "5812"),
        (53, "156"),
        (58, "CN"),
        (59, "A"),
        (60, "B"),
    ])
    .unwrap();
    assert_eq!(decline("000030", &payment(&other, "000030", "11110001")), "92");
    // Only what was approved reached the networks.
    net.switch.wait_quiet();
    let rrns: Vec<String> = net.unionpay.seen_mti(200).iter().map(|m| field(m, de::RRN)).collect();
    assert_eq!(rrns, ["533510000022", "533510000023", "533510000031"]);
    let usd = seen_with_rrn(&net.unionpay, "533510000031").unwrap();
    assert_eq!(
        (field(&usd, de::AMOUNT_BILLING).as_str(), field(&usd, de::RATE_BILLING).as_str()),
        ("000000001400", "20000014")
    );
    let rrns: Vec<String> = net.napas.seen_mti(200).iter().map(|m| field(m, de::RRN)).collect();
    assert_eq!(rrns, ["533510000028"]);
    assert!(net.promptpay.seen_mti(200).is_empty());
}

#[test]
fn a_wallets_reversal_of_a_qr_payment_goes_where_the_payment_went() {
    let net = start();
    let mut th = Conn::connect(net.switch.addr("wallet-th-1"), Wire::NATIVE);
    let paid = payment(&unionpay_code("100.00"), "000040", "11110001");
    assert_eq!(field(&pay(&mut th, 1, &paid), de::RESPONSE_CODE), "00");
    // The wallet reverses it (its customer cancelled): DE 90 names the payment.
    let mut reversal = paid.clone();
    reversal.set_mti(Mti::REVERSAL_ADVICE);
    reversal.set(de::STAN, b"000041".to_vec()).unwrap();
    let mut original = b"0200000040".to_vec();
    original.extend_from_slice(b"1201101500");
    original.extend_from_slice(b"00011110001");
    original.extend_from_slice(&[b'0'; 11]);
    reversal.set(de::ORIGINAL_DATA, original).unwrap();
    let ack = pay(&mut th, 2, &reversal);
    assert_eq!(
        (ack.mti(), field(&ack, de::RESPONSE_CODE).as_str()),
        (Mti::REVERSAL_ADVICE.response().unwrap(), "00")
    );
    assert!(
        net.unionpay.wait_for(WAIT_MAX, |seen| seen.iter().any(|m| m.mti() == Mti::REVERSAL_ADVICE)),
        "UnionPay, where the payment went, gets the reversal"
    );
    assert!(net.napas.seen_mti(420).is_empty() && net.promptpay.seen_mti(420).is_empty());
}

/// One code a public generator made, with what its scheme says it holds.
struct Generated {
    generator: String,
    network: String,
    merchant: Option<String>,
    acquirer: Option<String>,
    amount: Option<String>,
    payload: String,
}

/// The codes public generators make (PyPI's promptpay, vietnam-qr-pay and bakong-khqr; npm's
/// promptparse and paynowqr), as `tests/interop/qr_generators.{py,js}` print them.
fn generated() -> Vec<Generated> {
    let py = std::process::Command::new(corridor_tests::python::python())
        .arg(corridor_tests::python::workspace_file("tests/interop/qr_generators.py"))
        .output()
        .expect("python runs");
    let js = corridor_tests::node::run_script("tests/interop/js/qr_generators.js");
    let mut out = Vec::new();
    for run in [py, js] {
        assert!(run.status.success(), "a generator failed: {}", String::from_utf8_lossy(&run.stderr));
        for line in String::from_utf8(run.stdout).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let text = |k: &str| v[k].as_str().map(str::to_owned);
            out.push(Generated {
                generator: text("generator").unwrap(),
                network: text("network").unwrap(),
                merchant: text("merchant"),
                acquirer: text("acquirer"),
                amount: text("amount"),
                payload: text("payload").unwrap(),
            });
        }
    }
    out
}

/// Codes as Thai banks' apps and the common libraries make them leave out what their scheme
/// does not use (PromptPay: MCC, merchant name and city; VNPAY: MCC and city), and put
/// plain values in unreserved templates. Each decodes to its network with the ids its
/// scheme puts in the merchant account, and those with an amount are paid through the
/// switch to the network that serves them.
#[test]
fn codes_made_by_public_generators_decode_and_are_paid_through_to_their_networks() {
    let codes = generated();
    for network in ["promptpay", "napas", "vnpay", "khqr", "paynow"] {
        assert!(codes.iter().any(|c| c.network == network), "a generated {network} code");
    }
    let registry = corridor_qr::Registry::builtin();
    for c in &codes {
        let what = format!("{} {} code {}", c.generator, c.network, c.payload);
        let (payload, found) =
            registry.decode_classified(&c.payload).unwrap_or_else(|e| panic!("{what}: {e}"));
        let f = found
            .iter()
            .find(|f| f.network.map(|i| registry.networks()[i].id.as_str()) == Some(c.network.as_str()))
            .unwrap_or_else(|| panic!("{what}: its network"));
        assert_eq!(f.merchant, c.merchant.as_deref(), "{what}: merchant");
        assert_eq!(f.acquirer, c.acquirer.as_deref(), "{what}: acquirer");
        assert_eq!(payload.amount(), c.amount.as_deref(), "{what}: amount");
    }

    let net = start();
    let mut sg = Conn::connect(net.switch.addr("wallet-sg-1"), Wire::NATIVE);
    let mut cn = Conn::connect(net.switch.addr("wallet-cn-1"), ASCII_BIN2);
    let mut paid = 0;
    for (n, c) in codes.iter().filter(|c| c.amount.is_some()).enumerate() {
        let (conn, acquirer, issuer) = match c.network.as_str() {
            "promptpay" => (&mut sg, "33330003", &net.promptpay),
            "napas" => (&mut cn, "22220002", &net.napas),
            _ => continue,
        };
        let stan = format!("{:06}", 100 + n);
        let a = pay(conn, 0, &payment(&c.payload, &stan, acquirer));
        assert_eq!(field(&a, de::RESPONSE_CODE), "00", "{} {}", c.generator, c.payload);
        let f = seen_with_rrn(issuer, &format!("533510{stan}")).expect("the network got it");
        assert_eq!(f.get(de::QR_PAYLOAD), Some(c.payload.as_bytes()), "forwarded unchanged");
        let merchant = c.merchant.as_deref().expect("a payable code names its merchant");
        assert_eq!(field(&f, de::MERCHANT_ID), format!("{merchant:<15}"), "{}", c.payload);
        paid += 1;
    }
    assert!(paid >= 4, "PromptPay transfers, a bill payment and a VietQR code were paid: {paid}");
}
