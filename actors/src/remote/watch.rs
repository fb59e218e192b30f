//! Watches across nodes (Erlang's monitors): who is told when a remote actor stops or its
//! peer's session resets, and which of our actors peers watch.

use actix::Recipient;
use msgr::EntityName;

use crate::Connection;

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
