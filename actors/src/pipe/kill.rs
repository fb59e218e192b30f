//! Supervision fault injection (feature `fault-injection`, for tests): stop one of a
//! connection's actors and let supervision and the policy recover the session.

use actix::prelude::*;

use super::{Pipe, Socket};
use crate::error::PipeError;
use crate::msgs::{KillTarget, StopReader, StopWriter};

impl Pipe {
    /// Stops one of the connection's actors (a supervision fault test).
    pub(super) fn kill(&mut self, target: KillTarget, ctx: &mut Context<Self>) {
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
