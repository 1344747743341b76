//! Recurring codes held by the lock: a user's weekly schedule as Schedule
//! Entry Lock week-day slots (one per weekday, the times in the lock's local
//! time), enabled with the user's schedules. A slot that held such a schedule
//! has its week-day slots erased before it holds anything else, so no later
//! code inherits the old days.

use super::cc::schedule_entry_lock as sel;
use super::node::{Inner, NodeFacts};
use crate::drivers::DriverError;
use crate::model::WeeklySchedule;
use std::sync::Arc;

/// Writes `w` into `user`'s week-day slots (erasing the rest) and enables
/// the user's schedules: from then on the code opens only in those windows.
pub(super) async fn set(
    inner: &Arc<Inner>,
    node: u8,
    user: u8,
    w: &WeeklySchedule,
    facts: &NodeFacts,
    supervise: bool,
) -> Result<(), DriverError> {
    let days: Vec<chrono::Weekday> = w.weekdays().collect();
    if days.len() > facts.week_day_slots as usize {
        return Err(DriverError::Failed(format!(
            "the lock holds {} week-day schedules per user, the code needs {}",
            facts.week_day_slots,
            days.len()
        )));
    }
    // A year-day window the slot had would open the code too (a user's
    // schedules add up): it goes first.
    if inner
        .with_node(node, |n| n.scheduled.contains(&(user as u32)))
        .unwrap_or(false)
    {
        inner
            .send_set(node, sel::year_day_erase(user, 1), supervise)
            .await?;
    }
    for (i, day) in days.iter().enumerate() {
        let slot = i as u8 + 1;
        let set = sel::week_day_set(user, slot, *day, w.start_hm(), w.end_hm());
        inner.send_set(node, set, supervise).await?;
    }
    for slot in days.len() as u8 + 1..=facts.week_day_slots {
        inner
            .send_set(node, sel::week_day_erase(user, slot), supervise)
            .await?;
    }
    inner
        .send_set(node, sel::enable_set(user, true), supervise)
        .await?;
    inner.with_node(node, |n| {
        n.weekly.insert(user as u32);
        // Enabled schedules: a later code without one turns them off.
        n.scheduled.insert(user as u32);
    });
    Ok(())
}

/// Erases `user`'s week-day slots if lockhub gave it some (since start).
pub(super) async fn erase(
    inner: &Arc<Inner>,
    node: u8,
    user: u8,
    facts: &NodeFacts,
    supervise: bool,
) -> Result<(), DriverError> {
    let had = inner
        .with_node(node, |n| n.weekly.contains(&(user as u32)))
        .unwrap_or(false);
    if !had {
        return Ok(());
    }
    for slot in 1..=facts.week_day_slots {
        inner
            .send_set(node, sel::week_day_erase(user, slot), supervise)
            .await?;
    }
    inner.with_node(node, |n| n.weekly.remove(&(user as u32)));
    Ok(())
}
