//! What a bearer request asks of the database, remembered per replica: is
//! this session still open (and its account enabled), and the account's
//! profile for `GET /v1/me`. Correct only while every change reaches every
//! replica at once, so:
//!
//! - PostgreSQL triggers notify `authd_user_changed` with the account's id
//!   at every commit that revokes a session, disables or deletes an
//!   account, or changes what a profile shows; each replica listens and
//!   forgets that account.
//! - A revocation made through authd (committed by `commit`) forgets its
//!   account here at once, then waits, briefly and boundedly, until every
//!   listening replica has acknowledged forgetting it (each answers a
//!   change with a notification on `authd_user_forgotten`; the replicas
//!   expected to answer are the listener connections the database
//!   reports). So when the caller hears
//!   "done", no replica still trusts what it remembered. A replica that
//!   does not answer within `ACK_WAIT` is logged; it forgets within
//!   `MAX_AGE` at worst. A replica that is not listening itself cannot
//!   hear acknowledgements, so it waits `MAX_AGE` instead.
//! - Nothing is remembered while the listener is not connected (at start,
//!   after a lost connection): then every request asks the database, as
//!   before, and the cache starts empty once listening again.
//! - An answer read before a change must not be remembered after it: each
//!   read takes a `Ticket` (the epoch) first, and every `forget` moves the
//!   epoch on, which voids older tickets.
//! - An entry lives at most `MAX_AGE`, bounding the damage should
//!   notifications be lost without the connection noticing.
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::storage::notifications::{self, Heard, Listener};
use crate::storage::users::Profile;

const MAX_AGE: Duration = Duration::from_secs(2);
/// Sessions remembered at most; beyond it the cache starts over.
const MAX_SESSIONS: usize = 100_000;
/// Pause before listening again after the connection failed.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);
/// The longest a revocation waits for every replica to acknowledge it.
const ACK_WAIT: Duration = Duration::from_secs(1);

/// Permission to remember what is about to be read.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

#[derive(Default)]
struct State {
    /// Listening: notifications will arrive.
    trusted: bool,
    epoch: u64,
    /// session id → (account id, when read).
    live: HashMap<Uuid, (Uuid, Instant)>,
    /// account id → its open sessions remembered in `live`.
    sessions_of: HashMap<Uuid, Vec<Uuid>>,
    profiles: HashMap<Uuid, (Arc<Profile>, Instant)>,
}

impl State {
    fn live(&self, user_id: Uuid, session_id: Uuid) -> bool {
        self.trusted
            && self
                .live
                .get(&session_id)
                .is_some_and(|(owner, at)| *owner == user_id && at.elapsed() < MAX_AGE)
    }

    fn remember(&mut self, user_id: Uuid, session_id: Uuid) {
        if self.live.len() >= MAX_SESSIONS {
            self.live.clear();
            self.sessions_of.clear();
            self.profiles.clear();
        }
        // Listed once per session, however often it is read again.
        if self
            .live
            .insert(session_id, (user_id, Instant::now()))
            .is_none()
        {
            self.sessions_of
                .entry(user_id)
                .or_default()
                .push(session_id);
        }
    }
}

pub struct SessionCache {
    /// This replica, as its listener connection names itself.
    replica: Uuid,
    state: RwLock<State>,
    /// Revocations waiting for acknowledgements, by account.
    waiting: Mutex<HashMap<Uuid, Vec<Arc<Acks>>>>,
}

impl Default for SessionCache {
    fn default() -> Self {
        Self {
            replica: Uuid::new_v4(),
            state: RwLock::default(),
            waiting: Mutex::default(),
        }
    }
}

/// The replicas that have forgotten an account since a waiter registered.
#[derive(Default)]
struct Acks {
    replicas: Mutex<HashSet<Uuid>>,
    arrived: Notify,
}

impl Acks {
    fn covers(&self, expected: &[Uuid]) -> bool {
        self.replicas
            .lock()
            .is_ok_and(|acked| expected.iter().all(|r| acked.contains(r)))
    }
}

/// A change about to be committed (see `before_change`).
pub struct Pending {
    user_id: Uuid,
    acks: Option<Arc<Acks>>,
}

impl SessionCache {
    /// A ticket for a read about to happen; `None` while not listening.
    pub fn ticket(&self) -> Option<Ticket> {
        let state = self.state.read().ok()?;
        state.trusted.then_some(Ticket(state.epoch))
    }

    /// Whether `session_id` of `user_id` is remembered as open.
    pub fn is_live(&self, user_id: Uuid, session_id: Uuid) -> bool {
        self.state
            .read()
            .is_ok_and(|state| state.live(user_id, session_id))
    }

    pub fn profile(&self, user_id: Uuid, session_id: Uuid) -> Option<Arc<Profile>> {
        let state = self.state.read().ok()?;
        if !state.live(user_id, session_id) {
            return None;
        }
        let (profile, at) = state.profiles.get(&user_id)?;
        (at.elapsed() < MAX_AGE).then(|| profile.clone())
    }

    /// Remembers that the session was open when `ticket` was taken.
    pub fn remember_live(&self, ticket: Ticket, user_id: Uuid, session_id: Uuid) {
        self.with_valid(ticket, |state| state.remember(user_id, session_id));
    }

    /// Remembers a profile read (with its session open) under `ticket`.
    pub fn remember_profile(&self, ticket: Ticket, session_id: Uuid, profile: Arc<Profile>) {
        self.with_valid(ticket, |state| {
            state.remember(profile.id, session_id);
            state.profiles.insert(profile.id, (profile, Instant::now()));
        });
    }

    fn with_valid(&self, ticket: Ticket, change: impl FnOnce(&mut State)) {
        if let Ok(mut state) = self.state.write()
            && state.trusted
            && state.epoch == ticket.0
        {
            change(&mut state);
        }
    }

    /// Commits `tx`, which changes `user`'s sessions or account (`None`:
    /// nothing changed after all), then returns only once no replica still
    /// trusts what it remembered of them (see `changed`).
    pub async fn commit(
        &self,
        db: &PgPool,
        tx: Transaction<'_, Postgres>,
        user: Option<Uuid>,
    ) -> sqlx::Result<()> {
        let pending = user.map(|user_id| self.before_change(user_id));
        let committed = tx.commit().await;
        if let Some(pending) = pending {
            match committed {
                Ok(()) => self.changed(db, pending).await,
                Err(_) => self.stop_waiting(&pending),
            }
        }
        committed
    }

    /// Registers for the acknowledgements of a change about to commit.
    fn before_change(&self, user_id: Uuid) -> Pending {
        let listening = self.state.read().is_ok_and(|s| s.trusted);
        let acks = listening.then(|| {
            let acks = Arc::new(Acks::default());
            if let Ok(mut waiting) = self.waiting.lock() {
                waiting.entry(user_id).or_default().push(acks.clone());
            }
            acks
        });
        Pending { user_id, acks }
    }

    /// The change is committed: forget the account here, and wait (at most
    /// `ACK_WAIT`) until every listening replica has forgotten it too.
    ///
    /// Acknowledgements are counted from `before_change` on, so one sent
    /// for a concurrent earlier change of the same account counts too; that
    /// change's replica still forgets at its own notification.
    async fn changed(&self, db: &PgPool, pending: Pending) {
        self.forget(pending.user_id);
        let Some(acks) = pending.acks.clone() else {
            // Not listening, so no acknowledgement can reach this replica:
            // wait until whatever another replica read before the change
            // has aged out of its cache.
            tokio::time::sleep(MAX_AGE).await;
            return;
        };
        let all_acked = async {
            let expected = notifications::listening_replicas(db).await?;
            loop {
                let arrived = acks.arrived.notified();
                if acks.covers(&expected) {
                    return Ok::<_, sqlx::Error>(());
                }
                arrived.await;
            }
        };
        match tokio::time::timeout(ACK_WAIT, all_acked).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "cannot list the replicas to wait for; they forget within seconds")
            }
            Err(_) => tracing::warn!(
                "a replica did not acknowledge a revocation in time; it forgets within seconds"
            ),
        }
        self.stop_waiting(&pending);
    }

    /// Unregisters `pending`'s waiter (answered, timed out, or its
    /// transaction failed to commit).
    fn stop_waiting(&self, pending: &Pending) {
        let Some(acks) = &pending.acks else {
            return;
        };
        if let Ok(mut waiting) = self.waiting.lock()
            && let Some(list) = waiting.get_mut(&pending.user_id)
        {
            list.retain(|other| !Arc::ptr_eq(other, acks));
            if list.is_empty() {
                waiting.remove(&pending.user_id);
            }
        }
    }

    /// `replica` has forgotten `user_id`.
    fn acknowledged(&self, replica: Uuid, user_id: Uuid) {
        let Ok(waiting) = self.waiting.lock() else {
            return;
        };
        for acks in waiting.get(&user_id).into_iter().flatten() {
            if let Ok(mut replicas) = acks.replicas.lock() {
                replicas.insert(replica);
            }
            acks.arrived.notify_waiters();
        }
    }

    /// Forgets everything about the account (it changed).
    fn forget(&self, user_id: Uuid) {
        if let Ok(mut state) = self.state.write() {
            state.epoch += 1;
            state.profiles.remove(&user_id);
            for session_id in state.sessions_of.remove(&user_id).unwrap_or_default() {
                state.live.remove(&session_id);
            }
        }
    }

    /// Starts over, remembering (`trusted`) or not.
    fn reset(&self, trusted: bool) {
        if let Ok(mut state) = self.state.write() {
            let epoch = state.epoch + 1;
            *state = State {
                trusted,
                epoch,
                ..State::default()
            };
        }
    }

    /// Listens for changes until the process ends: the cache is in use
    /// only while this is connected.
    pub async fn listen(self: Arc<Self>, db: PgPool) {
        loop {
            match Listener::connect(&db, self.replica).await {
                Ok(mut listener) => {
                    self.reset(true);
                    let lost = self.hear(&mut listener).await;
                    tracing::warn!(
                        error = %lost,
                        "lost the change notifications; sessions are read from the database until they are back"
                    );
                }
                Err(error) => {
                    tracing::warn!(error = %error, "cannot listen for change notifications; sessions are read from the database");
                }
            }
            self.reset(false);
            tokio::time::sleep(RECONNECT_PAUSE).await;
        }
    }

    /// Handles notifications until the connection fails.
    async fn hear(&self, listener: &mut Listener) -> sqlx::Error {
        loop {
            match listener.next().await {
                Ok(Heard::Changed(user_id)) => {
                    self.forget(user_id);
                    if let Err(error) = listener.acknowledge(self.replica, user_id).await {
                        return error;
                    }
                }
                Ok(Heard::Forgotten { replica, user_id }) => self.acknowledged(replica, user_id),
                Err(error) => return error,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listening() -> SessionCache {
        let cache = SessionCache::default();
        cache.reset(true);
        cache
    }

    #[test]
    fn nothing_is_remembered_unless_listening() {
        let cache = SessionCache::default();
        assert!(cache.ticket().is_none());
        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        cache.remember_live(Ticket(0), user, session);
        assert!(!cache.is_live(user, session));
    }

    #[test]
    fn a_change_voids_older_tickets_and_entries() {
        let cache = listening();
        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        let Some(before) = cache.ticket() else {
            panic!("listening")
        };
        cache.remember_live(before, user, session);
        assert!(cache.is_live(user, session));
        assert!(!cache.is_live(Uuid::new_v4(), session), "another owner");
        // A read that started before a change cannot remember its answer.
        let Some(stale) = cache.ticket() else {
            panic!("listening")
        };
        cache.forget(user);
        assert!(!cache.is_live(user, session));
        cache.remember_live(stale, user, session);
        assert!(!cache.is_live(user, session));
    }

    #[test]
    fn losing_the_listener_forgets_everything() {
        let cache = listening();
        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        let Some(ticket) = cache.ticket() else {
            panic!("listening")
        };
        cache.remember_live(ticket, user, session);
        cache.reset(false);
        assert!(!cache.is_live(user, session));
        cache.reset(true);
        assert!(!cache.is_live(user, session));
    }

    #[test]
    fn a_revocation_waits_for_every_replica_not_just_one() {
        let cache = listening();
        let (user, other_user) = (Uuid::new_v4(), Uuid::new_v4());
        let (here, there) = (Uuid::new_v4(), Uuid::new_v4());
        let pending = cache.before_change(user);
        let Some(acks) = pending.acks.clone() else {
            panic!("listening")
        };
        cache.acknowledged(here, user);
        cache.acknowledged(there, other_user);
        assert!(acks.covers(&[here]));
        assert!(!acks.covers(&[here, there]), "there forgot someone else");
        cache.acknowledged(there, user);
        assert!(acks.covers(&[here, there]));
    }

    #[test]
    fn a_change_that_fails_to_commit_leaves_no_waiter() {
        let cache = listening();
        let pending = cache.before_change(Uuid::new_v4());
        assert_eq!(cache.waiting.lock().map(|w| w.len()).ok(), Some(1));
        cache.stop_waiting(&pending);
        assert_eq!(cache.waiting.lock().map(|w| w.len()).ok(), Some(0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_replica_not_listening_waits_out_the_others_caches() {
        let cache = SessionCache::default();
        let Ok(db) = PgPool::connect_lazy("postgres://unused@127.0.0.1/unused") else {
            panic!("a lazy pool connects to nothing")
        };
        let pending = cache.before_change(Uuid::new_v4());
        let started = tokio::time::Instant::now();
        cache.changed(&db, pending).await;
        assert!(started.elapsed() >= MAX_AGE);
    }

    #[test]
    fn a_session_read_again_and_again_is_listed_once() {
        let cache = listening();
        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        for _ in 0..5 {
            let Some(ticket) = cache.ticket() else {
                panic!("listening")
            };
            cache.remember_live(ticket, user, session);
        }
        let listed = cache
            .state
            .read()
            .map(|s| s.sessions_of.get(&user).map_or(0, Vec::len))
            .unwrap_or_default();
        assert_eq!(listed, 1);
    }
}
