//! Waiting for Meilisearch's asynchronous tasks.
//!
//! Every write (index creation, settings, documents) is a task that Meilisearch enqueues
//! and answers at once with `202 Accepted`; it is applied later, in order per index. The
//! port wants writes visible when `upsert` returns, so the adapter polls the task until
//! it succeeded or failed: first after [`FIRST_POLL`], then twice as long each time up to
//! [`MAX_POLL`], for at most [`TASK_TIMEOUT`] in all. A task that fails is an error
//! carrying Meilisearch's message; one that is still pending at the deadline is
//! [`MeiliError::TaskTimeout`] (it may still be applied later).
//!
//! The SDK's own waiting counts only the sleeps against its timeout and sleeps on a new
//! thread per poll without its reqwest client; this loop uses tokio's clock.

use std::time::Duration;

use meilisearch_sdk::client::Client;
use meilisearch_sdk::errors::{ErrorCode, MeilisearchError};
use meilisearch_sdk::task_info::TaskInfo;
use meilisearch_sdk::tasks::Task;
use tokio::time::Instant;

use crate::error::MeiliError;
use crate::transport::Transport;

/// The first wait before asking for a task's status. Small batches take a few ms.
pub const FIRST_POLL: Duration = Duration::from_millis(2);

/// The longest wait between two polls.
pub const MAX_POLL: Duration = Duration::from_millis(100);

/// The longest the adapter waits for one task.
pub const TASK_TIMEOUT: Duration = Duration::from_secs(60);

/// How a task ended.
pub(crate) enum Outcome {
    Succeeded,
    Failed(MeilisearchError),
}

/// Wait for `task` to end; `during` names the step for errors.
pub(crate) async fn finish(
    client: &Client<Transport>,
    task: &TaskInfo,
    during: &'static str,
) -> Result<Outcome, MeiliError> {
    let uid = task.task_uid;
    let started = Instant::now();
    let mut pause = FIRST_POLL;
    loop {
        tokio::time::sleep(pause).await;
        let status = client
            .get_task(task)
            .await
            .map_err(MeiliError::request(during))?;
        match status {
            Task::Succeeded { .. } => return Ok(Outcome::Succeeded),
            Task::Failed { content } => return Ok(Outcome::Failed(content.error)),
            Task::Enqueued { .. } | Task::Processing { .. } => {}
        }
        let waited = started.elapsed();
        if waited >= TASK_TIMEOUT {
            return Err(MeiliError::TaskTimeout {
                during,
                task: uid,
                waited,
            });
        }
        pause = (pause * 2).min(MAX_POLL).min(TASK_TIMEOUT - waited);
    }
}

/// Wait for `task` to succeed: a failed task is an error.
pub(crate) async fn succeed(
    client: &Client<Transport>,
    task: &TaskInfo,
    during: &'static str,
) -> Result<(), MeiliError> {
    succeed_unless(client, task, during, None).await
}

/// Wait for `task` to succeed or to fail with the `tolerated` code.
pub(crate) async fn succeed_unless(
    client: &Client<Transport>,
    task: &TaskInfo,
    during: &'static str,
    tolerated: Option<ErrorCode>,
) -> Result<(), MeiliError> {
    match finish(client, task, during).await? {
        Outcome::Succeeded => Ok(()),
        Outcome::Failed(error) if tolerated.as_ref() == Some(&error.error_code) => Ok(()),
        Outcome::Failed(error) => Err(MeiliError::TaskFailed {
            during,
            task: task.task_uid,
            message: format!("{} ({})", error.error_message, error.error_code),
        }),
    }
}
