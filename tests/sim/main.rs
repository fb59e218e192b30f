//! The shipped session core (`msgr::pipe::Machine`, with the real connector and acceptor) on
//! virtual time: two nodes, sockets cut at any byte, every event (bytes arriving in pieces, an
//! accept's decision, its hand-over, a fault reaching each side, a flush, a timer) at a seeded
//! random moment, so the interleavings the actors can produce all come up. After the sends and
//! cuts stop and the world settles, the invariants are checked: lossless sessions deliver
//! every message exactly once and in order, lossy ones never duplicate or reorder, and a
//! session never opens a second socket while one is open. Deterministic per seed.
//!
//! The default suite runs 1,000 seeds per policy pair. The soak runs 100,000:
//! `cargo test --release --test sim -- --ignored`.

mod races;
mod world;

use msgr::Policy;
use world::{Knobs, World};

/// The policy pairs: (name, A, B, whether B dials too). Lossless peers have no resetcheck, so
/// they cannot tell a restarted peer (Ceph's lossless_peer): their worlds have no restarts.
fn pairs() -> [(&'static str, Policy, Policy, bool); 3] {
    [
        (
            "lossless client / stateful server",
            Policy::lossless_client(0),
            Policy::stateful_server(0),
            false,
        ),
        (
            "lossless peers racing",
            Policy::lossless_peer(0),
            Policy::lossless_peer(0),
            true,
        ),
        (
            "lossy client / stateless server",
            Policy::lossy_client(0),
            Policy::stateless_server(0),
            false,
        ),
    ]
}

fn check(w: &World, seed: u64, pair: &str, lossy: bool) {
    let at = format!("seed {seed} ({pair})");
    assert_eq!(w.double_opens, 0, "{at}: a session opened a second socket");
    assert_eq!(
        w.stale_opens, 0,
        "{at}: a dial or accept that was not the newest opened"
    );
    assert_eq!(
        w.stray_sessions(),
        0,
        "{at}: a session lives on beside the registered one"
    );
    assert_eq!(
        w.idle_leftovers(),
        0,
        "{at}: a session that never carried anything lingers"
    );
    assert_eq!(
        w.needless_replacements, 0,
        "{at}: a hand-over dropped a live socket for one the peer had closed"
    );
    assert_eq!(
        w.dials_while_replacing, 0,
        "{at}: a session dialled while an accepted socket was being handed to it"
    );
    for (who, rx, tx) in [("B", 1, 0), ("A", 0, 1)] {
        let got = &w.nodes[rx].received;
        let (sent, barrier) = (w.nodes[tx].sent, w.nodes[tx].barrier);
        let mut seen = std::collections::HashSet::new();
        let mut last_of_session = std::collections::HashMap::new();
        for &(session, payload) in got {
            assert!(payload < sent, "{at}: {who} got {payload}, never sent");
            assert!(
                seen.insert(payload),
                "{at}: {who} got {payload} twice: {got:?}"
            );
            let last = last_of_session.insert(session, payload);
            assert!(
                last < Some(payload),
                "{at}: {who} got {payload} after {last:?} from one session: {got:?}"
            );
        }
        if !lossy {
            // Everything sent since the sender last learned of a loss arrives, in order.
            let tail: Vec<u64> = got.iter().map(|r| r.1).filter(|p| *p >= barrier).collect();
            let want: Vec<u64> = (barrier..sent).collect();
            assert_eq!(
                tail, want,
                "{at}: {who} did not get every message exactly once, in order"
            );
        }
    }
}

/// Runs `seeds` of every pair; returns (cuts that hit a socket, messages replayed).
fn run_seeds(seeds: std::ops::Range<u64>) -> (u64, u64) {
    let (mut cuts, mut replayed) = (0, 0);
    for (pair, a, b, b_dials) in pairs() {
        for seed in seeds.clone() {
            let mut w = World::new(seed, a, b, b_dials, Knobs::for_seed(seed, !b_dials));
            w.run();
            check(&w, seed, pair, a.lossy);
            cuts += w.cuts_done;
            replayed += w.nodes.iter().map(|n| n.stats().0).sum::<u64>();
        }
    }
    (cuts, replayed)
}

#[test]
fn every_policy_pair_keeps_its_promises_over_1000_faulty_seeds() {
    let (cuts, replayed) = run_seeds(0..1000);
    // Guards the simulation itself: a world that never cut a socket would pass vacuously.
    assert!(cuts > 10_000, "only {cuts} cuts hit a socket");
    assert!(replayed > 1_000, "only {replayed} messages were replayed");
}

#[test]
fn faults_really_happen_races_really_occur_and_replays_really_occur() {
    let mut waits = 0;
    let mut reconnects = 0;
    let mut skipped = 0;
    let mut stale = 0;
    let (_, a, b, _) = pairs()[1];
    for seed in 0..100 {
        let mut w = World::new(seed, a, b, true, Knobs::for_seed(seed, false));
        w.run();
        for n in &w.nodes {
            let (_, k, c) = n.stats();
            reconnects += c;
            skipped += k;
        }
        waits += w.waits;
        stale += w.stale_completions;
    }
    assert!(reconnects > 100, "only {reconnects} reconnects");
    assert!(skipped > 0, "the SEQ exchange never skipped a message");
    assert!(waits > 0, "no connection race was ever lost (WAIT)");
    assert!(stale > 0, "no superseded handshake ever finished");
}

#[test]
#[ignore = "soak: 100,000 seeds per policy pair; run with --release"]
fn soak_100k_seeds() {
    run_seeds(0..100_000);
}

/// Replays one world and prints every event and action, to follow a failing seed:
/// `SEED=57 PAIR=0 SIM_TRACE=1 cargo test --test sim replay_one_seed -- --ignored --nocapture`
/// (PAIR indexes `pairs()`).
#[test]
#[ignore = "a tool: replays the world of SEED (and PAIR)"]
fn replay_one_seed() {
    // A tool, run by hand: the soak (`-- --ignored`) runs it too, without a seed.
    let Ok(seed) = std::env::var("SEED") else {
        eprintln!("SKIPPED replay_one_seed: set SEED=N (and PAIR=P) to replay one world");
        return;
    };
    let seed: u64 = seed.parse().expect("SEED is a number");
    let pair: usize = std::env::var("PAIR").map_or(0, |p| p.parse().expect("a number"));
    let (name, a, b, b_dials) = pairs()[pair];
    let mut w = World::new(seed, a, b, b_dials, Knobs::for_seed(seed, !b_dials));
    w.run();
    check(&w, seed, name, a.lossy);
}

/// Runs seeds until one fails and prints it (to measure how soon the sim finds a bug that is
/// put back): `cargo test --release --test sim first_failing_seed -- --ignored --nocapture`.
#[test]
#[ignore = "a tool: searches for the first failing seed"]
fn first_failing_seed() {
    std::panic::set_hook(Box::new(|_| {}));
    for seed in 0..100_000u64 {
        for (i, (name, a, b, b_dials)) in pairs().into_iter().enumerate() {
            let failed = std::panic::catch_unwind(|| {
                let mut w = World::new(seed, a, b, b_dials, Knobs::for_seed(seed, !b_dials));
                w.run();
                check(&w, seed, name, a.lossy);
            })
            .is_err();
            if failed {
                let _ = std::panic::take_hook();
                println!(
                    "first failure: seed {seed}, pair {i} ({name}), after {} worlds",
                    seed * 3 + i as u64 + 1
                );
                return;
            }
        }
    }
    let _ = std::panic::take_hook();
    println!("no failure in 100,000 seeds per pair");
}
