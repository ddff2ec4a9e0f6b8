//! One machine's poll cycle: its planned reads on the bus connection, the replies turned into
//! samples, and its status. The bus decides when it runs.

use crate::connection::Connection;
use crate::decode::{decode_bit, decode_registers};
use crate::driver::{ModbusMachine, ReadError, Reply, plan_for};
use crate::plan::ReadRequest;
use shopfloor_core::ring::Producer;
use shopfloor_core::{Emitter, Quality, StatusReporter};
use std::sync::Arc;
use tracing::warn;

/// The running state of one machine on a bus.
pub(crate) struct Poller {
    pub(crate) machine: ModbusMachine,
    plan: Vec<ReadRequest>,
    pub(crate) emit: Emitter,
    /// Refused requests were logged since the machine last answered every request.
    warned_refusal: bool,
}

impl Poller {
    /// The poller of `machine`, writing to `producer`.
    pub(crate) fn new(
        machine: ModbusMachine,
        producer: Producer,
        status: Arc<dyn StatusReporter>,
    ) -> Poller {
        let plan = plan_for(&machine);
        let emit = Emitter::new(
            machine.id,
            &machine.name,
            machine.tags.len(),
            producer,
            status,
        )
        .with_publish(machine.publish.clone());
        Poller {
            machine,
            plan,
            emit,
            warned_refusal: false,
        }
    }

    /// One poll cycle. `Err` means the machine did not answer (its first request that got no
    /// answer stops the cycle, so a dead unit costs the bus one timeout); nothing is emitted
    /// for it yet, the bus decides.
    pub(crate) async fn poll(&mut self, conn: &mut Connection) -> Result<(), ReadError> {
        let (unit, limit) = (self.machine.unit_id, self.machine.timeout);
        let mut replies = Vec::with_capacity(self.plan.len());
        for i in 0..self.plan.len() {
            match conn.read(unit, &self.plan[i], limit).await {
                Err(e) if !matches!(e, ReadError::Exception { .. }) => return Err(e),
                reply => replies.push(reply),
            }
        }
        let ts = self.emit.now();
        let mut first_exception = None;
        let mut answered = 0;
        for (i, reply) in replies.into_iter().enumerate() {
            let slots = std::mem::take(&mut self.plan[i].slots);
            match reply {
                Ok(Reply::Registers(regs)) => {
                    answered += 1;
                    for s in &slots {
                        let range = usize::from(s.offset)..usize::from(s.offset + s.width);
                        match decode_registers(&self.machine.tags[s.tag], &regs[range]) {
                            Ok(v) => self.emit.reading(s.tag, ts, v, Quality::Good),
                            Err(_) => self.emit.bad_once(s.tag, ts),
                        }
                    }
                }
                Ok(Reply::Bits(bits)) => {
                    answered += 1;
                    for s in &slots {
                        let bit = decode_bit(bits[usize::from(s.offset)]);
                        self.emit.reading(s.tag, ts, bit, Quality::Good);
                    }
                }
                Err(e) => {
                    for s in &slots {
                        self.emit.bad_once(s.tag, ts);
                    }
                    if first_exception.is_none() {
                        first_exception = Some(e);
                    }
                }
            }
            self.plan[i].slots = slots;
        }
        match first_exception {
            Some(e) if answered == 0 => self.emit.offline(e.to_string()),
            Some(e) => {
                // Partly answered: online, and the refused requests are worth a log line.
                if !self.warned_refusal {
                    warn!(machine = %self.machine.name, error = %e, "some tags refused");
                    self.warned_refusal = true;
                }
                self.emit.online();
            }
            None => {
                self.warned_refusal = false;
                self.emit.online();
            }
        }
        self.emit.flush();
        Ok(())
    }
}
