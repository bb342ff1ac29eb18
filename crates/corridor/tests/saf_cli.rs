//! `corridor saf` on the journal of a running switch and of a stopped one: an advice its
//! destination never acknowledges reaches the exception queue; the operator sees it (PAN
//! masked), retries it through the running switch, and drops it once the switch is stopped.
//! Real processes, loopback sockets.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)] // test code

mod common;

use std::{
    net::{TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::BytesMut;
use common::*;
use corridor_wire::{de, Mti, OwnedMessage};

const PAN: &str = "4761739001010010";

/// An issuer that answers network management and counts the advices it gets (0220, 0221)
/// without ever acknowledging one.
fn issuer(listener: TcpListener, advices: Arc<AtomicUsize>, stop: Arc<AtomicBool>) {
    serve_peer(listener, &stop, |m, _| {
        if matches!(m.mti().value(), 220 | 221) {
            advices.fetch_add(1, Ordering::Relaxed);
        }
        None
    });
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_exception_queue_is_listed_retried_and_dropped_on_a_running_and_a_stopped_switch() {
    let state = state("saf-cli");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer_addr = listener.local_addr().unwrap();
    let (advices, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let t = {
        let (a, s) = (Arc::clone(&advices), Arc::clone(&stop));
        std::thread::spawn(move || issuer(listener, a, s))
    };
    let acq_port = free_port();
    let path = state.join("switch.toml");
    std::fs::write(&path, config(acq_port, issuer_addr, "reversal_retry_ms = 100\nreversal_repeats_max = 1"))
        .unwrap();
    let journal = state.join("journal");
    let dir = journal.to_str().unwrap();

    let switch = serve(&path);
    let mut acq = TcpStream::connect(("127.0.0.1", acq_port)).unwrap();
    acq.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut advice = OwnedMessage::new(Mti::new(220).unwrap());
    for (f, v) in [
        (de::PAN, PAN),
        (de::PROCESSING_CODE, "000000"),
        (de::AMOUNT, "000000012500"),
        (de::TRANSMISSION_TIME, "1201103000"),
        (de::STAN, "000061"),
        (de::ACQUIRER_ID, "12345678"),
        (de::RRN, "SAF000000061"),
        (de::TERMINAL_ID, "TERM0001"),
    ] {
        advice.set(f, v).unwrap();
    }
    assert!(send(&mut acq, 1, &advice));
    let mut buf = BytesMut::new();
    let mut ack = None;
    wait_for("the advice's acknowledgement", || {
        ack = read_frames(&mut acq, &mut buf).unwrap().pop();
        ack.is_some()
    });
    let (_, ack) = ack.unwrap();
    assert_eq!((ack.mti().value(), text(&ack, de::RESPONSE_CODE)), (230, "00".to_owned()));
    // Sent, repeated once, then into the exception queue.
    wait_for("two transmissions", || advices.load(Ordering::Relaxed) >= 2);
    wait_for("the exception queue", || {
        corridor(&["saf", "list", dir, "--exceptions"]).1.contains("1 in the exception queue")
    });
    let (ok, list) = corridor(&["saf", "list", dir]);
    assert!(ok, "{list}");
    let row = list.lines().find(|l| l.contains(" exception ")).unwrap().to_owned();
    assert!(row.contains("0220") && row.contains("participant") && row.contains("iss"), "{list}");
    assert!(row.contains("476173******0010"), "the PAN masked: {list}");
    assert!(!list.contains(PAN), "never the whole PAN: {list}");
    assert!(list.contains("0 waiting for their destination, 1 in the exception queue"), "{list}");
    let id = row.split_whitespace().next().unwrap().to_owned();

    // Retried through the running switch: sent again (a repeat), then back in the queue.
    let sent = advices.load(Ordering::Relaxed);
    let (ok, out) = corridor(&["saf", "retry", dir, "--id", &id]);
    assert!(ok && out.contains(&format!("{id}: retried")), "{out}");
    wait_for("the retried advice", || advices.load(Ordering::Relaxed) > sent);
    wait_for("the exception queue again", || {
        corridor(&["saf", "list", dir, "--exceptions"])
            .1
            .contains("0 waiting for their destination, 1 in the exception queue")
    });
    assert!(!corridor(&["saf", "drop", dir, "--id", &id]).0, "a drop needs --yes");
    let status = switch.term();
    assert!(status.success());
    assert!(corridor(&["saf", "list", dir, "--exceptions"]).1.contains("1 in the exception queue"));

    // Dropped on the stopped switch: appended to its journal, which the next start reads.
    let (ok, out) = corridor(&["saf", "drop", dir, "--destination", "iss", "--yes"]);
    assert!(ok && out.contains(&format!("{id}: dropped")), "{out}");
    let (ok, out) = corridor(&["saf", "list", dir]);
    assert!(ok && out.contains("0 waiting for their destination, 0 in the exception queue"), "{out}");
    assert!(!corridor(&["saf", "retry", dir, "--id", &id]).0, "nothing left to retry");
    let (ok, verify) = corridor(&["journal", "verify", dir]);
    assert!(ok && verify.contains("0 in the exception queue"), "{verify}");
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
}
