//! Watches across nodes (Erlang's monitors): who is told when a remote actor stops or its
//! peer's session resets, and which of our actors peers watch.

use actix::Recipient;
use bytes::Bytes;
use msgr::messages::{Envelope, EnvelopeKind, Refusal};
use msgr::{EntityName, Message};

use super::node::ActorNode;
use super::TellError;
use crate::Connection;

/// How often the actors peers watch are checked for having stopped (actix tells nobody when an
/// actor stops; its address only stops being connected).
const WATCH_CHECK: std::time::Duration = std::time::Duration::from_millis(50);

/// Told when a watched remote actor is gone.
#[derive(actix::Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct RemoteDown {
    /// The connection the actor was watched through ([`Connection::id`]).
    pub conn: u64,
    /// The actor's registered name.
    pub name: String,
    /// Why.
    pub reason: DownReason,
}

/// Why a watched actor is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownReason {
    /// It stopped, or was unregistered.
    Stopped,
    /// There was no actor under that name when the watch arrived.
    NoSuchActor,
    /// The peer's session was reset (it restarted) or closed: the actor may live on, but
    /// nothing more is known of it.
    PeerReset,
}

/// Told when a peer's session resets: every ask pending on it has failed with
/// [`super::AskError::PeerReset`], and the last `tells_unconfirmed` tells sent on it (those after
/// the last answered ask) may not have arrived.
#[derive(actix::Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct PeerReset {
    /// The connection ([`Connection::id`]).
    pub conn: u64,
    /// Who the peer was.
    pub peer: EntityName,
    /// Tells sent on the session that no later answer confirmed.
    pub tells_unconfirmed: u64,
}

/// Our tells on one connection: how many were sent, and how many an answer confirmed (an ask's
/// answer comes after everything sent before the ask was delivered).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct TellCount {
    pub(super) sent: u64,
    pub(super) confirmed: u64,
}

/// Both directions of watching.
#[derive(Default)]
pub(super) struct Watches {
    /// Ours: (connection id, name, who to tell).
    pub(super) watching: Vec<(u64, String, Recipient<RemoteDown>)>,
    /// Theirs: peers watching our actors, by the connection they came over.
    pub(super) watched: Vec<(Connection, String)>,
    /// The task that looks for stopped actors runs (while anything is watched).
    pub(super) checker: bool,
}

impl Watches {
    /// Removes and returns our watchers of `name` on `conn` (every name when None).
    pub(super) fn take_watching(
        &mut self,
        conn: u64,
        name: Option<&str>,
    ) -> Vec<(String, Recipient<RemoteDown>)> {
        let mut taken = Vec::new();
        self.watching.retain(|(c, n, r)| {
            let hit = *c == conn && name.map_or(true, |x| x == n);
            if hit {
                taken.push((n.clone(), r.clone()));
            }
            !hit
        });
        taken
    }
}

impl ActorNode {
    /// Tells `watcher` when the actor registered as `name` on `conn`'s peer stops, is not
    /// there, or when the peer's session resets ([`RemoteDown`]; once).
    pub fn watch(
        &self,
        conn: &Connection,
        name: &str,
        watcher: Recipient<RemoteDown>,
    ) -> Result<(), TellError> {
        let env = Envelope {
            kind: EnvelopeKind::Watch,
            call: 0,
            name: name.to_string(),
            type_name: String::new(),
            body: Bytes::new(),
        };
        // Registered before the Watch goes out, so that its Down cannot come first.
        let mut w = self.inner.watches.lock().expect("watches lock");
        w.watching.push((conn.id(), name.to_string(), watcher));
        if conn.send_message(Message::from_payload(&env)).is_err() {
            w.watching.pop();
            return Err(TellError::ConnectionClosed);
        }
        Ok(())
    }

    /// A peer asks to be told when our actor `name` stops.
    pub(super) fn peer_watches(&self, conn: &Connection, name: String) {
        if !self.is_alive(&name) {
            send_down(conn, &name, Refusal::UnknownName);
            return;
        }
        let start = {
            let mut w = self.inner.watches.lock().expect("watches lock");
            w.watched.push((conn.clone(), name));
            !std::mem::replace(&mut w.checker, true)
        };
        if start {
            let node = self.clone();
            actix::spawn(async move { node.check_watched().await });
        }
    }

    /// While peers watch our actors: tells them of each that stopped or was unregistered.
    async fn check_watched(self) {
        loop {
            tokio::time::sleep(WATCH_CHECK).await;
            let (gone, still_watched) = {
                let mut w = self.inner.watches.lock().expect("watches lock");
                let mut gone = Vec::new();
                w.watched.retain(|(conn, name)| {
                    let alive = self.is_alive(name);
                    if !alive {
                        gone.push((conn.clone(), name.clone()));
                    }
                    alive
                });
                w.checker = !w.watched.is_empty();
                (gone, w.checker)
            };
            for (conn, name) in &gone {
                send_down(conn, name, Refusal::ActorStopped);
            }
            if !still_watched {
                return;
            }
        }
    }

    /// The peer says its actor `name` is gone.
    pub(super) fn peer_down(&self, conn: &Connection, name: &str, body: &[u8]) {
        let reason = match Refusal::from_body(body) {
            Ok(Refusal::UnknownName) => DownReason::NoSuchActor,
            _ => DownReason::Stopped,
        };
        let watchers = {
            let mut w = self.inner.watches.lock().expect("watches lock");
            w.take_watching(conn.id(), Some(name))
        };
        for (name, watcher) in watchers {
            watcher.do_send(RemoteDown {
                conn: conn.id(),
                name,
                reason,
            });
        }
    }
}

/// Tells a watching peer that our actor `name` is gone (`why`: stopped, or never there).
fn send_down(conn: &Connection, name: &str, why: Refusal) {
    let env = Envelope {
        kind: EnvelopeKind::Down,
        call: 0,
        name: name.to_string(),
        type_name: String::new(),
        body: Bytes::from(vec![why.code()]),
    };
    let _ = conn.send_message(Message::from_payload(&env));
}
