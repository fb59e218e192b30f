//! Our side of the interop tests: an inbox that keeps what a messenger receives, and our
//! messenger set up as a peer monitor (`mon.b`) that the real mon dials.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use msgr::{EntityName, EntityType, Message, Policy};
use msgr_actors::{ConnEvent, Connection, Dispatcher, Messenger, MessengerBuilder};

/// Keeps every message and connection event the application sees.
#[derive(Default, Clone)]
pub struct Inbox {
    msgs: Arc<Mutex<Vec<Message>>>,
    events: Arc<Mutex<Vec<ConnEvent>>>,
}

impl Inbox {
    /// The messages of one type, in arrival order.
    pub fn of_type(&self, ty: u16) -> Vec<Message> {
        let msgs = self.msgs.lock().unwrap();
        msgs.iter().filter(|m| m.msg_type == ty).cloned().collect()
    }
    /// How many messages of one type arrived.
    pub fn count(&self, ty: u16) -> usize {
        let msgs = self.msgs.lock().unwrap();
        msgs.iter().filter(|m| m.msg_type == ty).count()
    }
    /// How many times an event was reported.
    pub fn events(&self, ev: ConnEvent) -> usize {
        let events = self.events.lock().unwrap();
        events.iter().filter(|e| **e == ev).count()
    }
    /// Nothing arrived.
    pub fn is_empty(&self) -> bool {
        self.msgs.lock().unwrap().is_empty()
    }
    /// Forgets what arrived.
    pub fn clear(&self) {
        self.msgs.lock().unwrap().clear();
    }
}

impl Dispatcher for Inbox {
    fn ms_dispatch(&self, _: &Connection, msg: Message) -> bool {
        self.msgs.lock().unwrap().push(msg);
        true
    }
    fn ms_handle_reset(&self, _: &Connection) -> bool {
        self.events.lock().unwrap().push(ConnEvent::Reset);
        true
    }
    fn ms_handle_remote_reset(&self, _: &Connection) {
        self.events.lock().unwrap().push(ConnEvent::RemoteReset);
    }
    fn ms_handle_accept(&self, _: &Connection) {
        self.events.lock().unwrap().push(ConnEvent::Accept);
    }
}

/// Our messenger as `mon.b` on `127.0.0.1:port` (msgr2 when `v2`, else v1), lossless toward
/// peers, delivering into `inbox`; `setup` adds the test's config and authentication.
pub async fn peer_mon(
    inbox: &Inbox,
    port: u16,
    v2: bool,
    setup: impl FnOnce(MessengerBuilder) -> MessengerBuilder,
) -> Messenger {
    let builder = Messenger::builder(EntityName::new(EntityType::MON, 1))
        .nonce(0)
        .default_policy(Policy::lossless_peer(0))
        .dispatcher(Arc::new(inbox.clone()));
    let m = setup(builder).build().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    if v2 {
        m.bind_v2(addr).await.unwrap();
    } else {
        m.bind(addr).await.unwrap();
    }
    m.start().unwrap();
    m
}
