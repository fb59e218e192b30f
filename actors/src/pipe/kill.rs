//! Supervision fault injection (feature `fault-injection`, for tests): stop one of a
//! connection's actors and let supervision and the policy recover the session.

use actix::prelude::*;

use super::{Pipe, Socket};
use crate::error::PipeError;
use crate::msgs::{Kill, StopReader, StopWriter};

/// Which actor of a connection to stop, for supervision fault tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillTarget {
    /// The PipeReader (its socket half is dropped).
    Reader,
    /// The PipeWriter.
    Writer,
    /// The Pipe itself (its supervisor restarts it).
    Pipe,
}

impl Handler<Kill> for Pipe {
    type Result = ();
    fn handle(&mut self, Kill(target): Kill, ctx: &mut Context<Self>) {
        match (&self.socket, target) {
            (Some(Socket { reader, .. }), KillTarget::Reader) => reader.do_send(StopReader),
            (Some(Socket { writer, .. }), KillTarget::Writer) => writer.do_send(StopWriter),
            (_, KillTarget::Pipe) if !self.machine.is_closed() => {
                self.fault(PipeError::ActorKilled, ctx)
            }
            _ => {}
        }
    }
}
