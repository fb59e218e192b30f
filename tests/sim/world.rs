//! The simulated world: two nodes, each with the shipped `msgr::pipe::Machine` for its session
//! with the other (as its registry holds it), sockets made of two byte queues, and one queue of
//! events on virtual time. The driver does what the Pipe actor does with a machine's actions,
//! and what the accept task does with a socket (decide through the machine, hand over later);
//! everything that can happen at a different moment in the real runtime (bytes arriving in
//! pieces, a decision, a hand-over, a fault reaching each side, a flush, a timer) is an event
//! at a seeded random time.

mod handshakes;
mod sockets;
mod user;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use msgr::handshake::connector::uses_msg_auth;
use msgr::handshake::{Acceptor, ConnectRequest, Connector, Decision};
use msgr::pipe::{Action, FaultKind, Machine, PipeConfig, PipeEvent, StateName};
use msgr::wire::{FrameDecoder, Timespec};
use msgr::{EntityAddr, EntityType, Policy};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A socket's number.
pub type SockId = usize;

/// How wild the world is.
#[derive(Debug, Clone, Copy)]
pub struct Knobs {
    /// Messages each node sends.
    pub sends: u64,
    /// Sockets cut (at random moments while the sends go on).
    pub cuts: u64,
    /// Largest delay of any event, in ms of virtual time.
    pub max_delay_ms: u64,
    /// Chance that an accept task gives up after its decision, so the hand-over never comes.
    pub lost_handover: f64,
    /// Chance that a cancelled dial or accept still reports its outcome (actix reaps a
    /// cancelled future only after polling it once more).
    pub late_cancel: f64,
    /// Chance that an accept task sleeps before its hand-over, up to 20 times the largest
    /// delay (ms_inject_internal_delays sleeps there, as Ceph's accept does).
    pub slow_handover: f64,
    /// Times a user (A's or B's) marks its connection down.
    pub markdowns: u64,
    /// Times a node restarts (same address, nothing remembered).
    pub restarts: u64,
}

impl Knobs {
    /// Varied per seed, so that the runs cover calm and wild worlds. `resets`: the pair's
    /// policies detect a restarted peer (resetcheck), so mark-downs and restarts are fair game.
    pub fn for_seed(seed: u64, resets: bool) -> Knobs {
        let mut r = SmallRng::seed_from_u64(seed ^ 0x5EED_C0DE);
        Knobs {
            sends: 60,
            cuts: r.gen_range(2..=16),
            max_delay_ms: r.gen_range(2..=80),
            lost_handover: r.gen_range(0.0..0.1),
            late_cancel: r.gen_range(0.0..0.5),
            slow_handover: r.gen_range(0.0..0.3),
            markdowns: if resets { r.gen_range(0..=2) } else { 0 },
            restarts: if resets { r.gen_range(0..=1) } else { 0 },
        }
    }
}

/// One Pipe actor: its machine and what the actor holds beside it.
pub struct PipeSlot {
    /// The shipped session core.
    pub machine: Machine,
    /// The socket the machine opened, the handshake in flight, a finished handshake's socket.
    open_sock: Option<SockId>,
    handshake_sock: Option<SockId>,
    handed: Option<SockId>,
    flush_pending: bool,
    timer_at: Option<Instant>,
    /// Its node restarted: the actor is gone.
    dead: bool,
    /// Made for an accepted connect (not for the user's get_connection).
    for_accept: bool,
    /// A socket was handed over to it (its open reply went out).
    adopted: bool,
    /// An Open decision awaits its hand-over.
    awaiting_handover: bool,
    /// The number of the newest dial or accept hand-over the machine started.
    newest_attempt: u64,
}

/// One node: its registry, its Pipe actors, and its user.
pub struct Node {
    /// Its address.
    pub addr: EntityAddr,
    ty: EntityType,
    policy: Policy,
    /// Dials (clients, peers); a server only accepts.
    dials: bool,
    /// Every Pipe this node started (an actor lives on after its session closes).
    pub pipes: Vec<PipeSlot>,
    /// The registry's entry for the peer's address.
    registered: Option<usize>,
    global_seq: u32,
    /// Payloads sent; and received, in arrival order, each with the sending session's number.
    pub sent: u64,
    pub received: Vec<(u64, u64)>,
    /// Payloads the user's sends found a closed session for.
    pub dropped: u64,
    /// Payloads below this may be lost: the user marked the session down, the node restarted,
    /// or a session reset dropped them (all of which the user is told of).
    pub barrier: u64,
    /// Events the dispatchers heard.
    pub events: Vec<PipeEvent>,
}

enum End {
    Dial {
        pipe: usize,
        attempt: u64,
        /// Cancelled: it may complete in this turn with what it has, and do nothing else.
        zombie: bool,
        conn: Connector,
        inbuf: BytesMut,
    },
    /// The accept task: reading connects, or waiting on a decision or the hand-over.
    Accept {
        acc: Acceptor,
        inbuf: BytesMut,
        busy: bool,
    },
    Adopted {
        pipe: usize,
        attempt: u64,
        zombie: bool,
        acc: Acceptor,
        inbuf: BytesMut,
    },
    Open {
        pipe: usize,
        gen: u64,
        dec: FrameDecoder,
        inbuf: BytesMut,
    },
    Gone,
}

struct Sock {
    /// End 0 is the dialler's, end 1 the acceptor's; `nodes[i]` owns end i.
    ends: [End; 2],
    nodes: [usize; 2],
    /// `wires[i]`: bytes on their way to end i.
    wires: [VecDeque<Bytes>; 2],
    cut: bool,
}

#[derive(Debug)]
enum Ev {
    Deliver {
        sock: SockId,
        to: usize,
    },
    Eof {
        sock: SockId,
        to: usize,
    },
    Route {
        sock: SockId,
        req: ConnectRequest,
    },
    Decide {
        sock: SockId,
        req: ConnectRequest,
        pipe: usize,
    },
    Adopt {
        sock: SockId,
        req: ConnectRequest,
        decision: Decision,
        /// The socket generation of the decision.
        decided_at: u64,
        pipe: usize,
    },
    Timer {
        node: usize,
        pipe: usize,
    },
    Flush {
        node: usize,
        pipe: usize,
    },
    Send {
        node: usize,
    },
    Cut,
    MarkDown {
        node: usize,
    },
    Restart {
        node: usize,
    },
}

/// The world.
pub struct World {
    pub rng: SmallRng,
    base: Instant,
    now: Duration,
    next_ev: u64,
    queue: BinaryHeap<Reverse<(Duration, u64)>>,
    evs: std::collections::HashMap<u64, Ev>,
    pub nodes: [Node; 2],
    socks: Vec<Sock>,
    pub knobs: Knobs,
    /// Sends and cuts still to happen.
    scheduled: u64,
    /// Cuts that hit a live socket.
    pub cuts_done: u64,
    /// Opens of a second socket while one was open (must stay 0).
    pub double_opens: u64,
    /// Connection races lost (WAIT answers).
    pub waits: u64,
    /// Sockets opened by a dial or accept that was not the newest (must stay 0).
    pub stale_opens: u64,
    /// Handshakes that finished after they were superseded (and were ignored).
    pub stale_completions: u64,
    /// Hand-overs that dropped a socket both sides used for one the peer had closed (must
    /// stay 0).
    pub needless_replacements: u64,
    /// Dials a session started while an accepted socket was being handed to it (must stay 0).
    pub dials_while_replacing: u64,
    /// Hand-overs, decisions and socket ends still to hear of a fault: the world is not
    /// settled while any is pending.
    pending: u64,
    /// Prints every event and action (`SIM_TRACE=1`), to follow a failing seed.
    trace: bool,
    /// Late-cancelled handshakes waiting to be reaped: (node, pipe, socket, end).
    zombies: Vec<(usize, usize, SockId, usize)>,
}

fn config(policy: Policy, dialable: bool, dial_first: bool, seed: u64) -> PipeConfig {
    PipeConfig {
        policy,
        dialable,
        dial_first,
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(15),
        ready_timeout: Duration::from_secs(10),
        keepalive_interval: Duration::from_secs(10),
        default_priority: None,
        crc_data: true,
        seed,
        sign_messages: true,
    }
}

impl Node {
    fn new(addr: &str, ty: EntityType, policy: Policy, dials: bool) -> Self {
        Node {
            addr: addr.parse().unwrap(),
            ty,
            policy,
            dials,
            pipes: Vec::new(),
            registered: None,
            global_seq: 0,
            sent: 0,
            received: Vec::new(),
            dropped: 0,
            barrier: 0,
            events: Vec::new(),
        }
    }

    /// Starts a Pipe (`dial_first`: for the user's get_connection; otherwise for an accept).
    fn start_pipe(&mut self, dial_first: bool) -> usize {
        let seed = self.pipes.len() as u64;
        let mut machine = Machine::new(config(self.policy, self.dials, dial_first, seed));
        machine.start();
        self.pipes.push(PipeSlot {
            machine,
            open_sock: None,
            handshake_sock: None,
            handed: None,
            flush_pending: false,
            timer_at: None,
            dead: false,
            for_accept: !dial_first,
            adopted: false,
            awaiting_handover: false,
            newest_attempt: 0,
        });
        self.pipes.len() - 1
    }

    /// The registered session, unless it closed.
    fn live_registered(&self) -> Option<usize> {
        self.registered
            .filter(|p| !self.pipes[*p].machine.is_closed())
    }

    /// Counters summed over every session: (replayed, skipped after SEQ, reconnects).
    pub fn stats(&self) -> (u64, u64, u64) {
        self.pipes.iter().fold((0, 0, 0), |(r, k, c), p| {
            let s = p.machine.stats();
            (
                r + s.session.replayed,
                k + s.session.skipped_after_seq,
                c + s.reconnects,
            )
        })
    }
}

impl World {
    /// A world of a dialler A (`a`) and B (`b`, which dials too when `b_dials`).
    pub fn new(seed: u64, a: Policy, b: Policy, b_dials: bool, knobs: Knobs) -> Self {
        let a_ty = if a == b {
            EntityType::OSD
        } else {
            EntityType::CLIENT
        };
        let mut w = World {
            rng: SmallRng::seed_from_u64(seed),
            base: Instant::now(),
            now: Duration::ZERO,
            next_ev: 0,
            queue: BinaryHeap::new(),
            evs: Default::default(),
            nodes: [
                Node::new("127.0.0.1:40000/11", a_ty, a, true),
                Node::new("127.0.0.1:6800/22", EntityType::OSD, b, b_dials),
            ],
            socks: Vec::new(),
            knobs,
            scheduled: 0,
            cuts_done: 0,
            double_opens: 0,
            waits: 0,
            stale_opens: 0,
            stale_completions: 0,
            needless_replacements: 0,
            dials_while_replacing: 0,
            pending: 0,
            trace: std::env::var_os("SIM_TRACE").is_some(),
            zombies: Vec::new(),
        };
        let horizon = knobs.sends * 20;
        for node in 0..2 {
            for _ in 0..knobs.sends {
                let at = w.rng.gen_range(0..horizon);
                w.at(Duration::from_millis(at), Ev::Send { node });
            }
        }
        for _ in 0..knobs.cuts {
            let at = w.rng.gen_range(0..horizon);
            w.at(Duration::from_millis(at), Ev::Cut);
        }
        for _ in 0..knobs.markdowns {
            let at = w.rng.gen_range(0..horizon);
            let node = w.rng.gen_range(0..2);
            w.at(Duration::from_millis(at), Ev::MarkDown { node });
        }
        for _ in 0..knobs.restarts {
            let at = w.rng.gen_range(0..horizon);
            let node = w.rng.gen_range(0..2);
            w.at(Duration::from_millis(at), Ev::Restart { node });
        }
        w.scheduled = 2 * knobs.sends + knobs.cuts + knobs.markdowns + knobs.restarts;
        w
    }

    fn at(&mut self, when: Duration, ev: Ev) {
        if ev.is_pending_work() {
            self.pending += 1;
        }
        let id = self.next_ev;
        self.next_ev += 1;
        self.queue.push(Reverse((when, id)));
        self.evs.insert(id, ev);
    }

    /// Schedules `ev` after a random delay.
    fn soon(&mut self, ev: Ev) {
        let d = Duration::from_micros(self.rng.gen_range(0..=self.knobs.max_delay_ms * 1000));
        self.at(self.now + d, ev);
    }

    fn instant(&self) -> Instant {
        self.base + self.now
    }

    fn pipe(&mut self, node: usize, pipe: usize) -> &mut PipeSlot {
        &mut self.nodes[node].pipes[pipe]
    }

    fn machine(&mut self, node: usize, pipe: usize) -> &mut Machine {
        &mut self.nodes[node].pipes[pipe].machine
    }

    /// Runs until every send and cut happened and nothing is in flight, or panics after an
    /// hour of virtual time.
    pub fn run(&mut self) {
        loop {
            let Some(Reverse((when, id))) = self.queue.pop() else {
                // Nothing moves. A user who marked its connection down and sent nothing since
                // has no session: the peer keeps its messages for it until it comes back.
                let client = &self.nodes[0];
                assert!(
                    client.live_registered().is_none() && client.dials,
                    "the world stopped before it settled"
                );
                self.user_send(0);
                continue;
            };
            assert!(when < Duration::from_secs(3600), "the world did not settle");
            self.now = when;
            let ev = self.evs.remove(&id).expect("event");
            if self.trace {
                eprintln!("{:>10?} {ev:?}", self.now);
            }
            if ev.is_scheduled() {
                self.scheduled -= 1;
            }
            if ev.is_pending_work() {
                self.pending -= 1;
            }
            self.handle(ev);
            if self.scheduled == 0 && self.settled() {
                return;
            }
        }
    }

    /// Nothing left to carry: no session has anything queued or unacked (so everything sent
    /// was acked, or dropped by a reset the user heard of), no bytes are in flight, no
    /// hand-over is pending.
    fn settled(&self) -> bool {
        let quiet = self.nodes.iter().flat_map(|n| &n.pipes).all(|p| {
            // A session waiting for a hand-over is not done (its deadline decides).
            p.dead
                || (!p.machine.session().has_outstanding()
                    && p.machine.state() != StateName::Replacing)
        });
        let in_flight = self
            .socks
            .iter()
            .any(|s| s.wires.iter().any(|w| !w.is_empty()));
        quiet && !in_flight && self.pending == 0
    }

    fn handle(&mut self, ev: Ev) {
        let target = self.target_pipe(&ev);
        self.handle_event(ev);
        if let Some((node, pipe)) = target {
            self.reap_zombies(node, pipe);
        }
    }

    /// The Pipe an event is for (its actor's mailbox), if any.
    fn target_pipe(&self, ev: &Ev) -> Option<(usize, usize)> {
        match *ev {
            Ev::Decide { sock, pipe, .. } | Ev::Adopt { sock, pipe, .. } => {
                Some((self.socks[sock].nodes[1], pipe))
            }
            Ev::Timer { node, pipe } | Ev::Flush { node, pipe } => Some((node, pipe)),
            Ev::Deliver { sock, to } | Ev::Eof { sock, to } => match self.socks[sock].ends[to] {
                End::Dial { pipe, .. } | End::Adopted { pipe, .. } | End::Open { pipe, .. } => {
                    Some((self.socks[sock].nodes[to], pipe))
                }
                _ => None,
            },
            _ => None,
        }
    }

    fn handle_event(&mut self, ev: Ev) {
        match ev {
            Ev::Send { node } => self.user_send(node),
            Ev::MarkDown { node } => self.user_mark_down(node),
            Ev::Restart { node } => self.restart(node),
            Ev::Cut => {
                let live: Vec<SockId> = (0..self.socks.len())
                    .filter(|s| !self.socks[*s].cut)
                    .collect();
                if !live.is_empty() {
                    let s = live[self.rng.gen_range(0..live.len())];
                    self.cuts_done += 1;
                    self.cut(s, None);
                }
            }
            Ev::Deliver { sock, to } => self.deliver(sock, to),
            Ev::Eof { sock, to } => self.eof(sock, to),
            Ev::Route { sock, req } => self.route(sock, req),
            Ev::Decide { sock, req, pipe } => self.decide(sock, req, pipe),
            Ev::Adopt {
                sock,
                req,
                decision,
                decided_at,
                pipe,
            } => self.adopt(sock, req, (decision, decided_at), pipe),
            Ev::Timer { node, pipe } | Ev::Flush { node, pipe } if self.pipe(node, pipe).dead => {}
            Ev::Timer { node, pipe } => {
                self.pipe(node, pipe).timer_at = None;
                let now = self.instant();
                self.machine(node, pipe).handle_timeout(now);
                self.drive(node, pipe);
                self.want_flush(node, pipe);
            }
            Ev::Flush { node, pipe } => self.flush(node, pipe),
        }
    }

    fn want_flush(&mut self, node: usize, pipe: usize) {
        let p = self.pipe(node, pipe);
        if p.machine.wants_transmit() && !p.flush_pending {
            p.flush_pending = true;
            self.soon(Ev::Flush { node, pipe });
        }
    }

    fn flush(&mut self, node: usize, pipe: usize) {
        let max = self.rng.gen_range(1..4);
        let p = self.pipe(node, pipe);
        p.flush_pending = false;
        let Some(s) = p.open_sock else { return };
        let mut out = Vec::new();
        p.machine
            .poll_transmit(max, || Timespec { sec: 1, nsec: 2 }, &mut out);
        let end = self.end_of(s, node);
        self.write(s, end, out);
        self.drive(node, pipe);
        self.want_flush(node, pipe);
    }

    /// The actor faults: supervision drops its socket and handshake, the machine decides.
    fn fail(&mut self, node: usize, pipe: usize, kind: FaultKind) {
        let p = self.pipe(node, pipe);
        p.awaiting_handover = false;
        let socks = [p.open_sock.take(), p.handshake_sock.take()];
        for s in socks.into_iter().flatten() {
            let end = self.end_of(s, node);
            self.cut(s, Some(end));
        }
        let now = self.instant();
        self.machine(node, pipe).fault(now, kind);
        self.drive(node, pipe);
    }

    /// Carries out a machine's actions, as the Pipe actor does.
    fn drive(&mut self, node: usize, pipe: usize) {
        while let Some(action) = self.machine(node, pipe).poll_action() {
            if self.trace {
                let m = &self.nodes[node].pipes[pipe].machine;
                eprintln!(
                    "           node {node} pipe {pipe} [{} cs {}] {action:?}",
                    m.state(),
                    m.connect_seq()
                );
            }
            match action {
                Action::Dial {
                    attempt,
                    connect_seq,
                    in_seq,
                } => {
                    if self.pipe(node, pipe).awaiting_handover {
                        self.dials_while_replacing += 1;
                    }
                    self.pipe(node, pipe).newest_attempt = attempt;
                    self.dial(node, pipe, attempt, connect_seq, in_seq)
                }
                Action::CancelHandshake => {
                    if let Some(s) = self.pipe(node, pipe).handshake_sock.take() {
                        let end = self.end_of(s, node);
                        if self.rng.gen_bool(self.knobs.late_cancel) {
                            self.zombify(node, pipe, s, end);
                        } else {
                            self.cut(s, Some(end));
                        }
                    }
                }
                Action::OpenSocket { gen, features, .. } => self.open(node, pipe, gen, features),
                Action::DropSocket { .. } => {
                    if let Some(s) = self.pipe(node, pipe).open_sock.take() {
                        let end = self.end_of(s, node);
                        self.cut(s, Some(end));
                    }
                }
                Action::Event(e) => {
                    let n = &mut self.nodes[node];
                    if matches!(e, PipeEvent::Reset | PipeEvent::RemoteReset) {
                        n.barrier = n.sent;
                    }
                    n.events.push(e);
                }
                Action::Closed => {}
                Action::Fail(_) => self.fail(node, pipe, FaultKind::Other),
            }
        }
        let p = self.pipe(node, pipe);
        let wanted = p.machine.poll_timeout();
        if let Some(at) = wanted.filter(|_| wanted != p.timer_at) {
            p.timer_at = wanted;
            let at = at.saturating_duration_since(self.base);
            self.at(at.max(self.now), Ev::Timer { node, pipe });
        }
    }

    /// The machine's OpenSocket: the handed socket gets a reader (a frame decoder).
    fn open(&mut self, node: usize, pipe: usize, gen: u64, features: u64) {
        let p = &mut self.nodes[node].pipes[pipe];
        let s = p.handed.take().expect("a handed socket");
        let second = p.open_sock.replace(s).is_some();
        self.double_opens += u64::from(second);
        let p = &mut self.nodes[node].pipes[pipe];
        p.handshake_sock = None;
        let end = self.end_of(s, node);
        let (inbuf, attempt) = match std::mem::replace(&mut self.socks[s].ends[end], End::Gone) {
            End::Dial { inbuf, attempt, .. } | End::Adopted { inbuf, attempt, .. } => {
                (inbuf, attempt)
            }
            _ => (BytesMut::new(), 0),
        };
        // Only the newest dial or accept hand-over may open a socket.
        let newest = self.nodes[node].pipes[pipe].newest_attempt;
        self.stale_opens += u64::from(attempt != newest);
        let dec = FrameDecoder::new(uses_msg_auth(features), Default::default());
        self.socks[s].ends[end] = End::Open {
            pipe,
            gen,
            dec,
            inbuf,
        };
        if self.socks[s].cut {
            self.soon(Ev::Eof { sock: s, to: end });
        }
        self.read(s, end);
        self.want_flush(node, pipe);
    }
}
