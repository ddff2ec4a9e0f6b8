//! A sink's spool syncs on a thread of the blocking pool, one at a time, so that the sink takes
//! its input while the disk catches up.

use super::{Spool, SyncJob, Synced};
use std::io;
use tokio::task::JoinHandle;

/// The sync running for one spool, if any.
#[derive(Debug, Default)]
pub struct Syncer {
    running: Option<JoinHandle<Synced>>,
}

impl Syncer {
    /// True when no sync runs.
    pub fn is_idle(&self) -> bool {
        self.running.is_none()
    }

    /// Starts a sync of `spool` unless one runs; an error of its start is returned.
    pub fn start(&mut self, spool: &mut Spool) -> io::Result<()> {
        if self.running.is_none() {
            let job: SyncJob = spool.begin_sync()?;
            self.running = Some(tokio::task::spawn_blocking(move || job.run()));
        }
        Ok(())
    }

    /// The outcome of the running sync; never ready while none runs. Cancel-safe.
    pub async fn done(&mut self) -> Synced {
        let Some(handle) = &mut self.running else {
            return std::future::pending().await;
        };
        let joined = handle.await;
        self.running = None;
        match joined {
            Ok(done) => done,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Synced::failed(io::Error::other(e)),
        }
    }

    /// Waits for the running sync and hands its outcome to `spool`; nothing when none runs.
    pub async fn finish(&mut self, spool: &mut Spool) -> io::Result<()> {
        if self.running.is_none() {
            return Ok(());
        }
        let done = self.done().await;
        spool.end_sync(done)
    }

    /// A whole sync of `spool` on the blocking thread, after the one running: at a sink's end.
    pub async fn sync(&mut self, spool: &mut Spool) -> io::Result<()> {
        self.finish(spool).await?;
        self.start(spool)?;
        self.finish(spool).await
    }
}
