//! Authenticating to a monitor with cephx over msgr v1 (spec §9.7): drives the sans-IO
//! [`MonAuthClient`] with the replies a connection receives, the wall clock and fresh random
//! numbers, and keeps the tickets renewed while the session lasts.
//!
//! ```no_run
//! # use std::{sync::Arc, time::Duration};
//! # use msgr_actors::{MonAuth, Messenger};
//! # use msgr_actors::msgr::auth::{cephx::MonAuthClient, Keyring};
//! # use msgr_actors::msgr::{EntityName, EntityType};
//! # async fn f(keyring: &str) -> Result<(), Box<dyn std::error::Error>> {
//! let auth = MonAuth::new();
//! let m = Messenger::builder(EntityName::anonymous_client())
//!     .dispatcher(auth.dispatcher()) // first: it claims the MAuthReplies it waits for
//!     .build()?;
//! let conn = m.connect("127.0.0.1:6789".parse()?, EntityType::MON).await?;
//! let name = "client.admin".parse().unwrap();
//! let key = Keyring::parse(keyring)?.get(&name).unwrap().clone();
//! let session = auth
//!     .authenticate(&conn, MonAuthClient::new(name, key, 0x35), Duration::from_secs(10))
//!     .await?;
//! println!("global id {}", session.global_id());
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use msgr::auth::cephx::{CephxError, MonAuthClient, MonAuthStep, Ticket};
use msgr::messages::{MAuthReply, CEPH_MSG_AUTH_REPLY};
use msgr::Message;
use rand::RngCore;
use tokio::sync::mpsc;

use crate::auth::{wall_clock, TicketSource};
use crate::connection::Connection;
use crate::dispatcher::Dispatcher;

/// Why authentication failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MonAuthError {
    /// cephx refused us or broke (a refused key is [`CephxError::Refused`]).
    #[error(transparent)]
    Cephx(#[from] CephxError),
    /// The connection closed or reset before authentication finished.
    #[error("the connection to the monitor closed during authentication")]
    ConnectionLost,
    /// No reply within the deadline.
    #[error("the monitor did not answer within {0:?}")]
    Timeout(Duration),
    /// A reply that does not decode as MAuthReply.
    #[error("malformed MAuthReply: {0}")]
    BadReply(String),
}

type ReplyTx = mpsc::UnboundedSender<Option<Message>>;

/// Routes MAuthReplies to the authentications waiting for them.
#[derive(Default)]
struct Routes {
    waiting: Mutex<HashMap<u64, ReplyTx>>,
}

impl Routes {
    fn lost(&self, conn: &Connection) {
        if let Some(tx) = self.waiting.lock().expect("routes lock").remove(&conn.id()) {
            let _ = tx.send(None);
        }
    }
}

struct AuthDispatcher(Arc<Routes>);

impl Dispatcher for AuthDispatcher {
    fn ms_dispatch(&self, conn: &Connection, msg: Message) -> bool {
        if msg.msg_type != CEPH_MSG_AUTH_REPLY {
            return false;
        }
        match self.0.waiting.lock().expect("routes lock").get(&conn.id()) {
            Some(tx) => tx.send(Some(msg)).is_ok(),
            None => false,
        }
    }
    fn ms_handle_reset(&self, conn: &Connection) -> bool {
        self.0.lost(conn);
        false
    }
    fn ms_handle_remote_reset(&self, conn: &Connection) {
        self.0.lost(conn);
    }
}

/// Runs cephx authentications with monitors for one messenger. Add [`MonAuth::dispatcher`] to
/// the messenger first, so MAuthReplies reach it before the application's dispatchers.
///
/// It is also a [`TicketSource`]: give it to the messenger's [`crate::AuthSetup`] and dials to OSDs,
/// MGRs and monitors present the tickets of the latest authenticated session.
#[derive(Clone, Default)]
pub struct MonAuth {
    routes: Arc<Routes>,
    current: Arc<Mutex<Option<Arc<Mutex<SessionState>>>>>,
}

impl TicketSource for MonAuth {
    fn ticket(&self, service_id: u32) -> Option<(Ticket, u64)> {
        let current = self.current.lock().expect("mon auth lock").clone()?;
        let s = current.lock().expect("mon session lock");
        let ticket = s.client.tickets().valid(service_id, wall_clock())?.clone();
        Some((ticket, s.client.global_id()))
    }
}

/// What an authenticated mon session has, shared with its renewal task.
#[derive(Debug)]
struct SessionState {
    client: MonAuthClient,
    renewals: u64,
    last_error: Option<MonAuthError>,
}

/// An authenticated session with a monitor. Its tickets are renewed in the background over
/// the same connection while this handle lives.
pub struct MonSession {
    state: Arc<Mutex<SessionState>>,
    renewal: Option<actix_rt::task::JoinHandle<()>>,
}

impl std::fmt::Debug for MonSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonSession")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Drop for MonSession {
    fn drop(&mut self) {
        if let Some(task) = self.renewal.take() {
            task.abort();
        }
    }
}

impl MonSession {
    /// Our global id.
    pub fn global_id(&self) -> u64 {
        self.lock().client.global_id()
    }

    /// The ticket for a service (an entity-type bit), if held.
    pub fn ticket(&self, service_id: u32) -> Option<Ticket> {
        self.lock().client.tickets().get(service_id).cloned()
    }

    /// How many renewals completed.
    pub fn renewals(&self) -> u64 {
        self.lock().renewals
    }

    /// Why the last renewal failed, if it did (the session then stops renewing).
    pub fn last_error(&self) -> Option<MonAuthError> {
        self.lock().last_error.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SessionState> {
        self.state.lock().expect("mon session lock")
    }
}

impl MonAuth {
    /// A new authenticator with no sessions.
    pub fn new() -> Self {
        MonAuth::default()
    }

    /// The dispatcher to add to the messenger (before the application's).
    pub fn dispatcher(&self) -> Arc<dyn Dispatcher> {
        Arc::new(AuthDispatcher(self.routes.clone()))
    }

    /// Authenticates on `conn` (a fresh session with a monitor), waiting at most `timeout` for
    /// each reply. On success the session keeps its tickets renewed until dropped.
    pub async fn authenticate(
        &self,
        conn: &Connection,
        mut client: MonAuthClient,
        timeout: Duration,
    ) -> Result<MonSession, MonAuthError> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.routes
            .waiting
            .lock()
            .expect("routes lock")
            .insert(conn.id(), tx);
        let mut next = client.start();
        loop {
            let reply = exchange(conn, &mut rx, next, timeout).await;
            let step = reply.and_then(|r| {
                Ok(client.handle_reply(&r, wall_clock(), rand::rngs::OsRng.next_u64())?)
            });
            match step {
                Ok(MonAuthStep::Send(m)) => next = m,
                Ok(MonAuthStep::Done) => break,
                Err(e) => {
                    self.routes
                        .waiting
                        .lock()
                        .expect("routes lock")
                        .remove(&conn.id());
                    return Err(e);
                }
            }
        }
        tracing::info!(name = %client.name(), global_id = client.global_id(), peer = %conn.peer_addr(), "authenticated with cephx");
        let state = Arc::new(Mutex::new(SessionState {
            client,
            renewals: 0,
            last_error: None,
        }));
        *self.current.lock().expect("mon auth lock") = Some(state.clone());
        let renewal = actix_rt::spawn(renew(conn.clone(), state.clone(), rx, timeout));
        Ok(MonSession {
            state,
            renewal: Some(renewal),
        })
    }
}

/// Sends `m` and waits for the reply.
async fn exchange(
    conn: &Connection,
    rx: &mut mpsc::UnboundedReceiver<Option<Message>>,
    m: msgr::messages::MAuth,
    timeout: Duration,
) -> Result<MAuthReply, MonAuthError> {
    conn.send_message(Message::from_payload(&m))
        .map_err(|_| MonAuthError::ConnectionLost)?;
    match tokio::time::timeout(timeout, rx.recv()).await {
        Err(_) => Err(MonAuthError::Timeout(timeout)),
        Ok(None | Some(None)) => Err(MonAuthError::ConnectionLost),
        Ok(Some(Some(msg))) => msg
            .decode_payload::<MAuthReply>()
            .map_err(|e| MonAuthError::BadReply(e.to_string())),
    }
}

/// Renews tickets as they come due, until the connection goes or a renewal fails.
async fn renew(
    conn: Connection,
    state: Arc<Mutex<SessionState>>,
    mut rx: mpsc::UnboundedReceiver<Option<Message>>,
    timeout: Duration,
) {
    loop {
        let due = state
            .lock()
            .expect("mon session lock")
            .client
            .next_renewal();
        let Some(due) = due else { return };
        tokio::time::sleep(due.saturating_sub(wall_clock())).await;
        let first = {
            let mut s = state.lock().expect("mon session lock");
            s.client.renew(wall_clock(), rand::rngs::OsRng.next_u64())
        };
        let Some(mut next) = first else { continue };
        let result = loop {
            let reply = match exchange(&conn, &mut rx, next, timeout).await {
                Ok(r) => r,
                Err(e) => break Err(e),
            };
            let mut s = state.lock().expect("mon session lock");
            match s
                .client
                .handle_reply(&reply, wall_clock(), rand::rngs::OsRng.next_u64())
            {
                Ok(MonAuthStep::Send(m)) => next = m,
                Ok(MonAuthStep::Done) => break Ok(()),
                Err(e) => break Err(e.into()),
            }
        };
        let mut s = state.lock().expect("mon session lock");
        match result {
            Ok(()) => {
                s.renewals += 1;
                tracing::debug!(renewals = s.renewals, "cephx tickets renewed");
            }
            Err(e) => {
                tracing::warn!(error = %e, "cephx ticket renewal failed");
                s.last_error = Some(e);
                return;
            }
        }
    }
}
