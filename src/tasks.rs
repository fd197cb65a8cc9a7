//! The background tasks, owned in one place: the mail delivery worker and the listener that
//! keeps the token cache in step with other instances. Each task takes only what it needs.
//! They stop, in that order, after the server stopped taking requests.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::accounts::email::Delivery;
use crate::auth::{Authenticator, Invalidation};
use crate::state::AppState;
use crate::store;

/// How often the mail worker looks for due work when nobody wakes it.
const MAIL_POLL: Duration = Duration::from_millis(500);

pub struct Tasks {
    running: Vec<(&'static str, JoinHandle<()>)>,
}

impl Tasks {
    pub fn start(state: &AppState) -> Self {
        let delivery = Delivery {
            db: state.db.clone(),
            mailer: Arc::clone(&state.mailer),
        };
        let mail = tokio::spawn(deliver_mail(delivery));
        let listener = tokio::spawn(follow_invalidations(
            state.db.clone(),
            Arc::clone(&state.auth),
        ));
        Self {
            running: vec![("mail worker", mail), ("cache listener", listener)],
        }
    }

    /// Stops every task, in the order they were started.
    pub async fn stop(self) {
        for (name, task) in self.running {
            task.abort();
            let _ = task.await;
            tracing::debug!(task = name, "stopped");
        }
    }
}

async fn deliver_mail(delivery: Delivery) {
    loop {
        let worked = match delivery.step().await {
            Ok(worked) => worked,
            Err(err) => {
                tracing::error!(error = %err, "email worker step failed");
                0
            }
        };
        if worked == 0 {
            tokio::select! {
                _ = delivery.woken() => {}
                _ = tokio::time::sleep(MAIL_POLL) => {}
            }
        }
    }
}

async fn follow_invalidations(db: sea_orm::DatabaseConnection, auth: Arc<Authenticator>) {
    store::listen(&db, Invalidation::CHANNEL, |payload| {
        auth.on_notification(payload)
    })
    .await
}
