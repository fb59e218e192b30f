//! msgr2's session identity on the one session core: the cookies (spec §6.4, §6.5). A client
//! cookie names a session incarnation, a server cookie the server's side of it; a
//! SESSION_RECONNECT resumes a session only when both match. These rules run before the
//! connect rules every session shares (`crate::handshake::decide`), which then compare
//! connect_seq and global_seq as for msgr v1.

use std::time::Instant;

use super::state::State;
use super::Machine;
use crate::handshake::{AcceptContext, ConnectRequest, Decision};

/// What a msgr2 ident adds to the connect it is decided as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V2Connect {
    /// The client's cookie.
    pub client_cookie: u64,
    /// The server cookie the client holds (0: none; a CLIENT_IDENT).
    pub server_cookie: u64,
    /// A SESSION_RECONNECT (else a CLIENT_IDENT).
    pub reconnect: bool,
}

/// The verdict on a msgr2 ident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V2Decision {
    /// The session rules' verdict, as for a v1 connect.
    Rules(Decision),
    /// SESSION_RESET: nothing to resume (`full`: the client must drop its session too).
    Reset {
        /// A full reset.
        full: bool,
    },
}

impl Machine {
    /// The session's msgr2 cookies (client, server), once a msgr2 socket opened.
    pub fn v2_cookies(&self) -> Option<(u64, u64)> {
        self.book.v2_cookies
    }

    /// A msgr2 socket opened with these cookies (the handshake's outcome).
    pub fn v2_opened(&mut self, cookies: (u64, u64)) {
        self.book.v2_cookies = Some(cookies);
    }

    /// Decides on a msgr2 ident: the cookie rules of a SESSION_RECONNECT (spec §6.5), then the
    /// session rules every connect gets.
    pub fn decide_accept_v2(
        &mut self,
        now: Instant,
        req: &ConnectRequest,
        ctx: AcceptContext,
        v2: V2Connect,
    ) -> V2Decision {
        if v2.reconnect {
            let resumable = !ctx.policy.skips_session_lookup()
                && !matches!(self.state, State::New | State::Closed)
                && self.book.established;
            match self.book.v2_cookies {
                _ if !resumable => return V2Decision::Reset { full: true },
                None => return V2Decision::Reset { full: true },
                Some((client, _)) if client != v2.client_cookie => {
                    return V2Decision::Reset {
                        full: ctx.policy.resetcheck,
                    }
                }
                Some((_, 0)) => return V2Decision::Reset { full: false },
                Some(_) => {}
            }
        }
        V2Decision::Rules(self.decide_accept(now, req, ctx))
    }
}
