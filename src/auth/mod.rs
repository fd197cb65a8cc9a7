//! Who is calling: the token guard on every request, the verified tokens it keeps in memory,
//! and how a change that revokes tokens reaches that memory here and on other instances.
//! Depends only on `store` and `crypto`.

mod cache;

use std::sync::Arc;

use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};

use crate::crypto;
use crate::store::{self, User, tokens};

pub use cache::{Invalidation, TokenCache};

/// A request authenticated by a token: the user and the token that was presented.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub token_id: i64,
    /// SHA-256 of the presented token (what the database stores; not a secret).
    pub token_digest: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenRejected {
    #[error("invalid token")]
    Invalid,
    #[error("user inactive or deleted")]
    Inactive,
    #[error("database error")]
    Database(#[from] DbErr),
}

/// The guard and its memory.
#[derive(Debug)]
pub struct Authenticator {
    db: DatabaseConnection,
    cache: TokenCache,
}

impl Authenticator {
    /// `cache_ttl` of zero: every request asks the database.
    pub fn new(db: DatabaseConnection, cache_ttl: std::time::Duration) -> Self {
        Self {
            db,
            cache: TokenCache::new(cache_ttl),
        }
    }

    /// The token's SHA-256 digest, looked up in memory or with one indexed query joined to its
    /// user. Only active users' tokens are kept in memory.
    pub async fn authenticate(&self, token: &str) -> Result<Arc<Caller>, TokenRejected> {
        if !token.starts_with(crypto::TOKEN_PREFIX) {
            return Err(TokenRejected::Invalid);
        }
        let digest = crypto::token_digest(token);
        if let Some(caller) = self.cache.get(&digest) {
            return Ok(caller);
        }
        let started = self.cache.epoch();
        let (token, user) = tokens::find_with_user(&self.db, &digest)
            .await?
            .ok_or(TokenRejected::Invalid)?;
        if !user.is_active {
            return Err(TokenRejected::Inactive);
        }
        let caller = Arc::new(Caller {
            user,
            token_id: token.id,
            token_digest: digest.clone(),
        });
        self.cache.insert(digest, Arc::clone(&caller), started);
        Ok(caller)
    }

    /// Commits a transaction that revoked tokens or changed users, so that no instance answers
    /// from memory what it changed: the message to the others is part of the transaction (it
    /// is delivered if and only if the change commits), and this instance forgets at once.
    pub async fn commit(
        &self,
        txn: DatabaseTransaction,
        changes: &[Invalidation],
    ) -> Result<(), DbErr> {
        for change in changes {
            store::notify(&txn, Invalidation::CHANNEL, &change.payload()).await?;
        }
        txn.commit().await?;
        for change in changes {
            self.forget(change);
        }
        Ok(())
    }

    /// Drops what this instance's memory holds about a user or a token.
    pub fn forget(&self, change: &Invalidation) {
        change.apply(&self.cache);
    }

    /// A message from another instance; `None` when messages may have been missed.
    pub fn on_notification(&self, payload: Option<&str>) {
        match payload {
            Some(payload) => {
                if let Some(change) = Invalidation::parse(payload) {
                    change.apply(&self.cache);
                }
            }
            None => self.cache.clear(),
        }
    }
}
