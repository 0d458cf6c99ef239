//! A small pool of PostgreSQL connections, each with its own cache of prepared statements.
//!
//! At most `size` connections exist; a caller waits for a free one. Connections are opened on
//! demand, set up once (search path, durable commits) and kept; one the server closed (a
//! restart, an idle timeout) is dropped when it comes back or is next taken, and a fresh one is
//! opened in its place. Transactions need `&mut Client`, so a connection is lent whole.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, NoTls, Row, Statement};

use super::error::{backend, describe};
use crate::{Result, StoreError};

/// Statements kept per connection before the cache starts over; the store's SQL is a few dozen
/// fixed texts plus the filter combinations of the list queries.
const MAX_STATEMENTS: usize = 256;

pub(super) struct Pool {
    config: tokio_postgres::Config,
    /// The connection string without its password, for messages.
    target: String,
    /// `SET ...` run on every new connection.
    setup: String,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
}

/// One connection and the statements prepared on it.
pub(super) struct Conn {
    pub(super) client: Client,
    pub(super) statements: Statements,
}

#[derive(Default)]
pub(super) struct Statements(Mutex<HashMap<String, Statement>>);

impl Pool {
    pub(super) fn new(
        config: tokio_postgres::Config,
        target: String,
        setup: String,
        size: usize,
    ) -> Pool {
        Pool {
            config,
            target,
            setup,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size),
        }
    }

    pub(super) fn target(&self) -> &str {
        &self.target
    }

    /// A connection for the caller alone until the guard is dropped.
    pub(super) async fn get(&self) -> Result<Pooled<'_>> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Backend("the PostgreSQL pool is closed".into()))?;
        let reused = loop {
            let next = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            match next {
                Some(conn) if conn.client.is_closed() => continue,
                other => break other,
            }
        };
        let conn = match reused {
            Some(conn) => conn,
            None => self.open().await?,
        };
        Ok(Pooled {
            conn: Some(conn),
            pool: self,
            _permit: permit,
        })
    }

    async fn open(&self) -> Result<Conn> {
        let (client, connection) = self.config.connect(NoTls).await.map_err(|e| {
            StoreError::Backend(format!(
                "failed to connect to PostgreSQL at {}: {}",
                self.target,
                describe(&e)
            ))
        })?;
        // The connection object does the IO; it ends when the client is dropped or the server
        // goes away, and the client then reports itself closed.
        let target = self.target.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(target = %target, error = %describe(&e), "postgres connection lost");
            }
        });
        client
            .batch_execute(&self.setup)
            .await
            .map_err(|e| backend("set up the PostgreSQL connection", &e))?;
        Ok(Conn {
            client,
            statements: Statements::default(),
        })
    }
}

/// A connection lent by the pool; it goes back when dropped, unless it was closed.
pub(super) struct Pooled<'a> {
    conn: Option<Conn>,
    pool: &'a Pool,
    _permit: SemaphorePermit<'a>,
}

impl Deref for Pooled<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        self.conn
            .as_ref()
            .expect("a pooled connection is taken only on drop")
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("a pooled connection is taken only on drop")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        // A transaction dropped without COMMIT has queued its ROLLBACK on this connection
        // already, so the next user starts clean.
        if let Some(conn) = self.conn.take()
            && !conn.client.is_closed()
            && let Ok(mut idle) = self.pool.idle.lock()
        {
            idle.push(conn);
        }
    }
}

/// What a query runs on: a connection or a transaction on it.
pub(super) trait Exec: GenericClient + Sync {}

impl<T: GenericClient + Sync> Exec for T {}

/// A connection or a transaction on it, with the connection's statement cache: what the
/// queries run on.
pub(super) struct Db<'a, C> {
    client: &'a C,
    statements: &'a Statements,
}

pub(super) type Params<'p> = [&'p (dyn ToSql + Sync)];

impl<'a, C: Exec> Db<'a, C> {
    pub(super) fn new(client: &'a C, statements: &'a Statements) -> Self {
        Db { client, statements }
    }

    async fn prepare(&self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        let cached = self
            .statements
            .0
            .lock()
            .ok()
            .and_then(|map| map.get(sql).cloned());
        if let Some(statement) = cached {
            return Ok(statement);
        }
        let statement = self.client.prepare(sql).await?;
        if let Ok(mut map) = self.statements.0.lock() {
            if map.len() >= MAX_STATEMENTS {
                map.clear();
            }
            map.insert(sql.to_owned(), statement.clone());
        }
        Ok(statement)
    }

    pub(super) async fn query(
        &self,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let statement = self.prepare(sql).await?;
        self.client.query(&statement, params).await
    }

    pub(super) async fn query_opt(
        &self,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        let statement = self.prepare(sql).await?;
        self.client.query_opt(&statement, params).await
    }

    pub(super) async fn query_one(
        &self,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<Row, tokio_postgres::Error> {
        let statement = self.prepare(sql).await?;
        self.client.query_one(&statement, params).await
    }

    pub(super) async fn execute(
        &self,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<u64, tokio_postgres::Error> {
        let statement = self.prepare(sql).await?;
        self.client.execute(&statement, params).await
    }
}
