//! The world's handshakes: a dial (connector at one end, accept task at the other), the accept
//! task's route, decision and hand-over, and the frames of open sockets.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use msgr::handshake::{
    protocol_version, AcceptContext, Acceptor, AcceptorEvent, ConnectRequest, Connector,
    ConnectorEvent, ConnectorParams, Decision, ReplyContext,
};
use msgr::pipe::{Adoption, Completion, FaultKind, StateName};
use msgr::session::Receive;
use msgr::wire::Frame;
use rand::Rng;

use super::{End, Ev, Sock, SockId, World};

/// A dial in progress, as its socket end remembers it.
struct Dialling {
    pipe: usize,
    attempt: u64,
    zombie: bool,
}

impl World {
    /// The machine dials: a new socket, the connector at this end, an accept task at the other.
    pub(super) fn dial(
        &mut self,
        node: usize,
        pipe: usize,
        attempt: u64,
        connect_seq: u32,
        in_seq: u64,
    ) {
        let peer = 1 - node;
        self.nodes[node].global_seq += 1;
        let (me, them) = (&self.nodes[node], &self.nodes[peer]);
        let mut conn = Connector::new(ConnectorParams {
            my_addr: me.addr,
            my_type: me.ty,
            peer_addr: them.addr,
            check_peer_nonce: true,
            policy: me.policy,
            global_seq: me.global_seq,
            connect_seq,
            in_seq,
            protocol_version: protocol_version(me.ty, them.ty, true),
            authorizer: None,
            cephx: None,
            learn_addr: true,
        });
        // The dialler's ephemeral port tells its sockets apart.
        let mut from = me.addr.addr.expect("an IP address");
        from.set_port(50000 + (self.socks.len() % 10000) as u16);
        let mut acc = Acceptor::new(them.addr, from);
        let s = self.socks.len();
        let (to_acceptor, to_dialler) = (conn.take_output(), acc.take_output());
        self.socks.push(Sock {
            ends: [
                End::Dial {
                    pipe,
                    attempt,
                    zombie: false,
                    conn,
                    inbuf: BytesMut::new(),
                },
                End::Accept {
                    acc,
                    inbuf: BytesMut::new(),
                    busy: false,
                },
            ],
            nodes: [node, peer],
            wires: Default::default(),
            cut: false,
        });
        self.pipe(node, pipe).handshake_sock = Some(s);
        self.write(s, 0, to_acceptor);
        self.write(s, 1, to_dialler);
    }

    /// End `to` reads what it has buffered.
    pub(super) fn read(&mut self, s: SockId, to: usize) {
        let node = self.socks[s].nodes[to];
        match std::mem::replace(&mut self.socks[s].ends[to], End::Gone) {
            End::Dial {
                pipe,
                attempt,
                zombie,
                conn,
                inbuf,
            } => {
                let dial = Dialling {
                    pipe,
                    attempt,
                    zombie,
                };
                self.read_dial(s, node, dial, conn, inbuf)
            }
            End::Accept {
                mut acc,
                mut inbuf,
                busy: false,
            } => {
                let ev = acc
                    .handle_input(&mut inbuf)
                    .expect("no corruption in the sim");
                let busy = ev.is_some();
                self.socks[s].ends[to] = End::Accept { acc, inbuf, busy };
                match ev {
                    None => {}
                    // The accept task asks the registry for the session's Pipe.
                    Some(AcceptorEvent::Connect(req)) => self.soon(Ev::Route { sock: s, req }),
                    Some(AcceptorEvent::Ready(_)) => panic!("an accept task never opens"),
                }
            }
            End::Adopted {
                pipe,
                attempt,
                zombie,
                mut acc,
                mut inbuf,
            } => {
                let ev = acc
                    .handle_input(&mut inbuf)
                    .expect("no corruption in the sim");
                self.socks[s].ends[to] = End::Adopted {
                    pipe,
                    attempt,
                    zombie,
                    acc,
                    inbuf,
                };
                match ev {
                    // A cancelled accept that cannot finish now is gone.
                    None if zombie => self.cut(s, Some(to)),
                    None => {}
                    Some(AcceptorEvent::Ready(a)) => {
                        if self.trace {
                            eprintln!(
                                "           node {node} pipe {pipe} accept {attempt} ready: {a:?}"
                            );
                        }
                        let now = self.instant();
                        let outcome = self.machine(node, pipe).accepted(now, attempt, &a);
                        self.completed(node, pipe, s, to, outcome.expect("a truthful peer"));
                    }
                    Some(AcceptorEvent::Connect(_)) => panic!("connect after open"),
                }
            }
            End::Open {
                pipe,
                gen,
                mut dec,
                mut inbuf,
            } => {
                let trace = self.trace;
                // The reader of a socket the session no longer uses was stopped.
                let current = self.machine(node, pipe).is_current_socket(gen);
                let mut next = || {
                    let frame = current.then(|| dec.decode(&mut inbuf));
                    frame
                        .transpose()
                        .expect("no corruption in the sim")
                        .flatten()
                };
                while let Some(frame) = next() {
                    let n = &mut self.nodes[node];
                    let m = &mut n.pipes[pipe].machine;
                    match frame {
                        Frame::Message(msg) => {
                            if trace {
                                eprintln!(
                                    "           node {node} pipe {pipe} gen {gen} got seq {}",
                                    msg.seq
                                );
                            }
                            if let Receive::Accept { .. } = m.receive(msg.seq) {
                                let word = |i: usize| {
                                    u64::from_le_bytes(msg.front[i..i + 8].try_into().expect("8"))
                                };
                                n.received.push((word(8), word(0)));
                            }
                        }
                        Frame::Ack(seq) => {
                            m.handle_ack(seq).expect("the sim's peers tell the truth");
                        }
                        Frame::Keepalive2(ts) => m.handle_keepalive2(ts),
                        Frame::Keepalive | Frame::Keepalive2Ack(_) => {}
                        other => panic!("unexpected frame {other:?}"),
                    }
                }
                self.socks[s].ends[to] = End::Open {
                    pipe,
                    gen,
                    dec,
                    inbuf,
                };
                if current {
                    self.want_flush(node, pipe);
                }
            }
            other => self.socks[s].ends[to] = other,
        }
    }

    fn read_dial(
        &mut self,
        s: SockId,
        node: usize,
        dial: Dialling,
        mut conn: Connector,
        mut inbuf: BytesMut,
    ) {
        let Dialling {
            pipe,
            attempt,
            zombie,
        } = dial;
        let ready = loop {
            let ev = conn
                .handle_input(&mut inbuf)
                .expect("no corruption in the sim");
            if let Some(out) = conn.take_output() {
                self.write(s, 0, [out]);
            }
            match ev {
                Some(ConnectorEvent::Ready(est)) => break Some(est),
                // A cancelled dial that cannot finish now is gone.
                _ if zombie => return self.cut(s, Some(0)),
                None => break None,
                Some(ConnectorEvent::NeedGlobalSeq { peer_global_seq }) => {
                    let n = &mut self.nodes[node];
                    n.global_seq = n.global_seq.max(peer_global_seq) + 1;
                    conn.retry_global(n.global_seq).expect("retry");
                    if let Some(out) = conn.take_output() {
                        self.write(s, 0, [out]);
                    }
                }
                Some(ConnectorEvent::SessionReset) => {
                    // The session hears of it now (the dial goes on with connect_seq 0).
                    if !self.machine(node, pipe).peer_reset_session(attempt) {
                        return self.cut(s, Some(0));
                    }
                    self.drive(node, pipe);
                }
                Some(ConnectorEvent::Wait) => {
                    self.waits += 1;
                    self.cut(s, Some(0));
                    if self.machine(node, pipe).handshake_failed(attempt) {
                        self.fail(node, pipe, FaultKind::Wait);
                    }
                    return;
                }
            }
        };
        self.socks[s].ends[0] = End::Dial {
            pipe,
            attempt,
            zombie,
            conn,
            inbuf,
        };
        if let Some(est) = ready {
            if self.trace {
                eprintln!("           node {node} pipe {pipe} dial {attempt} ready: {est:?}");
            }
            let now = self.instant();
            let outcome = self.machine(node, pipe).dialled(now, attempt, &est);
            self.completed(node, pipe, s, 0, outcome.expect("a truthful peer"));
        }
    }

    /// A handshake is cancelled late: actix polls a cancelled future once more, after the
    /// messages already in its actor's mailbox, so it may still report if it can finish with
    /// what has reached its socket by then. It is reaped after the next event for its Pipe
    /// ([`reap_zombies`](Self::reap_zombies)), or when its own bytes arrive first.
    pub(super) fn zombify(&mut self, node: usize, pipe: usize, s: SockId, end: usize) {
        match &mut self.socks[s].ends[end] {
            End::Dial { zombie, .. } | End::Adopted { zombie, .. } => *zombie = true,
            _ => return,
        }
        self.zombies.push((node, pipe, s, end));
    }

    /// The late-cancelled handshakes of `node`'s Pipe `pipe` report now, with the bytes on
    /// their way (the future would see them if it were polled now), or end.
    pub(super) fn reap_zombies(&mut self, node: usize, pipe: usize) {
        let mut i = 0;
        while i < self.zombies.len() {
            let (n, p, s, end) = self.zombies[i];
            if (n, p) != (node, pipe) {
                i += 1;
                continue;
            }
            self.zombies.swap_remove(i);
            let sock = &mut self.socks[s];
            let arrived: Vec<Bytes> = sock.wires[end].drain(..).collect();
            match &mut sock.ends[end] {
                End::Dial {
                    zombie: true,
                    inbuf,
                    ..
                }
                | End::Adopted {
                    zombie: true,
                    inbuf,
                    ..
                } => {
                    arrived.iter().for_each(|b| inbuf.extend_from_slice(b));
                }
                _ => continue,
            }
            self.read(s, end);
        }
    }

    /// A handshake finished: its socket opens (the machine's OpenSocket), or closes if stale.
    fn completed(&mut self, node: usize, pipe: usize, s: SockId, end: usize, outcome: Completion) {
        match outcome {
            Completion::Opened { .. } => {
                self.pipe(node, pipe).handed = Some(s);
                self.drive(node, pipe);
            }
            Completion::Stale => {
                self.stale_completions += 1;
                self.cut(s, Some(end))
            }
        }
    }

    /// The accept task asks the registry which Pipe decides (as RouteAccept does).
    pub(super) fn route(&mut self, s: SockId, req: ConnectRequest) {
        let node = self.socks[s].nodes[1];
        if matches!(self.socks[s].ends[1], End::Gone) {
            // The accept task died with its process.
            return;
        }
        let n = &mut self.nodes[node];
        let pipe = if n.policy.skips_session_lookup() {
            n.start_pipe(false)
        } else {
            match n.live_registered() {
                Some(p) => p,
                None => {
                    let p = n.start_pipe(false);
                    n.registered = Some(p);
                    p
                }
            }
        };
        self.soon(Ev::Decide { sock: s, req, pipe });
    }

    /// The accept task's question reaches the Pipe.
    pub(super) fn decide(&mut self, s: SockId, req: ConnectRequest, pipe: usize) {
        let node = self.socks[s].nodes[1];
        if self.pipe(node, pipe).dead {
            return self.cut(s, Some(1));
        }
        let now = self.instant();
        let n = &mut self.nodes[node];
        let peer_type = req.connect.host_type;
        let ctx = AcceptContext {
            policy: n.policy,
            protocol_version: protocol_version(n.ty, peer_type, false),
            authorizer_valid: true,
            my_addr: n.addr,
            existing: None,
        };
        let decision = n.pipes[pipe].machine.decide_accept(now, &req, ctx);
        let decided_at = n.pipes[pipe].machine.generation();
        if n.pipes[pipe].machine.state() == StateName::Replacing {
            n.pipes[pipe].awaiting_handover = true;
        }
        self.drive(node, pipe);
        if let Decision::Open { .. } = decision {
            if self.rng.gen_bool(self.knobs.lost_handover) {
                // The accept task timed out around the decision: no hand-over.
                self.cut(s, Some(1));
            } else {
                let adopt = Ev::Adopt {
                    sock: s,
                    req,
                    decision,
                    decided_at,
                    pipe,
                };
                if self.rng.gen_bool(self.knobs.slow_handover) {
                    let slow = self.knobs.max_delay_ms * 20_000;
                    let at = self.now + Duration::from_micros(self.rng.gen_range(0..=slow));
                    self.at(at, adopt);
                } else {
                    self.soon(adopt);
                }
            }
            return;
        }
        let n = &mut self.nodes[node];
        n.global_seq += 1;
        let reply = ReplyContext {
            policy: n.policy,
            protocol_version: protocol_version(n.ty, peer_type, false),
            server_global_seq: n.global_seq,
            in_seq: 0,
        };
        let End::Accept { acc, busy, .. } = &mut self.socks[s].ends[1] else {
            return;
        };
        acc.respond(decision, &reply).expect("respond");
        *busy = false;
        let out = acc.take_output();
        self.write(s, 1, out);
        self.read(s, 1);
    }

    /// The accept task hands the socket over to the Pipe that decided.
    pub(super) fn adopt(
        &mut self,
        s: SockId,
        req: ConnectRequest,
        (decision, decided_at): (Decision, u64),
        pipe: usize,
    ) {
        let node = self.socks[s].nodes[1];
        if self.pipe(node, pipe).dead {
            return self.cut(s, Some(1));
        }
        self.pipe(node, pipe).awaiting_handover = false;
        let End::Accept { mut acc, inbuf, .. } =
            std::mem::replace(&mut self.socks[s].ends[1], End::Gone)
        else {
            return;
        };
        let needless = self.replaces_a_live_socket_with_a_dead_one(node, pipe, s);
        let (attempt, in_seq) = match self.machine(node, pipe).adopt(&req, decision, decided_at) {
            Adoption::Finish { attempt, in_seq } => (attempt, in_seq),
            Adoption::Refused | Adoption::Outgrown => return self.cut(s, Some(1)),
        };
        self.needless_replacements += u64::from(needless);
        self.drive(node, pipe);
        self.pipe(node, pipe).adopted = true;
        self.pipe(node, pipe).newest_attempt = attempt;
        self.pipe(node, pipe).handshake_sock = Some(s);
        let n = &mut self.nodes[node];
        n.global_seq += 1;
        let reply = ReplyContext {
            policy: n.policy,
            protocol_version: protocol_version(n.ty, req.connect.host_type, false),
            server_global_seq: n.global_seq,
            in_seq,
        };
        let ready = acc.respond(decision, &reply).expect("respond");
        let out = acc.take_output();
        self.socks[s].ends[1] = End::Adopted {
            pipe,
            attempt,
            zombie: false,
            acc,
            inbuf,
        };
        if self.socks[s].cut {
            // The socket died while it was handed over: the accept fails at its first write.
            return self.eof(s, 1);
        }
        self.write(s, 1, out);
        match ready {
            Some(AcceptorEvent::Ready(a)) => {
                let now = self.instant();
                let outcome = self.machine(node, pipe).accepted(now, attempt, &a);
                self.completed(node, pipe, s, 1, outcome.expect("a truthful peer"));
            }
            _ => self.read(s, 1),
        }
    }

    /// Adopting socket `handed` now would drop a socket that both sides still use, for one the
    /// peer has already closed (it gave up the dial behind it when it accepted ours). A
    /// hand-over decided with a larger connect_seq than ours means the peer let go of our
    /// socket first, so this happens only when a session adopts a socket it outgrew.
    fn replaces_a_live_socket_with_a_dead_one(
        &self,
        node: usize,
        pipe: usize,
        handed: SockId,
    ) -> bool {
        let Some(live) = self.nodes[node].pipes[pipe].open_sock else {
            return false;
        };
        let peer_end = 1 - self.end_of(live, node);
        let peer_node = self.socks[live].nodes[peer_end];
        let peer_holds_it = match &self.socks[live].ends[peer_end] {
            End::Open { pipe: pp, gen, .. } => self.nodes[peer_node].pipes[*pp]
                .machine
                .is_current_socket(*gen),
            _ => false,
        };
        peer_holds_it && matches!(self.socks[handed].ends[0], End::Gone)
    }
}
