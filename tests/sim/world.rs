//! The simulated world: two nodes, each with the shipped `msgr::pipe::Machine` for its session
//! with the other (as its registry holds it), sockets made of two byte queues, and one queue of
//! events on virtual time. The driver does what the Pipe actor does with a machine's actions,
//! and what the accept task does with a socket (decide through the machine, hand over later);
//! everything that can happen at a different moment in the real runtime (bytes arriving in
//! pieces, a decision, a hand-over, a fault reaching each side, a flush, a timer) is an event
//! at a seeded random time.

mod handshakes;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use msgr::handshake::connector::uses_msg_auth;
use msgr::handshake::{Acceptor, ConnectRequest, Connector, Decision};
use msgr::pipe::{Action, FaultKind, Machine, PipeConfig, PipeEvent, Queued};
use msgr::wire::{FrameDecoder, Timespec};
use msgr::{EntityAddr, EntityType, Message, Policy};
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
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            sends: 60,
            cuts: 8,
            max_delay_ms: 40,
            lost_handover: 0.05,
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
    /// Payloads sent, and received (in arrival order).
    pub sent: u64,
    pub received: Vec<u64>,
    /// Payloads the user's sends found a closed session for.
    pub dropped: u64,
    /// Events the dispatchers heard.
    pub events: Vec<PipeEvent>,
}

enum End {
    Dial {
        pipe: usize,
        attempt: u64,
        conn: Connector,
        inbuf: BytesMut,
        session_reset: bool,
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
    /// Prints every event and action (`SIM_TRACE=1`), to follow a failing seed.
    trace: bool,
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
            trace: std::env::var_os("SIM_TRACE").is_some(),
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
        w.scheduled = 2 * knobs.sends + knobs.cuts;
        w
    }

    fn at(&mut self, when: Duration, ev: Ev) {
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
        while let Some(Reverse((when, id))) = self.queue.pop() {
            assert!(when < Duration::from_secs(3600), "the world did not settle");
            self.now = when;
            let ev = self.evs.remove(&id).expect("event");
            if self.trace {
                eprintln!("{:>10?} {ev:?}", self.now);
            }
            if matches!(ev, Ev::Send { .. } | Ev::Cut) {
                self.scheduled -= 1;
            }
            self.handle(ev);
            if self.scheduled == 0 && self.settled() {
                return;
            }
        }
        panic!("the world stopped before it settled");
    }

    /// Nothing left to carry: no session has anything queued or unacked, no bytes are in
    /// flight, and (lossless) the registered sessions are open on one socket.
    fn settled(&self) -> bool {
        let quiet = self.nodes.iter().all(|n| {
            n.pipes
                .iter()
                .all(|p| !p.machine.session().has_outstanding())
        });
        let in_flight = self
            .socks
            .iter()
            .any(|s| !s.cut && s.wires.iter().any(|w| !w.is_empty()));
        let open_sock = |n: &Node| n.live_registered().and_then(|p| n.pipes[p].open_sock);
        let lossless = !self.nodes[0].policy.lossy;
        let joined = open_sock(&self.nodes[0]).is_some()
            && open_sock(&self.nodes[0]) == open_sock(&self.nodes[1]);
        quiet && !in_flight && (!lossless || joined)
    }

    /// Sessions that live on beside the registered one (a closed session revived, say). A
    /// stateless server keeps none registered, so its own are not counted.
    pub fn stray_sessions(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| !n.policy.skips_session_lookup())
            .map(|n| {
                (0..n.pipes.len())
                    .filter(|p| Some(*p) != n.registered && !n.pipes[*p].machine.is_closed())
                    .count()
            })
            .sum()
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Send { node } => self.user_send(node),
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
                pipe,
            } => self.adopt(sock, req, decision, pipe),
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

    /// The user sends the next numbered payload on its connection to the peer.
    fn user_send(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        let pipe = match n.live_registered() {
            Some(p) => p,
            // A client's get_connection makes a new session when none is live.
            None if n.dials => {
                let p = n.start_pipe(true);
                n.registered = Some(p);
                self.drive(node, p);
                p
            }
            // A server's user answers on the connection it has; with none, it sends nothing.
            None => return,
        };
        let n = &mut self.nodes[node];
        let mut m = Message::new(0xEF00, Bytes::copy_from_slice(&n.sent.to_le_bytes()));
        m.priority = 127;
        n.sent += 1;
        match n.pipes[pipe].machine.send(m) {
            Queued::Transmit => self.want_flush(node, pipe),
            Queued::Held => self.drive(node, pipe),
            Queued::Dropped => n.dropped += 1,
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

    fn end_of(&self, s: SockId, node: usize) -> usize {
        usize::from(self.socks[s].nodes[0] != node)
    }

    /// End `from` of socket `s` writes `chunks`.
    fn write(&mut self, s: SockId, from: usize, chunks: impl IntoIterator<Item = Bytes>) {
        let sock = &mut self.socks[s];
        if sock.cut {
            return;
        }
        let to = 1 - from;
        let before = sock.wires[to].is_empty();
        sock.wires[to].extend(chunks.into_iter().filter(|c| !c.is_empty()));
        if before && !sock.wires[to].is_empty() {
            self.soon(Ev::Deliver { sock: s, to });
        }
    }

    /// Moves some of the bytes on their way to end `to` into its buffer, and lets it read.
    fn deliver(&mut self, s: SockId, to: usize) {
        let n = self.rng.gen_range(1..300);
        let sock = &mut self.socks[s];
        if sock.cut {
            return;
        }
        let mut got = BytesMut::new();
        while got.len() < n {
            let Some(front) = sock.wires[to].front_mut() else {
                break;
            };
            let take = (n - got.len()).min(front.len());
            got.extend_from_slice(&front.split_to(take));
            if front.is_empty() {
                sock.wires[to].pop_front();
            }
        }
        match &mut sock.ends[to] {
            End::Dial { inbuf, .. }
            | End::Accept { inbuf, .. }
            | End::Adopted { inbuf, .. }
            | End::Open { inbuf, .. } => inbuf.extend_from_slice(&got),
            End::Gone => {}
        }
        if !sock.wires[to].is_empty() {
            self.soon(Ev::Deliver { sock: s, to });
        }
        self.read(s, to);
    }

    /// The socket dies: its bytes in flight are lost, and each end still in use hears of it at
    /// its own moment. `closer`: the end whose owner closed it (it hears nothing).
    fn cut(&mut self, s: SockId, closer: Option<usize>) {
        let sock = &mut self.socks[s];
        if let Some(c) = closer {
            sock.ends[c] = End::Gone;
        }
        if sock.cut {
            return;
        }
        sock.cut = true;
        sock.wires = Default::default();
        for to in 0..2 {
            if !matches!(self.socks[s].ends[to], End::Gone) {
                self.soon(Ev::Eof { sock: s, to });
            }
        }
    }

    fn eof(&mut self, s: SockId, to: usize) {
        let node = self.socks[s].nodes[to];
        match std::mem::replace(&mut self.socks[s].ends[to], End::Gone) {
            End::Dial { pipe, attempt, .. } | End::Adopted { pipe, attempt, .. } => {
                if self.machine(node, pipe).handshake_failed(attempt) {
                    self.fail(node, pipe, FaultKind::Other);
                }
            }
            End::Open { pipe, gen, .. } => {
                if self.machine(node, pipe).is_current_socket(gen) {
                    self.fail(node, pipe, FaultKind::Other);
                }
            }
            // An accept task waiting on its decision or hand-over goes on (the hand-over finds
            // the socket dead); one reading connects just ends.
            End::Accept {
                acc,
                inbuf,
                busy: true,
            } => {
                self.socks[s].ends[to] = End::Accept {
                    acc,
                    inbuf,
                    busy: true,
                }
            }
            End::Accept { .. } | End::Gone => {}
        }
    }

    /// The actor faults: supervision drops its socket and handshake, the machine decides.
    fn fail(&mut self, node: usize, pipe: usize, kind: FaultKind) {
        let p = self.pipe(node, pipe);
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
                } => self.dial(node, pipe, attempt, connect_seq, in_seq),
                Action::CancelHandshake => {
                    if let Some(s) = self.pipe(node, pipe).handshake_sock.take() {
                        let end = self.end_of(s, node);
                        self.cut(s, Some(end));
                    }
                }
                Action::OpenSocket { gen, features } => self.open(node, pipe, gen, features),
                Action::DropSocket { .. } => {
                    if let Some(s) = self.pipe(node, pipe).open_sock.take() {
                        let end = self.end_of(s, node);
                        self.cut(s, Some(end));
                    }
                }
                Action::Event(e) => self.nodes[node].events.push(e),
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
        let inbuf = match std::mem::replace(&mut self.socks[s].ends[end], End::Gone) {
            End::Dial { inbuf, .. } | End::Adopted { inbuf, .. } => inbuf,
            _ => BytesMut::new(),
        };
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
