//! A typed handle on one actor of a peer.

use std::marker::PhantomData;
use std::time::Duration;

use bytes::Bytes;
use msgr::messages::{Envelope, EnvelopeKind, Refusal};
use msgr::Message;

use super::node::CallEnd;
use super::{ActorNode, AskError, RemoteMessage, TellError};
use crate::Connection;

/// The actor registered as `name` on the peer at the other end of a connection, taking `M`.
pub struct RemoteRecipient<M> {
    node: ActorNode,
    conn: Connection,
    name: String,
    _message: PhantomData<fn(M)>,
}

impl<M> Clone for RemoteRecipient<M> {
    fn clone(&self) -> Self {
        RemoteRecipient {
            node: self.node.clone(),
            conn: self.conn.clone(),
            name: self.name.clone(),
            _message: PhantomData,
        }
    }
}

impl<M: RemoteMessage> RemoteRecipient<M> {
    pub(super) fn new(node: ActorNode, conn: Connection, name: String) -> Self {
        RemoteRecipient {
            node,
            conn,
            name,
            _message: PhantomData,
        }
    }

    /// The actor's registered name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn envelope(&self, kind: EnvelopeKind, call: u64, msg: &M) -> Result<Message, String> {
        let body = postcard::to_allocvec(msg).map_err(|e| e.to_string())?;
        let env = Envelope {
            kind,
            call,
            name: self.name.clone(),
            type_name: M::TYPE_NAME.to_string(),
            body: Bytes::from(body),
        };
        Ok(Message::from_payload(&env))
    }

    /// Sends `msg` one way. On a lossless session it arrives exactly once, in order with this
    /// sender's other tells and asks, unless the peer's session is reset.
    pub fn tell(&self, msg: &M) -> Result<(), TellError> {
        let m = self
            .envelope(EnvelopeKind::Tell, 0, msg)
            .map_err(TellError::Encode)?;
        self.conn
            .send_message(m)
            .map_err(|_| TellError::ConnectionClosed)?;
        self.node.tell_sent(self.conn.id());
        Ok(())
    }

    /// Asks and waits for the answer, within the node's default timeout.
    pub async fn ask(&self, msg: &M) -> Result<M::Reply, AskError> {
        self.ask_within(msg, self.node.inner.opts.ask_timeout).await
    }

    /// Asks and waits for the answer for at most `timeout` (a wait for a slot among the asks
    /// in flight counts too).
    pub async fn ask_within(&self, msg: &M, timeout: Duration) -> Result<M::Reply, AskError> {
        let slots = self.node.slots(self.conn.id());
        let mut call_id = None;
        let waited = tokio::time::timeout(timeout, async {
            let _slot = slots
                .acquire_owned()
                .await
                .map_err(|_| AskError::ConnectionClosed)?;
            let (call, done) = self.node.expect(self.conn.id());
            call_id = Some(call);
            let m = self
                .envelope(EnvelopeKind::Ask, call, msg)
                .map_err(AskError::BadBody)?;
            let tells_before = self.node.tells_sent(self.conn.id());
            self.conn
                .send_message(m)
                .map_err(|_| AskError::ConnectionClosed)?;
            // The slot is held until the answer comes: that bounds what a silent peer costs.
            let end = done.await.map_err(|_| AskError::PeerReset)?;
            if !matches!(end, CallEnd::PeerReset) {
                // Answers come after whatever was sent before the ask.
                self.node.confirm_tells(self.conn.id(), tells_before);
            }
            Ok(end)
        })
        .await;
        if let Some(call) = call_id {
            self.node.forget(call);
        }
        match waited {
            Err(_) => Err(AskError::Timeout),
            Ok(Err(e)) => Err(e),
            Ok(Ok(CallEnd::Reply(body))) => {
                postcard::from_bytes(&body).map_err(|e| AskError::BadBody(e.to_string()))
            }
            Ok(Ok(CallEnd::Refused(why))) => Err(match why {
                Refusal::UnknownName => AskError::UnknownName(self.name.clone()),
                Refusal::TypeMismatch => AskError::TypeMismatch(M::TYPE_NAME),
                Refusal::BadBody => AskError::BadBody("the peer could not decode it".into()),
                Refusal::ActorStopped => AskError::ActorStopped,
                Refusal::Busy => AskError::Busy,
            }),
            Ok(Ok(CallEnd::PeerReset)) => Err(AskError::PeerReset),
        }
    }
}
