//! A connection race driven one actor message at a time: the peer's connect is decided while
//! the session is open, the session's socket then fails and it dials again, and only then does
//! the accepted socket arrive (`Adopt`). The dial must be dropped: left running, it opened a
//! second socket for the session and stranded the first one's unacked messages, which the peer
//! saw as a gap in the seqs (the cluster sim's rare lossless loss).
//!
//! The peer is raw: this test plays it with the sans-IO handshake machines, so it decides when
//! each socket fails and what each handshake answers.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use msgr::handshake::connector::uses_msg_auth;
use msgr::handshake::{
    decide, protocol_version, AcceptContext, Acceptor, AcceptorEvent, Connector, ConnectorEvent,
    ConnectorParams, Decision, ReplyContext,
};
use msgr::wire::{Frame, FrameDecoder};
use msgr::{Config, EntityAddr, EntityName, EntityType, Message, Policy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Adopt, DecideAccept};
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

async fn read_some(s: &mut TcpStream, buf: &mut BytesMut) {
    let n = s.read_buf(buf).await.expect("read");
    assert!(n > 0, "socket closed mid-handshake");
}

/// The raw peer accepts the session's first dial and opens it (no session of its own yet);
/// returns the socket, what it buffered, and whether frames carry MSG_AUTH signatures.
async fn accept_first_dial(listener: &TcpListener, me: EntityAddr) -> (TcpStream, BytesMut, bool) {
    let (mut s, from) = listener.accept().await.expect("accept");
    let mut acceptor = Acceptor::new(me, from);
    let mut buf = BytesMut::new();
    loop {
        if let Some(out) = acceptor.take_output() {
            s.write_all(&out).await.expect("write");
        }
        match acceptor.handle_input(&mut buf).expect("handshake") {
            None => read_some(&mut s, &mut buf).await,
            Some(AcceptorEvent::Connect(req)) => {
                let ctx = AcceptContext {
                    policy: policy(),
                    protocol_version: protocol_version(EntityType::OSD, EntityType::OSD, false),
                    authorizer_valid: true,
                    my_addr: me,
                    existing: None,
                };
                let decision = decide(&req, &ctx);
                let reply = ReplyContext {
                    policy: policy(),
                    protocol_version: ctx.protocol_version,
                    server_global_seq: 1,
                    in_seq: 0,
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

#[actix_rt::test]
async fn an_accept_decided_before_a_fault_cancels_the_dial_that_follows_it() {
    let config = Config::default()
        .ms_initial_backoff(Duration::from_millis(10))
        .ms_connection_ready_timeout(Duration::from_secs(120))
        .ms_keepalive_interval(Duration::ZERO);
    let m = Messenger::builder(EntityName::new(EntityType::OSD, 1))
        .config(config.clone())
        .default_policy(policy())
        .dispatcher(Arc::new(Ignore))
        .build()
        .expect("build");
    m.bind("127.0.0.1:0".parse().unwrap()).await.expect("bind");
    m.start().expect("start");

    // The raw peer, osd.0, and the session to it.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = EntityAddr::new(listener.local_addr().unwrap(), 777);
    let conn = m.get_connection(peer, EntityType::OSD).await.unwrap();
    let pipe = conn.pipe().expect("pipe");
    let (mut first, mut buf, msg_auth) =
        within("the first dial", accept_first_dial(&listener, peer)).await;
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

    // The peer dials us too (its socket failed first, say). The connect is decided while our
    // socket is still open: replace it.
    let side = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut dialled = TcpStream::connect(side.local_addr().unwrap())
        .await
        .unwrap();
    let (ours, from) = side.accept().await.unwrap();
    let mut connector = Connector::new(ConnectorParams {
        my_addr: peer,
        my_type: EntityType::OSD,
        peer_addr: m.my_addr(),
        check_peer_nonce: true,
        policy: policy(),
        global_seq: 10,
        connect_seq: 5,
        in_seq: 3,
        protocol_version: protocol_version(EntityType::OSD, EntityType::OSD, true),
        authorizer: None,
        learn_addr: false,
    });
    let mut acceptor = Acceptor::new(m.my_addr(), from);
    let (mut cbuf, mut abuf) = (BytesMut::new(), BytesMut::new());
    let mut steps = 0;
    let req = loop {
        steps += 1;
        assert!(steps < 10, "the in-memory handshake is stuck");
        // Both ends of the handshake in memory: the socket only carries what follows.
        let _ = connector.handle_input(&mut cbuf).expect("connector");
        if let Some(out) = connector.take_output() {
            abuf.extend_from_slice(&out);
        }
        match acceptor.handle_input(&mut abuf).expect("acceptor") {
            Some(AcceptorEvent::Connect(req)) => break req,
            Some(AcceptorEvent::Ready(_)) => unreachable!("no reply was written yet"),
            None => {}
        }
        if let Some(out) = acceptor.take_output() {
            cbuf.extend_from_slice(&out);
        }
    };
    let decision = pipe.send(DecideAccept(req.clone())).await.unwrap();
    assert!(
        matches!(decision, Decision::Open { replace: true, .. }),
        "{decision:?}"
    );

    // Now our socket fails, and the session dials again before the accepted socket arrives.
    drop(first);
    let (mut redial, _) = within("the session's new dial", listener.accept())
        .await
        .expect("accept");
    within("the session to be connecting", async {
        while conn.info().await.map(|i| i.state) != Some("connecting") {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;

    pipe.do_send(Adopt {
        stream: ours.into_std().unwrap(),
        acceptor,
        inbuf: abuf,
        decision,
        req,
        slot: None,
    });

    // The dial is dropped: its socket closes (we never answer it, so only a cancel closes it;
    // what it wrote before, its banner, is read and ignored).
    let mut ignored = Vec::new();
    let closed = within(
        "the superseded dial to close",
        redial.read_to_end(&mut ignored),
    )
    .await;
    assert!(
        closed.is_ok() || closed.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the superseded dial failed oddly"
    );

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
                None => read_some(&mut dialled, &mut cbuf).await,
            }
        }
    })
    .await;
    assert_eq!(established.peer_acked_seq, Some(0));
    for n in 4..=6 {
        conn.send_message(numbered(n)).unwrap();
    }
    let mut decoder = FrameDecoder::new(uses_msg_auth(established.features), limits);
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
    m.shutdown().await;
}
