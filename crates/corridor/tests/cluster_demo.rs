//! `corridor-load demo --cluster`, the README's cluster quick start, over this `corridor`
//! binary and three real `nats-server`: node a is killed under load, the partner fails over
//! to the standby, and every side agrees — each purchase answered once, every approval the
//! network gave delivered or reversed, none twice.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

mod common;

/// The numbers of the report line starting with `prefix`, in order.
fn numbers(text: &str, prefix: &str) -> Vec<f64> {
    let line =
        text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix:?}:\n{text}"));
    line.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|w| w.trim_matches('.').parse().ok())
        .collect()
}

#[test]
fn the_cluster_demo_fails_over_to_the_standby_and_every_side_agrees() {
    let out = std::process::Command::new(common::corridor_load())
        .args(["demo", "--cluster", "--rate", "200", "--seconds", "6"])
        .env("CORRIDOR_NATS_SERVER", corridor_tests::nats::nats_server())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("nothing lost"), "{text}");
    // "node b served the partner 3.35 s after node a was killed"
    let took = numbers(&text, "node b served the partner")[0];
    assert!(took < 10.0, "within a partner's timeout: {text}");
    // "partner: N purchases sent, answered A × 00, B × 68 (U unanswered); R … repeated …"
    let p = numbers(&text, "partner:");
    let (sent, unanswered) = (p[0], p[p.len() - 2]);
    // The partner's answers by code, from "answered 2394 × 00, 6 × 68 (…".
    let answers: std::collections::BTreeMap<String, f64> = text
        .lines()
        .find(|l| l.starts_with("partner:"))
        .unwrap()
        .split(", ")
        .filter_map(|part| {
            let (left, right) = part.split_once(" × ")?;
            Some((right.split_whitespace().next()?.to_owned(), left.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    assert_eq!(unanswered, 0.0, "{text}");
    assert!(sent >= 1_000.0, "the partner paid throughout: {text}");
    assert_eq!(answers.values().sum::<f64>(), sent, "one answer a purchase: {text}");
    let approved = answers.get("00").copied().unwrap_or(0.0);
    // "network: X approved, Y of them reversed …, Z ambiguous …, W reached it twice"
    let n = numbers(&text, "network:");
    let (network_approved, reversed, ambiguous, twice) = (n[0], n[1], n[2], n[3]);
    assert_eq!((ambiguous, twice), (0.0, 0.0), "{text}");
    assert_eq!(network_approved, approved + reversed, "{text}");
    eprintln!("{text}");
}
