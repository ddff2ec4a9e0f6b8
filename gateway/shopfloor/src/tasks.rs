//! The gateway's long-running tasks under names, so that one that panics is noticed at once.
//!
//! tokio catches a panic in a spawned task and lets the rest run: a sink or driver that hit a
//! bug would stop silently while `/health` still says ok and the samples pile up. The runtime
//! watches every task set with [`Tasks::panicked`] and the binary exits non-zero on the first
//! panic, so that a supervisor (systemd `Restart=on-failure`) starts it again and the spool
//! replays what was left.

use std::collections::HashMap;
use std::future::Future;
use thiserror::Error;
use tokio::task::{Id, JoinError, JoinSet};

/// A task that panicked: which one and with what message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{task} stopped on an internal error ({message})")]
pub struct TaskPanic {
    /// The task's name, e.g. `the mqtt sink` or `machine press-1`.
    pub task: String,
    /// The panic message.
    pub message: String,
}

/// A set of named tasks.
#[derive(Debug, Default)]
pub struct Tasks {
    set: JoinSet<()>,
    names: HashMap<Id, String>,
}

impl Tasks {
    /// No tasks yet.
    pub fn new() -> Tasks {
        Tasks::default()
    }

    /// Runs `task` under `name`. Must be called inside a tokio runtime.
    pub fn spawn<F>(&mut self, name: impl Into<String>, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let id = self.set.spawn(task).id();
        self.names.insert(id, name.into());
    }

    /// Tasks not yet ended (or ended and not yet seen).
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether no task is left.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Waits until a task panics and says which; tasks that end normally are let go. Never
    /// returns once no task is left. Cancel-safe: nothing is lost when dropped unfinished.
    pub async fn panicked(&mut self) -> TaskPanic {
        loop {
            match self.set.join_next_with_id().await {
                None => std::future::pending::<()>().await,
                Some(Ok((id, ()))) => {
                    self.names.remove(&id);
                }
                Some(Err(e)) => {
                    if let Some(panic) = self.ended(e) {
                        return panic;
                    }
                }
            }
        }
    }

    /// Waits for every task to end; the panics among them, in the order seen.
    pub async fn join_all(&mut self) -> Vec<TaskPanic> {
        let mut panics = Vec::new();
        while let Some(r) = self.set.join_next_with_id().await {
            match r {
                Ok((id, ())) => {
                    self.names.remove(&id);
                }
                Err(e) => panics.extend(self.ended(e)),
            }
        }
        panics
    }

    /// Stops every task at its next await point.
    pub fn abort_all(&mut self) {
        self.set.abort_all();
    }

    /// Forgets an ended task; a panic becomes a [`TaskPanic`], an abort nothing.
    fn ended(&mut self, e: JoinError) -> Option<TaskPanic> {
        let task = self
            .names
            .remove(&e.id())
            .unwrap_or_else(|| "a task".to_owned());
        if !e.is_panic() {
            return None;
        }
        let payload = e.into_panic();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        Some(TaskPanic { task, message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::sync::oneshot;

    #[tokio::test]
    async fn a_panic_is_reported_with_the_tasks_name_and_message() {
        let mut tasks = Tasks::new();
        let (release, wait) = oneshot::channel::<()>();
        tasks.spawn("the mqtt sink", async move {
            let _ = wait.await;
            panic!("outbox out of step at {}", 7);
        });
        tasks.spawn("the csv sink", std::future::pending());
        let watching = tokio::spawn(async move {
            let panic = tasks.panicked().await;
            (panic, tasks)
        });
        release.send(()).expect("the task waits");
        let (panic, mut tasks) = watching.await.expect("no panic in the watcher");
        assert_eq!(panic.task, "the mqtt sink");
        assert_eq!(panic.message, "outbox out of step at 7");
        assert_eq!(
            panic.to_string(),
            "the mqtt sink stopped on an internal error (outbox out of step at 7)"
        );
        assert_eq!(tasks.len(), 1, "the other task still runs");
        tasks.abort_all();
        assert!(tasks.join_all().await.is_empty(), "an abort is no panic");
        assert!(tasks.is_empty());
        assert!(tasks.names.is_empty(), "no name kept for an ended task");
    }

    #[tokio::test]
    async fn tasks_that_end_normally_are_no_failure() {
        let mut tasks = Tasks::new();
        tasks.spawn("machine a", async {});
        tasks.spawn("machine b", async {});
        let waited = tokio::time::timeout(Duration::from_millis(200), tasks.panicked()).await;
        assert!(waited.is_err(), "no panic, so still waiting: {waited:?}");
        assert!(tasks.is_empty());
        assert!(tasks.names.is_empty());
    }

    #[tokio::test]
    async fn join_all_collects_every_panic_and_a_static_message() {
        let mut tasks = Tasks::new();
        tasks.spawn("machine a", async { panic!("boom") });
        tasks.spawn("machine b", async {});
        tasks.spawn("machine c", async {
            std::panic::panic_any(42_u32);
        });
        let mut panics = tasks.join_all().await;
        panics.sort_by(|a, b| a.task.cmp(&b.task));
        assert_eq!(
            panics,
            vec![
                TaskPanic {
                    task: "machine a".into(),
                    message: "boom".into()
                },
                TaskPanic {
                    task: "machine c".into(),
                    message: "a panic without a message".into()
                },
            ]
        );
    }
}
