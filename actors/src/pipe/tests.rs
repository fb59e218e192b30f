//! Connection races driven one actor message at a time against a raw peer, which this module
//! plays with the sans-IO handshake machines, so it decides when each socket fails and what
//! each handshake answers. In each, the peer's connect is decided while the session is open,
//! and the session's socket then fails before the accepted socket is handed over (`Adopt`):
//!
//! - the session dials again and the hand-over arrives during that dial: the dial must be
//!   dropped. Left running, it opened a second socket for the session and stranded the first
//!   one's unacked messages, which the peer saw as a gap in the seqs (the cluster sim's rare
//!   lossless loss);
//! - the hand-over never arrives: the session must not wait for it for good;
//! - the session's dial wins and opens before the hand-over: the handed-over socket is stale
//!   and must be dropped, not adopted in place of the live one.
//!
//! And one more: a closed session answers a connect (Ceph's "open a new one") without taking
//! the socket or waiting for it.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use msgr::handshake::connector::uses_msg_auth;
use msgr::handshake::{
    decide, protocol_version, AcceptContext, Acceptor, AcceptorEvent, Connector, ConnectorEvent,
    ConnectorParams, Decision, ExistingSession, ExistingState, ReplyContext,
};
use msgr::wire::{Frame, FrameDecoder};
use msgr::{Config, EntityAddr, EntityName, EntityType, Message, Policy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::handshake_io::read_more;
use crate::msgs::{AcceptRoute, Adopt, DecideAccept, RouteAccept};
use crate::{Connection, Dispatcher, Messenger};

/// Generous bound for each step; a step that needs it has already failed.
const STEP: Duration = Duration::from_secs(20);

struct Ignore;

impl Dispatcher for Ignore {
    fn ms_dispatch(&self, _: &Connection, _: Message) -> bool {
        true
    }
}

fn policy() -> Policy {
    Policy::lossless_peer(0)
}

fn numbered(n: u8) -> Message {
    Message::new(0x4000, Bytes::from(vec![n; 64]))
}

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {STEP:?} waiting for: {what}"))
}

/// The raw peer accepts a dial of the session and opens it, answering from `existing` (its
/// own record of the session, if any) with `in_seq` (what it has received); returns the socket,
/// what it buffered, and whether frames carry MSG_AUTH signatures.
async fn accept_dial(
    listener: &TcpListener,
    me: EntityAddr,
    existing: Option<ExistingSession>,
    in_seq: u64,
) -> (TcpStream, BytesMut, bool) {
    let (mut s, from) = listener.accept().await.expect("accept");
    let mut acceptor = Acceptor::new(me, from);
    let mut buf = BytesMut::new();
    loop {
        if let Some(out) = acceptor.take_output() {
            s.write_all(&out).await.expect("write");
        }
        match acceptor.handle_input(&mut buf).expect("handshake") {
            None => read_more(&mut s, &mut buf, acceptor.wanted())
                .await
                .expect("the session's handshake"),
            Some(AcceptorEvent::Connect(req)) => {
                let ctx = AcceptContext {
                    policy: policy(),
                    protocol_version: protocol_version(EntityType::OSD, EntityType::OSD, false),
                    authorizer_valid: true,
                    my_addr: me,
                    existing,
                };
                let decision = decide(&req, &ctx);
                assert!(matches!(decision, Decision::Open { .. }), "{decision:?}");
                let reply = ReplyContext {
                    policy: policy(),
                    protocol_version: ctx.protocol_version,
                    server_global_seq: 1,
                    in_seq,
                };
                if let Some(AcceptorEvent::Ready(a)) =
                    acceptor.respond(decision, &reply).expect("respond")
                {
                    let out = acceptor.take_output().expect("open reply");
                    s.write_all(&out).await.expect("write");
                    return (s, buf, uses_msg_auth(a.features));
                }
            }
            Some(AcceptorEvent::Ready(a)) => return (s, buf, uses_msg_auth(a.features)),
        }
    }
}

/// Reads messages until `n` have arrived; returns their seqs and first payload bytes.
async fn read_messages(
    s: &mut TcpStream,
    buf: &mut BytesMut,
    decoder: &mut FrameDecoder,
    n: usize,
) -> Vec<(u64, u8)> {
    let mut got = Vec::new();
    while got.len() < n {
        match decoder.decode(buf).expect("frame") {
            Some(Frame::Message(m)) => got.push((m.seq, m.front[0])),
            Some(_) => {}
            None => {
                let read = s.read_buf(buf).await.expect("read");
                assert!(read > 0, "socket closed after {got:?}");
            }
        }
    }
    got
}

/// Our messenger (osd.1) with a session open to the raw peer (osd.0). [`open_session`] also
/// returns the peer's end of the first socket, on which it received 1..=3 and acked none.
struct Setup {
    m: Messenger,
    conn: Connection,
    /// The session's Pipe, as the Registry routes an accepted connect to it.
    pipe: AcceptRoute,
    listener: TcpListener,
    peer: EntityAddr,
    limits: msgr::wire::decoder::DecoderLimits,
}

async fn open_session(ready_timeout: Duration) -> (Setup, TcpStream) {
    let config = Config::default()
        .ms_initial_backoff(Duration::from_millis(10))
        .ms_connection_ready_timeout(ready_timeout)
        .ms_keepalive_interval(Duration::ZERO);
    let m = Messenger::builder(EntityName::new(EntityType::OSD, 1))
        .config(config.clone())
        .default_policy(policy())
        .dispatcher(Arc::new(Ignore))
        .build()
        .expect("build");
    m.bind("127.0.0.1:0".parse().unwrap()).await.expect("bind");
    m.start().expect("start");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = EntityAddr::new(listener.local_addr().unwrap(), 777);
    let conn = m.get_connection(peer, EntityType::OSD).await.unwrap();
    let route = RouteAccept {
        peer_addr: peer,
        peer_type: EntityType::OSD,
        shard: conn.inner.shard,
        v2: false,
    };
    let pipe = m.shared.routes().route_accept.send(route).await;
    let pipe = pipe.expect("the registry").expect("the session's Pipe");
    let (mut first, mut buf, msg_auth) =
        within("the first dial", accept_dial(&listener, peer, None, 0)).await;
    let limits = config.decoder_limits();
    let mut decoder = FrameDecoder::new(msg_auth, limits);
    for n in 1..=3 {
        conn.send_message(numbered(n)).unwrap();
    }
    let got = within(
        "three messages",
        read_messages(&mut first, &mut buf, &mut decoder, 3),
    )
    .await;
    assert_eq!(got, [(1, 1), (2, 2), (3, 3)]);
    let setup = Setup {
        m,
        conn,
        pipe,
        listener,
        peer,
        limits,
    };
    (setup, first)
}

impl Setup {
    /// Waits until the session's Pipe reports `state`.
    async fn reaches(&self, state: &str) {
        within(&format!("the session to be {state}"), async {
            while self.conn.info().await.map(|i| i.state) != Some(state) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    }

    /// Hands our end of the peer's socket over after `decision`, as the accept task does;
    /// returns the peer's end: its socket, its connector and what it has buffered.
    fn hand_over(
        &self,
        c: PeerConnect,
        (decision, decided_at): (Decision, u64),
    ) -> (TcpStream, Connector, BytesMut) {
        self.pipe.adopt.do_send(Adopt {
            stream: c.ours.into_std().unwrap(),
            acceptor: crate::msgs::AcceptingSide::V1(Box::new(c.acceptor)),
            inbuf: c.abuf,
            decision,
            decided_at,
            req: c.req,
            slot: None,
        });
        (c.theirs, c.connector, c.cbuf)
    }
}

/// The peer's connect to us, with a higher connect_seq than the session's (a reconnect), read
/// up to the decision: our end of the socket, the acceptor holding the request, and the peer's
/// end with its connector, which continues over the socket once we reply.
struct PeerConnect {
    ours: TcpStream,
    acceptor: Acceptor,
    abuf: BytesMut,
    req: msgr::handshake::ConnectRequest,
    theirs: TcpStream,
    connector: Connector,
    cbuf: BytesMut,
}

async fn peer_connects(s: &Setup) -> PeerConnect {
    let side = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let theirs = TcpStream::connect(side.local_addr().unwrap())
        .await
        .unwrap();
    let (ours, from) = side.accept().await.unwrap();
    let mut connector = Connector::new(ConnectorParams {
        my_addr: s.peer,
        my_type: EntityType::OSD,
        peer_addr: s.m.my_addr(),
        check_peer_nonce: true,
        policy: policy(),
        global_seq: 10,
        connect_seq: 5,
        in_seq: 3,
        protocol_version: protocol_version(EntityType::OSD, EntityType::OSD, true),
        authorizer: None,
        cephx: None,
        learn_addr: false,
    });
    let mut acceptor = Acceptor::new(s.m.my_addr(), from);
    let (mut cbuf, mut abuf) = (BytesMut::new(), BytesMut::new());
    for _ in 0..10 {
        // Both ends of the handshake in memory: the socket only carries what follows.
        let _ = connector.handle_input(&mut cbuf).expect("connector");
        if let Some(out) = connector.take_output() {
            abuf.extend_from_slice(&out);
        }
        match acceptor.handle_input(&mut abuf).expect("acceptor") {
            Some(AcceptorEvent::Connect(req)) => {
                return PeerConnect {
                    ours,
                    acceptor,
                    abuf,
                    req,
                    theirs,
                    connector,
                    cbuf,
                }
            }
            Some(AcceptorEvent::Ready(_)) => unreachable!("no reply was written yet"),
            None => {}
        }
        if let Some(out) = acceptor.take_output() {
            cbuf.extend_from_slice(&out);
        }
    }
    panic!("the in-memory handshake is stuck");
}

/// Reads what a socket of ours still sends until it closes.
async fn closes(mut s: TcpStream, what: &str) {
    let mut ignored = Vec::new();
    let res = within(what, s.read_to_end(&mut ignored)).await;
    assert!(
        res.is_ok() || res.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "{what}: failed oddly"
    );
}

#[actix_rt::test]
async fn an_accept_decided_before_a_fault_cancels_the_dial_that_follows_it() {
    let (s, first) = open_session(Duration::from_secs(120)).await;
    // The peer dials us too (its socket failed first, say). The connect is decided while our
    // socket is still open: replace it.
    let (connect, decision) = peer_connects_decided(&s, true, "open").await;

    // Now our socket fails, and the session dials again before the accepted socket arrives.
    drop(first);
    let (redial, _) = within("the session's new dial", s.listener.accept())
        .await
        .expect("accept");
    s.reaches("connecting").await;
    let (mut dialled, mut connector, mut cbuf) = s.hand_over(connect, decision);

    // The dial is dropped: its socket closes (we never answer it, so only a cancel closes it;
    // what it wrote before, its banner, is read and ignored).
    closes(redial, "the superseded dial to close").await;

    // The adopted socket carries the session: the SEQ exchange (we have 1..=3), then the rest.
    let established = within("the open reply", async {
        loop {
            let ev = connector.handle_input(&mut cbuf).expect("connector");
            if let Some(out) = connector.take_output() {
                dialled.write_all(&out).await.unwrap();
            }
            match ev {
                Some(ConnectorEvent::Ready(est)) => break est,
                Some(other) => panic!("unexpected {other:?}"),
                None => read_more(&mut dialled, &mut cbuf, connector.wanted())
                    .await
                    .expect("our open reply"),
            }
        }
    })
    .await;
    assert_eq!(established.peer_acked_seq, Some(0));
    for n in 4..=6 {
        s.conn.send_message(numbered(n)).unwrap();
    }
    let mut decoder = FrameDecoder::new(uses_msg_auth(established.features), s.limits);
    let got = within(
        "the next messages",
        read_messages(&mut dialled, &mut cbuf, &mut decoder, 3),
    )
    .await;
    assert_eq!(
        got,
        [(4, 4), (5, 5), (6, 6)],
        "a gap or a replay of acked seqs"
    );
    drop(dialled);
    s.m.shutdown().await;
}

#[actix_rt::test]
async fn a_decided_accept_whose_socket_never_comes_lets_the_session_dial_again() {
    let (s, first) = open_session(Duration::from_secs(1)).await;
    // Our socket fails and the session dials again; the peer's connect is decided meanwhile
    // (the dial is cancelled for it), but the accept task never hands the socket over.
    drop(first);
    let (redial, _) = within("the session's new dial", s.listener.accept())
        .await
        .expect("accept");
    let (connect, _) = peer_connects_decided(&s, true, "replacing").await;
    drop(connect);
    closes(redial, "the cancelled dial to close").await;
    // The session does not wait for that socket for ever: it dials again.
    let (_again, _) = within(
        "a dial after the hand-over was overdue",
        s.listener.accept(),
    )
    .await
    .expect("accept");
    s.m.shutdown().await;
}

/// [`peer_connects`], then decided by the Pipe: an Open (replacing its socket or not), after
/// which the session is `then` ("open": its socket carries on until the hand-over;
/// "replacing": a dial was cancelled for it; "closed").
async fn peer_connects_decided(
    s: &Setup,
    replace: bool,
    then: &str,
) -> (PeerConnect, (Decision, u64)) {
    let connect = peer_connects(s).await;
    let decided = s
        .pipe
        .decide
        .send(DecideAccept(connect.req.clone()))
        .await
        .unwrap();
    let decision = decided.0;
    assert!(
        matches!(decision, Decision::Open { replace: r, .. } if r == replace),
        "{decision:?}"
    );
    assert_eq!(s.conn.info().await.map(|i| i.state), Some(then));
    (connect, decided)
}

#[actix_rt::test]
async fn an_accepted_socket_the_session_outgrew_is_dropped_not_adopted() {
    let (s, first) = open_session(Duration::from_secs(120)).await;
    // The peer's connect is decided while our socket is open, as in the first test ...
    let (connect, decision) = peer_connects_decided(&s, true, "open").await;
    // ... but this time the session's new dial wins: the peer accepts it (resuming the
    // session it has, 1..=3 received) before the accepted socket is handed over.
    drop(first);
    let existing = ExistingSession {
        connect_seq: 1,
        peer_global_seq: 0,
        state: ExistingState::Standby,
        lossy: false,
        policy_server: false,
        established: true,
    };
    let (mut redial, mut buf, msg_auth) = within(
        "the session's new dial",
        accept_dial(&s.listener, s.peer, Some(existing), 3),
    )
    .await;
    s.reaches("open").await;
    let (theirs, _, _) = s.hand_over(connect, decision);
    // The stale socket closes without a reply, and the session stays on its own socket.
    closes(theirs, "the outgrown accepted socket to close").await;
    s.conn.send_message(numbered(4)).unwrap();
    let mut decoder = FrameDecoder::new(msg_auth, s.limits);
    let got = within(
        "the next message on the session's socket",
        read_messages(&mut redial, &mut buf, &mut decoder, 1),
    )
    .await;
    assert_eq!(got, [(4, 4)]);
    assert_eq!(s.conn.info().await.map(|i| i.state), Some("open"));
    drop(redial);
    s.m.shutdown().await;
}

#[actix_rt::test]
async fn a_closed_session_answers_a_connect_but_takes_no_socket() {
    let (s, _first) = open_session(Duration::from_secs(120)).await;
    s.conn.mark_down();
    s.reaches("closed").await;
    // Ceph's rule for a closed existing session is to open a new one (spec §2.6 7a), but not
    // in this Pipe: it stays closed and refuses the socket, which closes.
    let (connect, decision) = peer_connects_decided(&s, false, "closed").await;
    let (theirs, _, _) = s.hand_over(connect, decision);
    closes(theirs, "the refused socket to close").await;
    assert_eq!(s.conn.info().await.map(|i| i.state), Some("closed"));
    s.m.shutdown().await;
}

/// The peer's record of the session after it received 1..=3 on the first socket.
fn peer_has_the_session() -> ExistingSession {
    ExistingSession {
        connect_seq: 1,
        peer_global_seq: 0,
        state: ExistingState::Standby,
        lossy: false,
        policy_server: false,
        established: true,
    }
}

/// v1's ACK has no CRC: a flipped high bit turns "3" into an ACK for seqs never sent. Acted
/// on, it released every unacked message, and the next fault lost them. It must fault the
/// socket instead, and the replay on the next socket must bring 1..=3 again (the peer claims
/// to have none of them, as if the ACK had been a lie about what it had).
#[actix_rt::test]
async fn an_ack_beyond_every_sent_seq_faults_the_socket_and_the_messages_are_replayed() {
    let (s, mut first) = open_session(Duration::from_secs(120)).await;
    let mut ack = vec![msgr::wire::Tag::Ack as u8];
    ack.extend_from_slice(&(3u64 | 1 << 40).to_le_bytes());
    first.write_all(&ack).await.unwrap();
    closes(first, "the socket that carried the false ACK to close").await;
    let (mut second, mut buf, msg_auth) = within(
        "the session's new dial",
        accept_dial(&s.listener, s.peer, Some(peer_has_the_session()), 0),
    )
    .await;
    let mut decoder = FrameDecoder::new(msg_auth, s.limits);
    let got = within(
        "the replay",
        read_messages(&mut second, &mut buf, &mut decoder, 3),
    )
    .await;
    assert_eq!(got, [(1, 1), (2, 2), (3, 3)], "the replay is incomplete");
    assert!(s.conn.counters().faults_decode >= 1);
    drop(second);
    s.m.shutdown().await;
}

/// The SEQ exchange carries no CRC either: a peer claiming far more than we ever numbered,
/// while we hold messages to replay, would make us skip them all. That socket is dropped, and
/// the next one (with a true claim) gets the replay.
#[actix_rt::test]
async fn a_seq_claim_beyond_every_sent_seq_drops_that_socket_and_the_next_gets_the_replay() {
    let (s, first) = open_session(Duration::from_secs(120)).await;
    drop(first);
    let (bad, _, _) = within(
        "the session's new dial",
        accept_dial(&s.listener, s.peer, Some(peer_has_the_session()), 1 << 35),
    )
    .await;
    closes(bad, "the socket with the impossible SEQ to close").await;
    let (mut good, mut buf, msg_auth) = within(
        "the dial after it",
        accept_dial(&s.listener, s.peer, Some(peer_has_the_session()), 1),
    )
    .await;
    let mut decoder = FrameDecoder::new(msg_auth, s.limits);
    let got = within(
        "the replay after seq 1",
        read_messages(&mut good, &mut buf, &mut decoder, 2),
    )
    .await;
    assert_eq!(got, [(2, 2), (3, 3)]);
    drop(good);
    s.m.shutdown().await;
}
