//! A simulator dialing several nodes of a switch goes to the next when a connection goes or
//! cannot be made. A run with another node to fail over to: the node it sends to goes in the middle (its
//! simulator stopped, its connections closed with requests in flight), and every connection
//! is re-made to the other node, where what it had in flight is repeated (0201) and answered —
//! nothing left unanswered. Without a node to fail over to, the same loss leaves them
//! unanswered.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)] // test code

use std::{net::SocketAddr, time::Duration};

use corridor_load::{
    respond::{Latency, RespondSpec, Responder},
    run::{run, Mode, RunSpec},
    schedule::{Arrivals, Pacing},
    wire::Wire,
};

fn node() -> Responder {
    let mut spec = RespondSpec::listen(SocketAddr::from(([127, 0, 0, 1], 0)), Wire::NATIVE);
    spec.latency = Latency::Fixed(Duration::from_millis(40));
    spec.record = true;
    Responder::start(spec).unwrap()
}

fn spec(target: SocketAddr, failover: Vec<SocketAddr>) -> RunSpec {
    let mut spec = RunSpec::new(target, Wire::NATIVE);
    spec.mode = Mode::Open { rate: 400.0, arrivals: Arrivals::Constant, pacing: Pacing::Sleep };
    spec.connections = 2;
    spec.duration = Some(Duration::from_secs(3));
    spec.warmup = Duration::ZERO;
    spec.drain_timeout = Duration::from_secs(2);
    spec.failover = failover;
    spec
}

#[test]
fn a_connection_whose_node_goes_is_remade_to_the_other_and_what_it_had_in_flight_is_repeated() {
    let (a, b) = (node(), node());
    let (at_a, at_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        a.stop()
    });
    let o = run(&spec(at_a, vec![at_b])).unwrap();
    let seen_a = killer.join().unwrap();
    let c = &o.recorder.counts;
    assert!(seen_a.approved > 100, "node a served first: {seen_a:?}");
    assert_eq!(c.failovers, 2, "both connections failed over: {c:?}");
    assert!(c.repeats > 0, "what was in flight at node a was repeated: {c:?}");
    assert_eq!(c.unanswered, 0, "{c:?}");
    assert_eq!(c.timeouts, 0, "{c:?}");
    assert_eq!(c.answered, c.sent, "every request sent answered once: {c:?}");
    let repeats_at_b = b.seen().iter().filter(|m| m.mti == "0201").count() as u64;
    assert_eq!(repeats_at_b, c.repeats, "node b got each repeat");
    assert!(b.seen().iter().filter(|m| m.mti == "0200").count() > 100, "node b took the rest");

    // Without a node to fail over to, the same loss leaves what was in flight unanswered.
    let (a, _b) = (node(), node());
    let at_a = a.local_addr().unwrap();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        a.stop()
    });
    let o = run(&spec(at_a, Vec::new())).unwrap();
    killer.join().unwrap();
    let c = &o.recorder.counts;
    assert_eq!((c.failovers, c.repeats), (0, 0));
    assert!(c.unanswered > 0 && c.answered < c.sent, "{c:?}");
}

#[test]
fn a_simulator_dialing_several_nodes_goes_to_the_next_when_one_is_down_or_drops_it() {
    use std::net::TcpListener;
    // Node a is down (its port closed); node b takes connections.
    let down = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut spec = RespondSpec::listen(down, Wire::NATIVE);
    (spec.listen, spec.dial, spec.dial_also, spec.sign_on) =
        (None, Some(down), vec![b.local_addr().unwrap()], false);
    let r = Responder::start(spec).unwrap();
    b.set_nonblocking(false).unwrap();
    let accept = |l: &TcpListener| {
        let (tx, rx) = std::sync::mpsc::channel();
        let l = l.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = tx.send(l.accept().map(|(s, _)| s));
        });
        rx.recv_timeout(Duration::from_secs(5)).expect("node b was dialed").unwrap()
    };
    let first = accept(&b);
    // Node b drops it: dialed again (node a still down, so node b again).
    drop(first);
    let _second = accept(&b);
    let start = std::time::Instant::now();
    while r.counts().connections < 2 {
        assert!(start.elapsed() < Duration::from_secs(5), "{:?}", r.counts());
        std::thread::sleep(Duration::from_millis(20));
    }
}
