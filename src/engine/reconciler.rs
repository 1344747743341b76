//! One lock's loop: read what the lock holds when that is unknown, diff,
//! apply a batch, commit the results; sleep until the next thing to do.

use super::issued::Issued;
use super::{backoff, clock, observe, plan, Engine, LockBackoff, LockHandle, MAX_BATCH};
use crate::drivers::{DriverError, SlotOp};
use crate::model::{AccessCode, Event, Issue, Pin};
use crate::store::issued::Unsent;
use crate::store::{StoreError, Tx};
use chrono::{DateTime, Utc};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// A lock's codes and slots as its reconciler last loaded them, kept while
/// nothing else touched them (`generation` unchanged): a pass on a lock with a
/// hundred codes then costs no parsing.
struct Cached {
    generation: u64,
    /// `LockHandle::issued_generation` when `issued` was read.
    issued_generation: u64,
    device: crate::store::DeviceRow,
    /// Shared with the store's decoded copy: a pass copies only what it changes.
    codes: Vec<Arc<AccessCode>>,
    observed: Vec<crate::drivers::SlotCode>,
    issued: Issued,
}

/// A reconciler with nothing to do for this long drops its cached codes.
const IDLE_DROPS_CACHE: Duration = Duration::from_secs(1);

/// What one batch's commit changed, to keep the cache true.
#[derive(Default)]
struct Recorded {
    transient: bool,
    codes: Vec<AccessCode>,
    purged: Vec<String>,
    slots: Vec<(u32, Option<crate::drivers::SlotCode>)>,
    /// A slot step's result: the lock's codes and slots as committed.
    lock: Option<(Vec<Arc<AccessCode>>, Vec<crate::drivers::SlotCode>)>,
    /// Of the job's `forget`, the digests dropped.
    forgotten: Vec<Unsent>,
}

/// One lock's batch results, waiting to be committed with others.
pub(super) struct RecordJob {
    id: String,
    batch: Vec<plan::Planned>,
    results: Vec<Result<(), DriverError>>,
    done: DateTime<Utc>,
    /// PINs about to be sent (`store::issued`), committed before the batch goes out.
    intents: Vec<(u32, Pin)>,
    /// Digests recorded ahead whose PIN was never sent, to drop
    /// (`Tx::forget_unsent`) instead of clearing their slots.
    forget: Vec<Unsent>,
    /// Run the slot step (`slots::check`) on a lock with this many slots
    /// (and, after a read that stopped part way, only these slots known).
    slot_step: Option<(u32, Option<std::collections::BTreeSet<u32>>)>,
    reply: tokio::sync::oneshot::Sender<Result<Recorded, StoreError>>,
}

impl RecordJob {
    /// A job for lock `id` that commits nothing yet: its caller says what.
    fn new(
        id: &str,
        done: DateTime<Utc>,
        reply: tokio::sync::oneshot::Sender<Result<Recorded, StoreError>>,
    ) -> Self {
        RecordJob {
            id: id.to_owned(),
            batch: Vec::new(),
            results: Vec::new(),
            done,
            intents: Vec::new(),
            forget: Vec::new(),
            slot_step: None,
            reply,
        }
    }
}

/// Backoff of a lock's reconciler while the store fails.
const STORE_RETRY_BASE: Duration = Duration::from_secs(1);
const STORE_RETRY_MAX: Duration = Duration::from_secs(300);

/// Most batches committed in one transaction.
const MAX_JOBS_PER_COMMIT: usize = 64;

/// A transaction of the committer this long lets a waiting command go
/// first (between two locks' jobs); a shorter one commits all it took, so
/// a stream of commands does not split the engine's work into an fsync per
/// lock.
const YIELD_AFTER: Duration = Duration::from_millis(2);

/// How long the committer waits for the next result of locks still on their
/// way (`Engine::on_the_way`) before it commits what it has, and the longest
/// it waits in all: a fan-out's locks finish within a millisecond or two of
/// each other, and one commit for all of them writes the shared pages (outbox,
/// indexes) and syncs once, not once per lock (3.5 commits and fsyncs per
/// 10-lock command in mqtt_bench, 2.0 with it). No one waits on these commits
/// but the events they queue.
const LINGER: Duration = Duration::from_millis(2);
const LINGER_MAX: Duration = Duration::from_millis(10);

/// One lock's work on its way to the committer (counted in
/// `Engine::on_the_way`): from a command's wake, or from the start of its
/// apply, until its results are sent or its pass ends.
struct OnTheWay<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> OnTheWay<'a> {
    fn start(n: &'a std::sync::atomic::AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        OnTheWay(n)
    }

    /// Takes over the count a wake made (`Engine::wake_locks`).
    fn woken(n: &'a std::sync::atomic::AtomicUsize) -> Self {
        OnTheWay(n)
    }
}

impl Drop for OnTheWay<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a pass says about the next one.
enum Next {
    /// More to do right away.
    Now,
    /// Nothing before this long (or a wake-up).
    After(Duration),
}

impl Engine {
    pub(super) async fn reconcile_lock(
        self: Arc<Self>,
        device_id: String,
        handle: Arc<LockHandle>,
    ) {
        let mut cache: Option<Cached> = None;
        let mut store_failures: u32 = 0;
        loop {
            if self.shutdown.is_cancelled() {
                return;
            }
            // This pass takes the wake (if any): counted until its results
            // reach the committer or it ends.
            let mut woken = handle
                .woken
                .swap(false, Ordering::SeqCst)
                .then(|| OnTheWay::woken(&self.on_the_way));
            handle.busy.enter();
            let passed = self.pass(&device_id, &handle, &mut cache, &mut woken).await;
            handle.busy.leave();
            drop(woken);
            let next = match passed {
                Ok(n) => {
                    store_failures = 0;
                    n
                }
                Err(e) => {
                    // The store cannot record (a full disk, an I/O error):
                    // no more radio work for this lock until it can, and
                    // slower each time (1 s doubling to 5 min).
                    cache = None;
                    store_failures += 1;
                    handle.reread.store(true, Ordering::SeqCst);
                    let wait = backoff::delay(store_failures, STORE_RETRY_BASE, STORE_RETRY_MAX);
                    *self.store_trouble.lock().unwrap() = Some(e.to_string());
                    tracing::error!(error = %e, retry_in_ms = wait.as_millis() as u64, "reconcile pass failed (the store); backing off");
                    Next::After(wait)
                }
            };
            self.stats.passes.fetch_add(1, Ordering::Relaxed);
            let mut wait = match next {
                Next::Now => {
                    tokio::task::yield_now().await;
                    continue;
                }
                Next::After(d) => d.min(self.settings.max_idle_sleep),
            };
            // A lock with nothing to do for a while keeps no copy of its codes:
            // memory stays small on a hub with many locks and codes. Woken
            // before that (a stream of commands), it keeps the copy, and reads
            // its codes again but not its issued PINs (`load`).
            if wait >= IDLE_DROPS_CACHE {
                tokio::select! {
                    _ = self.shutdown.cancelled() => return,
                    _ = handle.wake.notified() => continue,
                    _ = tokio::time::sleep(IDLE_DROPS_CACHE) => {}
                }
                cache = None;
                wait -= IDLE_DROPS_CACHE;
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = handle.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// The lock's codes and slots as the store holds them, unless the cached
    /// copy is still current. Read without the writer.
    fn load(
        &self,
        id: &str,
        handle: &LockHandle,
        cache: &mut Option<Cached>,
    ) -> Result<(), StoreError> {
        // In this order (wakers bump `issued_generation` first): a wake
        // between the two loads leaves `generation` behind, so the next pass
        // loads again, and the store's snapshot below comes after both.
        let generation = handle.generation.load(Ordering::SeqCst);
        let issued_generation = handle.issued_generation.load(Ordering::SeqCst);
        if cache.as_ref().is_none_or(|c| c.generation != generation) {
            // The issued PINs as this reconciler last kept them, unless
            // something besides a command touched the lock since.
            let kept = cache
                .take()
                .filter(|c| c.issued_generation == issued_generation)
                .map(|c| c.issued);
            *cache = self.store.read(|tx| {
                let Some(device) = tx.device(id)? else {
                    return Ok(None);
                };
                let issued = match kept {
                    Some(i) => i,
                    None => Issued::new(id, tx.issued(id)?),
                };
                Ok(Some(Cached {
                    generation,
                    issued_generation,
                    device,
                    codes: tx.shared_codes_for_device(id)?,
                    observed: tx.observed(id)?,
                    issued,
                }))
            })?;
        }
        // PINs commands committed as issued (before their wake): taken into
        // the copy kept, or already in the rows just read (noted twice is once).
        let noted = std::mem::take(&mut *handle.noted.lock().unwrap());
        if let Some(c) = cache.as_mut() {
            for (slot, pin) in &noted {
                c.issued.note(*slot, pin);
            }
        }
        Ok(())
    }

    /// Wait for the radio: not engine work (a sleeping Z-Wave lock may take
    /// minutes to wake), so the watchdog does not count it.
    async fn outside<T>(handle: &LockHandle, f: impl std::future::Future<Output = T>) -> T {
        handle.busy.leave();
        let out = f.await;
        handle.busy.enter();
        out
    }

    fn backoff_wait(handle: &LockHandle) -> Option<Duration> {
        let b = *handle.backoff.lock().unwrap();
        b.until
            .map(|u| u.saturating_duration_since(tokio::time::Instant::now()))
            .filter(|d| !d.is_zero())
    }

    /// A transient failure: back the whole lock off (never flood a radio).
    fn back_off(&self, handle: &LockHandle) -> Duration {
        let mut b = handle.backoff.lock().unwrap();
        b.failures += 1;
        let d = backoff::delay(
            b.failures,
            self.settings.retry_base,
            self.settings.retry_max,
        );
        b.until = Some(tokio::time::Instant::now() + d);
        d
    }

    fn succeeded(handle: &LockHandle) {
        *handle.backoff.lock().unwrap() = LockBackoff::default();
    }

    async fn pass(
        &self,
        id: &str,
        handle: &LockHandle,
        cache: &mut Option<Cached>,
        woken: &mut Option<OnTheWay<'_>>,
    ) -> Result<Next, StoreError> {
        let Some(driver) = self.driver_for(id) else {
            return Ok(Next::After(self.settings.max_idle_sleep));
        };
        // While the clock is untrusted no time-driven change is made
        // (`trust`): the time-driven checks wait, and codes with a window are
        // left on the lock as they are.
        let trusted = self.trust.judge_clock(self.wall.as_ref());
        let now = self.clock.now();
        let timing = self.settings.timing();
        self.load(id, handle, cache)?;
        let Some(cached) = cache.as_mut() else {
            return Ok(Next::After(self.settings.max_idle_sleep));
        };
        // Nothing is decided from what the lock holds until that has been read
        // (after a start, or when the lock said its slots may have changed):
        // a stale "not on the lock" must never purge a code or raise an error.
        let known = cached.device.slots_known && !handle.reread.load(Ordering::SeqCst);
        // A read that stopped part way: only these slots are known, and only
        // ops on them go out (`plan::known_only`) before the read goes on.
        let mut part: Option<std::collections::BTreeSet<u32>> = None;
        if !known && Self::backoff_wait(handle).is_none() {
            let read = match Self::outside(handle, driver.read_partial(id)).await {
                Ok(read) => read,
                Err(e) => {
                    self.note_failure(id, &e)?;
                    return Ok(Next::After(self.back_off(handle)));
                }
            };
            self.store.write(|tx| {
                let now = self.clock.now();
                // The lock answered: it is reachable.
                if tx.set_device_online(id, true)? {
                    tx.event(&Event::device("device.connected", id, now))?;
                }
                self.note_fault(tx, id, None, now)?;
                observe::absorb_read(self, tx, id, &read, now)
            })?;
            *cache = None;
            // It answered (a partial read learned something): a fresh backoff.
            Self::succeeded(handle);
            let Some(p) = read.partial else {
                handle.reread.store(false, Ordering::SeqCst);
                return Ok(Next::Now);
            };
            tracing::info!(
                known = p.known.len(),
                error = %p.stopped,
                "the lock's slots were read part way: writing to the slots read, then reading on"
            );
            part = Some(p.known);
            self.load(id, handle, cache)?;
        }
        let Some(cached) = cache.as_mut() else {
            return Ok(Next::After(self.settings.max_idle_sleep));
        };
        // Write only when a time-driven change is due.
        let (mut next_check, due) = if trusted {
            super::timed::check(
                self,
                None,
                &mut cached.codes.clone(),
                &cached.observed,
                &cached.issued,
                known,
                now,
            )?
        } else {
            (None, false)
        };
        if due {
            let issued = &cached.issued;
            (cached.codes, cached.observed, next_check) = self.store.write(|tx| {
                let mut codes = tx.shared_codes_for_device(id)?;
                let observed = tx.observed(id)?;
                let (next, _) =
                    super::timed::check(self, Some(tx), &mut codes, &observed, issued, known, now)?;
                Ok::<_, StoreError>((codes, observed, next))
            })?;
        }
        let wall_wait =
            |at: Option<DateTime<Utc>>| at.map(|t| clock::until(self.clock.as_ref(), t));
        if let Some(w) = Self::backoff_wait(handle) {
            let check = wall_wait(next_check).unwrap_or(w);
            return Ok(Next::After(w.min(check)));
        }
        debug_assert!(
            known || part.is_some(),
            "an unread lock is read before anything else"
        );

        // Slots over time: codes now due take a slot, codes off the lock give theirs back.
        let capacity = cached.device.info.capabilities.max_active_codes_supported;
        let part_known = part.as_ref();
        let (slot_check, due) = super::slots::check(
            self,
            None,
            capacity,
            part_known,
            &mut cached.codes,
            &cached.observed,
            now,
        )?;
        if due {
            (cached.codes, cached.observed) = self
                .commit_slot_step(id, capacity, part_known.cloned(), now)
                .await?;
        }
        let next_check = [next_check, slot_check].into_iter().flatten().min();
        let mut ops = plan::diff(&cached.codes, &cached.observed, now, &timing);
        let settle = cached
            .issued
            .settle(&cached.codes, &cached.observed, &ops, now, &timing);
        // Removals first, as in the diff.
        let (clears, sets): (Vec<_>, Vec<_>) = settle
            .into_iter()
            .partition(|p| matches!(p.op, SlotOp::Clear { .. }));
        ops.splice(0..0, clears);
        ops.extend(sets);
        if !trusted {
            let windowed: std::collections::HashSet<&str> = cached
                .codes
                .iter()
                .filter(|c| c.window.is_some() && !c.deleted)
                .map(|c| c.access_code_id.as_str())
                .collect();
            ops.retain(|p| !windowed.contains(p.access_code_id.as_str()));
        }
        if let Some(known) = part_known {
            ops = plan::known_only(ops, known, &cached.observed, &cached.issued);
        }
        if part.is_some() && ops.is_empty() {
            // Nothing to write yet: the read goes on after a pause.
            return Ok(Next::After(self.back_off(handle)));
        }
        if ops.is_empty() {
            let next = [plan::next_boundary(&cached.codes, now, &timing), next_check]
                .into_iter()
                .flatten()
                .min();
            return Ok(Next::After(
                wall_wait(next).unwrap_or(self.settings.max_idle_sleep),
            ));
        }
        let all_in_batch = ops.len() <= MAX_BATCH;
        let batch: Vec<plan::Planned> = ops.into_iter().take(MAX_BATCH).collect();
        // A slot to clear only for PINs a command recorded ahead that no
        // driver was handed (a code deleted before its lock was reached): it
        // cannot hold them, so they are forgotten, and the lock is left alone.
        let forget: Vec<Unsent> = batch
            .iter()
            .filter_map(|p| match p.op {
                SlotOp::Clear { slot } if !cached.observed.iter().any(|o| o.slot == slot) => {
                    cached.issued.only_unsent(slot, &self.store.ahead)
                }
                _ => None,
            })
            .flatten()
            .collect();
        if !forget.is_empty() {
            let forgotten = self.forget_unsent(id, forget).await.inspect_err(|_| {
                *cache = None;
            })?;
            if let Some(cached) = cache.as_mut() {
                for u in &forgotten {
                    cached.issued.forget(u);
                }
            }
            // Planned again without those clears.
            return Ok(Next::Now);
        }
        for p in &batch {
            if let (SlotOp::Clear { .. }, Some(c)) = (
                &p.op,
                cached
                    .codes
                    .iter()
                    .find(|c| c.access_code_id == p.access_code_id),
            ) {
                if let Some(w) = c.window.filter(|w| now >= w.ends_at) {
                    let lag = (now - w.ends_at).num_milliseconds().max(0) as u64;
                    self.stats.removals.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .removal_lag_ms_sum
                        .fetch_add(lag, Ordering::Relaxed);
                    tracing::debug!(slot = p.op.slot(), lag_ms = lag, "removing an expired code");
                }
            }
        }
        // Before a PIN goes out, the store learns that it may be on the lock
        // from now on (a crash or a lost reply then cannot make it a stranger's).
        let new_pins: Vec<(u32, Pin)> = batch
            .iter()
            .filter_map(|p| match &p.op {
                SlotOp::Set(d) if !cached.issued.holds(d.slot, &d.code) => {
                    Some((d.slot, d.code.clone()))
                }
                _ => None,
            })
            .collect();
        if !new_pins.is_empty() {
            self.record_intents(id, &new_pins).await.inspect_err(|_| {
                *cache = None;
            })?;
            let Some(cached) = cache.as_mut() else {
                return Ok(Next::Now);
            };
            for (slot, pin) in &new_pins {
                cached.issued.note(*slot, pin);
            }
        }
        let slot_ops: Vec<SlotOp> = batch.iter().map(|p| p.op.clone()).collect();
        for op in &slot_ops {
            if let SlotOp::Set(d) = op {
                self.store.ahead.handing(id, d.slot, &d.code);
            }
        }
        let on_the_way = woken
            .take()
            .unwrap_or_else(|| OnTheWay::start(&self.on_the_way));
        let results = Self::outside(handle, driver.apply(id, &slot_ops)).await;
        let done = self.clock.now();
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = RecordJob {
            batch,
            results,
            ..RecordJob::new(id, done, reply)
        };
        let committed = self.commit_job(job, answer, Some(on_the_way)).await;
        let recorded = match committed {
            Ok(r) => r,
            Err(e) => {
                *cache = None;
                return Err(e);
            }
        };
        // Keep the cache true to what was just committed.
        let Some(cached) = cache.as_mut() else {
            return Ok(Next::Now);
        };
        for (slot, content) in recorded.slots {
            cached
                .issued
                .confirm(slot, content.as_ref().map(|c| &c.code));
            cached.observed.retain(|s| s.slot != slot);
            if let Some(c) = content {
                cached.observed.push(c);
            }
        }
        for c in recorded.codes {
            match cached
                .codes
                .iter_mut()
                .find(|x| x.access_code_id == c.access_code_id)
            {
                Some(x) => *x = Arc::new(c),
                None => cached.codes.push(Arc::new(c)),
            }
        }
        cached
            .codes
            .retain(|c| !recorded.purged.contains(&c.access_code_id));
        if recorded.transient || part.is_some() {
            // A read that stopped part way goes on after a pause, as a failed one.
            Ok(Next::After(self.back_off(handle)))
        } else if all_in_batch {
            // Everything planned was done: nothing more until the next boundary
            // or a wake-up.
            Self::succeeded(handle);
            let next = [
                plan::next_boundary(&cached.codes, done, &timing),
                next_check,
            ]
            .into_iter()
            .flatten()
            .min();
            Ok(Next::After(
                wall_wait(next).unwrap_or(self.settings.max_idle_sleep),
            ))
        } else {
            Self::succeeded(handle);
            Ok(Next::Now)
        }
    }

    /// Hand a job to the committer and wait for its commit.
    async fn commit_job(
        &self,
        job: RecordJob,
        answer: tokio::sync::oneshot::Receiver<Result<Recorded, StoreError>>,
        on_the_way: Option<OnTheWay<'_>>,
    ) -> Result<Recorded, StoreError> {
        let sent = self.record_jobs.send(job);
        // With the committer now: no longer on its way.
        drop(on_the_way);
        match sent {
            Ok(()) => answer
                .await
                .unwrap_or_else(|_| Err(StoreError::Other("the engine is stopping".into()))),
            Err(_) => Err(StoreError::Other("the engine is stopping".into())),
        }
    }

    /// Commit the PINs a batch is about to send (group-committed with other
    /// locks' results, so a busy hub pays no extra fsync per lock).
    pub(super) async fn record_intents(
        &self,
        id: &str,
        pins: &[(u32, Pin)],
    ) -> Result<(), StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = RecordJob {
            intents: pins.to_vec(),
            ..RecordJob::new(id, self.clock.now(), reply)
        };
        self.commit_job(job, answer, None).await.map(|_| ())
    }

    /// Drop digests recorded ahead and never sent (group-committed with
    /// other locks' results). Returns those dropped.
    async fn forget_unsent(
        &self,
        id: &str,
        forget: Vec<Unsent>,
    ) -> Result<Vec<Unsent>, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = RecordJob {
            forget,
            ..RecordJob::new(id, self.clock.now(), reply)
        };
        self.commit_job(job, answer, None)
            .await
            .map(|r| r.forgotten)
    }

    /// Take and give back a lock's slots as due at `now` (`slots::check`),
    /// in the committer's transaction: with a command's fan-out, the slot
    /// steps of every lock it touched share one commit (and its fsync), and
    /// no async worker waits for the disk. Returns the lock's codes and
    /// slots as committed.
    async fn commit_slot_step(
        &self,
        id: &str,
        capacity: u32,
        known: Option<std::collections::BTreeSet<u32>>,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Arc<AccessCode>>, Vec<crate::drivers::SlotCode>), StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = RecordJob {
            slot_step: Some((capacity, known)),
            ..RecordJob::new(id, now, reply)
        };
        let recorded = self.commit_job(job, answer, None).await?;
        recorded
            .lock
            .ok_or_else(|| StoreError::Other("the slot step returned no codes".into()))
    }

    /// Commits the results of every batch waiting, in one transaction: with
    /// many locks busy, one fsync serves them all. A task of the runtime
    /// (a current-thread runtime: tests); the daemon runs [`Engine::committer_thread`].
    pub(super) async fn committer(
        self: Arc<Self>,
        mut rx: tokio::sync::mpsc::UnboundedReceiver<RecordJob>,
    ) {
        let mut carried = std::collections::VecDeque::new();
        loop {
            let first = match carried.pop_front() {
                Some(j) => j,
                None => match self.next_job(&mut rx).await {
                    Some(j) => j,
                    None => return,
                },
            };
            self.linger(&mut rx, &mut carried).await;
            self.commit_jobs(first, &mut rx, &mut carried);
        }
    }

    /// [`Engine::committer`] on a thread of its own: its commits (and their
    /// fsync) never hold up an async worker, so the MQTT link, the ingest and
    /// the publisher keep moving while the engine's results are written.
    pub(super) fn committer_thread(
        self: Arc<Self>,
        rx: tokio::sync::mpsc::UnboundedReceiver<RecordJob>,
        rt: tokio::runtime::Handle,
    ) {
        // Driven here, not on a worker: its blocking commits block only this thread.
        rt.block_on(self.committer(rx))
    }

    /// Take the jobs of locks still on their way into `carried`, while each
    /// comes within [`LINGER`] of the last (at most [`LINGER_MAX`] in all),
    /// unless a command is waiting for the writer or a full transaction's
    /// worth is already there.
    async fn linger(
        &self,
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<RecordJob>,
        carried: &mut std::collections::VecDeque<RecordJob>,
    ) {
        let until = tokio::time::Instant::now() + LINGER_MAX;
        while self.on_the_way.load(Ordering::SeqCst) > 0
            && carried.len() + 1 < MAX_JOBS_PER_COMMIT
            && !self.store.urgent_waiting()
            && !self.shutdown.is_cancelled()
        {
            let next = (tokio::time::Instant::now() + LINGER).min(until);
            match tokio::time::timeout_at(next, rx.recv()).await {
                Ok(Some(j)) => carried.push_back(j),
                Ok(None) | Err(_) => break,
            }
        }
    }

    /// The next job, or `None` once the engine stops (what was sent before
    /// the stop is still committed).
    async fn next_job(
        &self,
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<RecordJob>,
    ) -> Option<RecordJob> {
        tokio::select! {
            j = rx.recv() => j,
            _ = self.shutdown.cancelled() => rx.try_recv().ok(),
        }
    }

    /// Commit `first` and the jobs waiting behind it in one transaction, and
    /// answer each. A command waiting for the writer once the transaction has
    /// run [`YIELD_AFTER`] goes first: what is done so far commits then, the
    /// rest (`carried`) in the next transaction.
    fn commit_jobs(
        &self,
        first: RecordJob,
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<RecordJob>,
        carried: &mut std::collections::VecDeque<RecordJob>,
    ) {
        let mut jobs = vec![first];
        while jobs.len() < MAX_JOBS_PER_COMMIT {
            match carried.pop_front().map(Ok).unwrap_or_else(|| rx.try_recv()) {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let _busy = self.committing.guard();
        let started = std::time::Instant::now();
        let result = self.store.write(|tx| {
            let mut outs = Vec::with_capacity(jobs.len());
            for j in &jobs {
                if !outs.is_empty()
                    && started.elapsed() >= YIELD_AFTER
                    && self.store.urgent_waiting()
                {
                    break;
                }
                for (slot, pin) in &j.intents {
                    tx.note_issued(&j.id, *slot, pin)?;
                }
                let mut forgotten = Vec::new();
                for u in &j.forget {
                    if tx.forget_unsent(&j.id, u)? {
                        forgotten.push(u.clone());
                    }
                }
                let mut out = self.record(tx, &j.id, &j.batch, &j.results, j.done)?;
                out.forgotten = forgotten;
                if let Some((capacity, known)) = &j.slot_step {
                    let mut codes = tx.shared_codes_for_device(&j.id)?;
                    let observed = tx.observed(&j.id)?;
                    super::slots::check(
                        self,
                        Some(tx),
                        *capacity,
                        known.as_ref(),
                        &mut codes,
                        &observed,
                        j.done,
                    )?;
                    out.lock = Some((codes, observed));
                }
                outs.push(out);
            }
            Ok::<_, StoreError>(outs)
        });
        match result {
            Ok(outs) => {
                self.store_trouble.lock().unwrap().take();
                let rest = jobs.split_off(outs.len());
                for j in rest.into_iter().rev() {
                    carried.push_front(j);
                }
                for (j, out) in jobs.into_iter().zip(outs) {
                    let _ = j.reply.send(Ok(out));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "could not commit lock results");
                for j in jobs {
                    let _ = j.reply.send(Err(StoreError::Other(e.to_string())));
                }
            }
        }
    }

    /// A lock could not be reached: remember why, and mark it offline if it said so.
    fn note_failure(&self, id: &str, e: &DriverError) -> Result<(), StoreError> {
        let now = self.clock.now();
        tracing::info!(error = %e, "lock operation failed; backing off");
        self.store.write(|tx| {
            tx.set_device_error(id, Some(&e.to_string()))?;
            self.note_fault(tx, id, Some(e), now)?;
            if *e == DriverError::Offline && tx.set_device_online(id, false)? {
                tx.event(&Event::device("device.disconnected", id, now))?;
                self.publish_device(tx, id)?;
            }
            Ok(())
        })
    }

    /// Shows a lock's protocol fault on its device object (`errors[]`), or
    /// clears it once the lock answers well (`None`, or another outcome).
    fn note_fault(
        &self,
        tx: &Tx<'_>,
        id: &str,
        outcome: Option<&DriverError>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let fault = match outcome {
            Some(e @ DriverError::Protocol(_)) => Some(e.to_string()),
            Some(_) => return Ok(()),
            None => None,
        };
        let before = tx.device_fault(id)?.map(|f| f.message);
        if before == fault {
            return Ok(());
        }
        tx.set_device_fault(
            id,
            fault.as_deref().map(|m| ("lock_protocol_error", m)),
            now,
        )?;
        self.publish_device(tx, id)
    }

    /// Commit one batch's results. Returns whether any failure was transient.
    fn record(
        &self,
        tx: &Tx<'_>,
        id: &str,
        batch: &[plan::Planned],
        results: &[Result<(), DriverError>],
        now: DateTime<Utc>,
    ) -> Result<Recorded, StoreError> {
        let mut out = Recorded::default();
        let mut transient = false;
        let mut any_ok = false;
        for (p, r) in batch.iter().zip(
            results
                .iter()
                .chain(std::iter::repeat(&Err(DriverError::Timeout))),
        ) {
            let slot = p.op.slot();
            // The audit chain: every write to a lock, with its outcome (no PIN).
            tx.audit(
                "lock_write",
                &serde_json::json!({
                    "device_id": id,
                    "slot": slot,
                    "op": if matches!(p.op, SlotOp::Set(_)) { "set" } else { "clear" },
                    "access_code_id": p.access_code_id,
                    "ok": r.is_ok(),
                    "error": r.as_ref().err().map(|e| e.to_string()),
                }),
                now,
            )?;
            // What the lock answered is a fact about the slot, whichever code
            // (if any, still) wants it.
            if r.is_ok() {
                any_ok = true;
                self.stats.ops_ok.fetch_add(1, Ordering::Relaxed);
                let content = match &p.op {
                    SlotOp::Set(d) => Some(d.clone()),
                    SlotOp::Clear { .. } => None,
                };
                tx.set_observed(id, slot, content.as_ref())?;
                tx.confirm_slot(id, slot, content.as_ref().map(|c| &c.code))?;
                out.slots.push((slot, content));
            }
            // The lock's decoded codes (`store::locks`), not its row again:
            // a code no longer among them (purged) is looked up in SQL.
            let cached = tx.lock_view(id, |codes, _| {
                codes
                    .iter()
                    .find(|c| c.access_code_id == p.access_code_id)
                    .map(|c| AccessCode::clone(c))
            })?;
            let found = match cached {
                Some(c) => Some(c),
                None => tx.code(&p.access_code_id)?,
            };
            let Some(mut c) = found else {
                // A PIN of lockhub's that no code owns any more (`issued`).
                match r {
                    Ok(()) => {
                        tracing::info!(slot, "took a PIN lockhub had lost track of off the lock")
                    }
                    Err(e) => {
                        transient = true;
                        tracing::info!(slot, error = %e, "could not settle a slot lockhub may have left a PIN in");
                    }
                }
                continue;
            };
            match (&p.op, r) {
                (SlotOp::Set(d), Ok(())) => {
                    let first = p.before.as_ref().is_none_or(|b| b.code != d.code);
                    c.ever_set = true;
                    c.retry = Default::default();
                    for e in [
                        "failed_to_set_on_device",
                        "duplicate_code_on_device",
                        "no_space_for_access_code_on_device",
                        "code_constraints_violated",
                        "conflicting_external_modification",
                        "failed_to_issue",
                        "failed_to_update",
                    ] {
                        c.clear_error(e);
                    }
                    c.clear_warning("delay_in_setting_on_device");
                    if first {
                        let ev = match c.window {
                            Some(w) if c.is_scheduled_on_device && now < w.starts_at => {
                                "access_code.scheduled_on_device"
                            }
                            _ => "access_code.set_on_device",
                        };
                        tx.event(&Event::code(ev, &c, now))?;
                    }
                    tracing::debug!(slot, access_code_id = %c.access_code_id, "code set on the lock");
                }
                (SlotOp::Clear { .. }, Ok(())) => {
                    c.retry = Default::default();
                    c.clear_warning("delay_in_removing_from_device");
                    c.clear_error("failed_to_remove_from_device");
                    c.clear_error("failed_to_expire");
                    tx.event(&Event::code("access_code.removed_from_device", &c, now))?;
                    tracing::debug!(slot, access_code_id = %c.access_code_id, "code removed from the lock");
                    if c.deleted {
                        self.purge(tx, &c)?;
                        out.purged.push(c.access_code_id.clone());
                        continue;
                    }
                    if !c.needs_slot(now, &self.settings.timing()) {
                        // Ended and off the lock: its slot goes back now.
                        super::slots::release(tx, &mut c, now)?;
                    }
                }
                (_, Err(e)) if e.is_transient() => {
                    transient = true;
                    self.note_fault(tx, id, Some(e), now)?;
                    self.stats.ops_transient.fetch_add(1, Ordering::Relaxed);
                    c.retry.attempts += 1;
                    c.retry.failing_since.get_or_insert(now);
                    if *e == DriverError::Offline && tx.set_device_online(id, false)? {
                        tx.event(&Event::device("device.disconnected", id, now))?;
                        self.publish_device(tx, id)?;
                    }
                }
                (SlotOp::Set(_), Err(e)) => {
                    self.stats.ops_failed.fetch_add(1, Ordering::Relaxed);
                    c.retry.attempts += 1;
                    c.retry.gave_up = true;
                    c.retry.failing_since.get_or_insert(now);
                    let code = match e {
                        DriverError::DuplicateCode => "duplicate_code_on_device",
                        DriverError::NoSpace => "no_space_for_access_code_on_device",
                        DriverError::CodeRejected(_) => "code_constraints_violated",
                        _ => "failed_to_set_on_device",
                    };
                    tracing::warn!(slot, access_code_id = %c.access_code_id, error = %e, "the lock refused the code");
                    c.raise_error(Issue::new(code, e.to_string(), now));
                    tx.event(
                        &Event::code("access_code.failed_to_set_on_device", &c, now)
                            .with("error_code", code),
                    )?;
                }
                (SlotOp::Clear { .. }, Err(e)) => {
                    // Removal is a security duty: never give up, but slow down.
                    self.stats.ops_failed.fetch_add(1, Ordering::Relaxed);
                    c.retry.attempts += 1;
                    c.retry.failing_since.get_or_insert(now);
                    let wait = backoff::delay(
                        c.retry.attempts,
                        self.settings.retry_base,
                        self.settings.retry_max,
                    );
                    c.retry.next_attempt_at =
                        Some(now + chrono::Duration::from_std(wait).unwrap_or_default());
                    tracing::warn!(slot, access_code_id = %c.access_code_id, error = %e, "the lock refused a removal");
                    if c.raise_error(Issue::new(
                        "failed_to_remove_from_device",
                        e.to_string(),
                        now,
                    )) {
                        tx.event(&Event::code(
                            "access_code.failed_to_remove_from_device",
                            &c,
                            now,
                        ))?;
                    }
                }
            }
            self.commit_code(tx, &mut c, now)?;
            out.codes.push(c);
        }
        if any_ok {
            tx.set_device_error(id, None)?;
            self.note_fault(tx, id, None, now)?;
            if tx.set_device_online(id, true)? {
                tx.event(&Event::device("device.connected", id, now))?;
            }
            self.publish_device(tx, id)?;
        }
        out.transient = transient;
        Ok(out)
    }

    /// Save a code and publish its state (status recomputed).
    pub(super) fn commit_code(
        &self,
        tx: &Tx<'_>,
        c: &mut AccessCode,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let observed = tx.observed_slot(&c.device_id, c.slot)?;
        c.reported_status = Some(c.status(observed.as_ref(), now, &self.settings.timing()));
        tx.save_code(c)?;
        crate::commands::publish_code_state(tx, c, now, &self.settings)
    }

    /// Finish a deleted code that is off its lock: its slot goes back, its
    /// retained state is cleared, and its row stays only for the retention
    /// period (`store::lifetime`).
    pub(super) fn purge(&self, tx: &Tx<'_>, c: &AccessCode) -> Result<(), StoreError> {
        let mut done = c.clone();
        super::slots::release(tx, &mut done, self.clock.now())?;
        tx.save_code(&done)?;
        tx.publish(&format!("access_codes/{}", c.access_code_id), b"", true)
    }
}
