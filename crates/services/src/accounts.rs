//! The accounts service: who a bearer token stands for. It owns the staff accounts, their
//! sign-in sessions and the cache of API tokens.
//!
//! Long-lived API tokens (`/tokens`) stay for machines and scripts; people at the hotline, the
//! dispatch desk or in a crew van sign in with their own account.
//!
//! - Accounts are store documents (kind `account`), the password kept only as a salted
//!   PBKDF2-HMAC-SHA256 hash (`pbkdf2-sha256$ROUNDS$SALT$HASH`, hex).
//! - A sign-in gives a random bearer token valid for [`SESSION_HOURS`] of wall time. Sessions
//!   are store documents (kind `session`, by the token's digest, never the token), so a
//!   restart keeps them and every node of a cluster knows them; each node keeps those it has
//!   seen in memory and checks them against the store again after [`SESSION_RECHECK`], so a
//!   sign-out on one node holds on all within that. Deleting an account or resetting its
//!   password ends its sessions.
//! - Five wrong passwords for a login within [`LOCK_WINDOW`] lock that login for the rest of
//!   the window, whatever is tried next; every sign-in, good or bad, is in the audit log.
//! - API tokens are looked up by digest in the store once, then kept in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use chargeops_core::secret::{hash_password, random_hex, token_digest, verify_password};
use chargeops_core::{ApiToken, Role};
use chargeops_ops::AuditEntry;
use chargeops_store::{Store, StoreError};

use crate::{Caller, Error, ErrorKind, Platform, Result};

const KIND: &str = "account";
const SESSION_KIND: &str = "session";
/// How long a node trusts a session it has in memory before asking the store again.
pub const SESSION_RECHECK: Duration = Duration::from_secs(30);
/// How long a sign-in lasts: a long shift.
pub const SESSION_HOURS: u64 = 12;
/// Wrong passwords allowed within [`LOCK_WINDOW`] before the login is locked.
const MAX_FAILURES: u32 = 5;
const LOCK_WINDOW: Duration = Duration::from_secs(15 * 60);
const MIN_PASSWORD: usize = 10;
const MAX_PASSWORD: usize = 200;

/// A stored account.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Account {
    login: String,
    name: String,
    role: String,
    crew_id: Option<String>,
    password: String,
    created_at: DateTime<Utc>,
}

/// An account as it is shown: never the password hash.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AccountView {
    pub login: String,
    pub name: String,
    pub role: String,
    pub crew_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Account {
    fn view(&self) -> AccountView {
        AccountView {
            login: self.login.clone(),
            name: self.name.clone(),
            role: self.role.clone(),
            crew_id: self.crew_id.clone(),
            created_at: self.created_at,
        }
    }
}

/// What an account is made from.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    pub login: String,
    pub name: Option<String>,
    pub role: String,
    pub password: String,
    pub crew_id: Option<String>,
}

/// A sign-in's answer: the session token (shown this once) and who it stands for.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SignedIn {
    pub token: String,
    pub login: String,
    pub name: String,
    pub role: String,
    pub crew_id: Option<String>,
    pub expires_at: DateTime<Utc>,
}

struct Session {
    login: String,
    caller: Caller,
    expires: Instant,
    /// When the store last confirmed it.
    checked: Instant,
}

/// A session as the store keeps it.
#[derive(Debug, Serialize, Deserialize)]
struct StoredSession {
    login: String,
    expires_at: DateTime<Utc>,
}

/// Sessions and failed attempts, in memory.
#[derive(Default)]
struct Sessions {
    by_digest: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Sessions {
    /// The caller a session token stands for, if this node has it in memory, it has not
    /// expired and the store confirmed it lately.
    fn caller(&self, digest: &str) -> Option<Caller> {
        let mut sessions = lock(&self.by_digest);
        match sessions.get(digest) {
            Some(s) if s.expires > Instant::now() && s.checked.elapsed() < SESSION_RECHECK => {
                Some(s.caller.clone())
            }
            Some(_) => {
                sessions.remove(digest);
                None
            }
            None => None,
        }
    }

    fn end_all_of(&self, login: &str) {
        lock(&self.by_digest).retain(|_, s| s.login != login);
    }

    /// `Err(seconds left)` while the login is locked.
    fn check_lock(&self, login: &str) -> Result<(), u64> {
        let failures = lock(&self.failures);
        match failures.get(login) {
            Some(&(n, since)) if n >= MAX_FAILURES && since.elapsed() < LOCK_WINDOW => {
                Err((LOCK_WINDOW - since.elapsed()).as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    fn failed(&self, login: &str) {
        let mut failures = lock(&self.failures);
        // Forget stale entries so that guessing many logins cannot grow this without bound.
        failures.retain(|_, (_, since)| since.elapsed() < LOCK_WINDOW);
        let e = failures
            .entry(login.to_owned())
            .or_insert((0, Instant::now()));
        e.0 += 1;
    }

    fn succeeded(&self, login: &str) {
        lock(&self.failures).remove(login);
    }
}

/// Logins are short, lower-case and safe in a URL path.
fn check_login(login: &str) -> Result<()> {
    let ok = (2..=40).contains(&login.len())
        && login
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "login must be 2-40 characters of a-z, 0-9, '.', '_' or '-'",
        ))
    }
}

fn check_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if (MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "password must be {MIN_PASSWORD}-{MAX_PASSWORD} characters"
        )))
    }
}

/// PBKDF2 is slow on purpose, so it runs on a blocking thread.
async fn hash_off_thread(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|_| Error::internal("password hashing failed"))
}

/// Staff accounts, their sign-in sessions and the API token cache.
pub struct Accounts {
    platform: Platform,
    /// API tokens by digest, as found in the store.
    tokens: RwLock<HashMap<String, ApiToken>>,
    sessions: Sessions,
}

impl Accounts {
    pub fn new(platform: Platform) -> Arc<Self> {
        Arc::new(Accounts {
            platform,
            tokens: RwLock::new(HashMap::new()),
            sessions: Sessions::default(),
        })
    }

    /// Who a bearer token stands for: a sign-in session first, then an API token by its
    /// digest (from the cache, else the store). `None` for a token that is neither.
    pub async fn caller_for_token(&self, token: &str) -> Result<Option<Caller>> {
        let digest = token_digest(token);
        if let Some(caller) = self.sessions.caller(&digest) {
            return Ok(Some(caller));
        }
        if token.starts_with("cs_") {
            return self.stored_session(&digest).await;
        }
        let cached = self
            .tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&digest)
            .cloned();
        let found = match cached {
            Some(t) => t,
            None => {
                let Some(t) = self.platform.store.find_token(&digest).await? else {
                    return Ok(None);
                };
                self.tokens
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(digest, t.clone());
                t
            }
        };
        Ok(Some(Caller {
            name: found.name,
            role: found.role,
            crew_id: found.crew_id,
        }))
    }

    async fn load(&self, login: &str) -> Result<Option<Account>> {
        let docs = self.platform.store.list_documents(KIND).await?;
        Ok(docs
            .into_iter()
            .find(|(id, _)| id == login)
            .and_then(|(_, body)| serde_json::from_str(&body).ok()))
    }

    async fn save(&self, account: &Account) -> Result<()> {
        let text = serde_json::to_string(account)
            .map_err(|_| Error::internal("could not encode the account"))?;
        self.platform
            .store
            .put_document(KIND, &account.login, &text)
            .await?;
        Ok(())
    }

    /// Makes an account; `by` is the admin who asks.
    pub async fn create(&self, by: &Caller, new: NewAccount) -> Result<AccountView> {
        check_login(&new.login)?;
        check_password(&new.password)?;
        let role = Role::parse(&new.role).ok_or_else(|| {
            Error::invalid("role must be admin, operator, viewer, agent, dispatcher or crew")
        })?;
        let name = new.name.as_deref().unwrap_or(&new.login).trim().to_owned();
        if name.is_empty() || name.len() > 100 {
            return Err(Error::invalid("name must be 1 to 100 bytes"));
        }
        match (role, &new.crew_id) {
            (Role::Crew, None) => {
                return Err(Error::invalid("a crew account needs `crew_id`"));
            }
            (Role::Crew, Some(crew)) => {
                if self.platform.store.get_crew(crew).await?.is_none() {
                    return Err(Error::not_found(format!("crew {crew:?} not found")));
                }
            }
            (_, Some(_)) => {
                return Err(Error::invalid("only a crew account names a `crew_id`"));
            }
            (_, None) => {}
        }
        if self.load(&new.login).await?.is_some() {
            return Err(Error::conflict(
                "conflict",
                format!("account {:?} exists", new.login),
            ));
        }
        let hashed = hash_off_thread(new.password).await?;
        let account = Account {
            login: new.login,
            name,
            role: role.as_str().to_owned(),
            crew_id: new.crew_id,
            password: hashed,
            created_at: self.platform.now(),
        };
        self.save(&account).await?;
        tracing::info!(login = %account.login, role = %account.role, by = %by.name, "account created");
        Ok(account.view())
    }

    /// Every account, never the password hashes.
    pub async fn list(&self) -> Result<Vec<AccountView>> {
        Ok(self
            .platform
            .documents::<Account>(KIND)
            .await?
            .into_iter()
            .map(|a| a.view())
            .collect())
    }

    /// Deletes an account; its sessions end.
    pub async fn delete(&self, by: &Caller, login: &str) -> Result<()> {
        if !self.platform.store.delete_document(KIND, login).await? {
            return Err(Error::not_found(format!("account {login:?} not found")));
        }
        let ended = self.end_sessions_of(login).await?;
        tracing::info!(%login, ended, by = %by.name, "account deleted");
        Ok(())
    }

    /// Sets a new password; the account's sessions end and its lock is lifted.
    pub async fn set_password(
        &self,
        by: &Caller,
        login: &str,
        password: String,
    ) -> Result<AccountView> {
        check_password(&password)?;
        let mut account = self
            .load(login)
            .await?
            .ok_or_else(|| Error::not_found(format!("account {login:?} not found")))?;
        account.password = hash_off_thread(password).await?;
        self.save(&account).await?;
        let ended = self.end_sessions_of(login).await?;
        self.sessions.succeeded(login);
        tracing::info!(%login, ended, by = %by.name, "account password set");
        Ok(account.view())
    }

    /// A session token for a login and password. A malformed login or an over-long password
    /// cannot match: the same answer as a wrong one, after the same checks, so the answer says
    /// nothing about which logins exist.
    pub async fn login(&self, login: &str, password: String) -> Result<SignedIn> {
        let login = login.trim().to_ascii_lowercase();
        if let Err(secs) = self.sessions.check_lock(&login) {
            self.audit(&login, 429, "too_many_attempts").await;
            return Err(Error::new(
                ErrorKind::TooManyRequests,
                "too_many_attempts",
                format!("too many wrong passwords for this login; try again in {secs} s"),
            ));
        }
        let account = if check_login(&login).is_ok() && password.len() <= 4 * MAX_PASSWORD {
            self.load(&login).await?
        } else {
            None
        };
        let stored = account.as_ref().map(|a| a.password.clone());
        // Hash even for an unknown login, so the time taken does not tell logins apart.
        let ok = tokio::task::spawn_blocking(move || match stored {
            Some(h) => verify_password(&password, &h),
            None => {
                let _ = hash_password(&password);
                false
            }
        })
        .await
        .map_err(|_| Error::internal("password check failed"))?;
        let Some(account) = account.filter(|_| ok) else {
            self.sessions.failed(&login);
            self.audit(&login, 401, "wrong login or password").await;
            return Err(Error::new(
                ErrorKind::Unauthorized,
                "unauthorized",
                "wrong login or password",
            ));
        };
        let role = Role::parse(&account.role)
            .ok_or_else(|| Error::internal("the account's role is not known"))?;
        self.sessions.succeeded(&login);
        let token = format!("cs_{}", random_hex(24));
        let valid = Duration::from_secs(SESSION_HOURS * 3600);
        let caller = Caller {
            name: account.name.clone(),
            role,
            crew_id: account.crew_id.clone(),
        };
        // Sessions last wall time, not platform time: a shift is a real shift in the demo too.
        let expires_at = Utc::now() + chrono::Duration::hours(SESSION_HOURS as i64);
        // Sessions nobody signed out of would pile up: a sign-in clears the expired ones.
        self.sweep(None).await?;
        let digest = token_digest(&token);
        let stored = StoredSession {
            login: login.clone(),
            expires_at,
        };
        let body = serde_json::to_string(&stored)
            .map_err(|_| Error::internal("failed to encode a session"))?;
        self.platform
            .store
            .put_document(SESSION_KIND, &digest, &body)
            .await?;
        lock(&self.sessions.by_digest).insert(
            digest,
            Session {
                login: login.clone(),
                caller,
                expires: Instant::now() + valid,
                checked: Instant::now(),
            },
        );
        self.audit(&login, 200, "signed in").await;
        tracing::info!(%login, role = %account.role, "signed in");
        Ok(SignedIn {
            token,
            login: account.login,
            name: account.name,
            role: account.role,
            crew_id: account.crew_id,
            expires_at,
        })
    }

    /// Ends the session of `token`, on every node; an API token is not affected.
    pub async fn logout(&self, token: &str) -> Result<()> {
        let digest = token_digest(token);
        lock(&self.sessions.by_digest).remove(&digest);
        self.platform
            .store
            .delete_document(SESSION_KIND, &digest)
            .await?;
        Ok(())
    }

    /// A session signed in here or on another node (or before a restart), from the store.
    async fn stored_session(&self, digest: &str) -> Result<Option<Caller>> {
        let now = Utc::now();
        let mut found = None;
        for (id, body) in self.platform.store.list_documents(SESSION_KIND).await? {
            if id == digest {
                found = serde_json::from_str::<StoredSession>(&body).ok();
                break;
            }
        }
        let Some(stored) = found.filter(|s| s.expires_at > now) else {
            lock(&self.sessions.by_digest).remove(digest);
            return Ok(None);
        };
        // The account as it is now: a changed role counts at once, a deleted one signs out.
        let Some(account) = self.load(&stored.login).await? else {
            return Ok(None);
        };
        let Some(role) = Role::parse(&account.role) else {
            return Ok(None);
        };
        let caller = Caller {
            name: account.name.clone(),
            role,
            crew_id: account.crew_id.clone(),
        };
        let left = (stored.expires_at - now).to_std().unwrap_or_default();
        lock(&self.sessions.by_digest).insert(
            digest.to_owned(),
            Session {
                login: stored.login,
                caller: caller.clone(),
                expires: Instant::now() + left,
                checked: Instant::now(),
            },
        );
        Ok(Some(caller))
    }

    /// Ends every session of `login` here and in the store; how many.
    async fn end_sessions_of(&self, login: &str) -> Result<usize> {
        self.sessions.end_all_of(login);
        self.sweep(Some(login)).await
    }

    /// Deletes the stored sessions that have expired (or cannot be read), and every one of
    /// `login` when given; how many of `login`'s went.
    async fn sweep(&self, login: Option<&str>) -> Result<usize> {
        let now = Utc::now();
        let mut ended = 0;
        for (id, body) in self.platform.store.list_documents(SESSION_KIND).await? {
            let gone = match serde_json::from_str::<StoredSession>(&body) {
                Ok(s) if Some(s.login.as_str()) == login => {
                    ended += 1;
                    true
                }
                Ok(s) => s.expires_at <= now,
                Err(_) => true,
            };
            if gone {
                self.platform
                    .store
                    .delete_document(SESSION_KIND, &id)
                    .await?;
            }
        }
        Ok(ended)
    }

    /// Sign-ins come before anyone is known, so they are audited here, under the login tried.
    async fn audit(&self, login: &str, status: u16, detail: &str) {
        let entry = AuditEntry {
            id: 0,
            at: self.platform.now(),
            actor: login.chars().take(40).collect(),
            role: "none".to_owned(),
            action: "POST /api/v1/login".to_owned(),
            status,
            detail: detail.to_owned(),
        };
        if let Err(e) = self.platform.store.record_audit(&entry).await {
            tracing::error!(error = %e, "could not write the audit log");
        }
    }
}

/// Makes sure an admin token exists: the one given (from `CHARGEOPS_ADMIN_TOKEN`), or, when
/// there is none and no token was ever made, a new one. Returns a newly generated token so the
/// caller can print it once; it is stored only as a digest.
pub async fn bootstrap_admin_token(
    store: &dyn Store,
    given: Option<&str>,
) -> Result<Option<String>, StoreError> {
    if let Some(token) = given {
        let digest = token_digest(token);
        if store.find_token(&digest).await?.is_none() {
            store
                .insert_token("admin (CHARGEOPS_ADMIN_TOKEN)", Role::Admin, &digest)
                .await?;
        }
        return Ok(None);
    }
    if store.count_tokens().await? > 0 {
        return Ok(None);
    }
    let token = format!("co_{}", random_hex(24));
    store
        .insert_token("admin (generated)", Role::Admin, &token_digest(&token))
        .await?;
    Ok(Some(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_are_checked() {
        assert!(check_login("li.na").is_ok());
        for bad in ["a", "Li", "li na", "li/na", &"x".repeat(41), "ü-name"] {
            assert!(check_login(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn five_failures_lock_a_login_and_a_success_clears_the_count() {
        let s = Sessions::default();
        for _ in 0..4 {
            s.failed("li.na");
        }
        assert!(s.check_lock("li.na").is_ok());
        s.succeeded("li.na");
        for _ in 0..5 {
            s.failed("li.na");
        }
        assert!(s.check_lock("li.na").is_err());
        assert!(
            s.check_lock("zhang.wei").is_ok(),
            "other logins are not locked"
        );
    }
}
