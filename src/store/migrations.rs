//! Versioned schema migrations, tracked in SQLite's `user_version`.
//! Append a step; never edit a released one.

use super::{Result, StoreError};
use rusqlite::Connection;

const STEPS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE devices (
        device_id     TEXT PRIMARY KEY,
        body          TEXT NOT NULL,
        online        INTEGER NOT NULL DEFAULT 1,
        battery_level INTEGER,
        slots_known   INTEGER NOT NULL DEFAULT 0,
        last_error    TEXT
    );
    CREATE TABLE access_codes (
        access_code_id  TEXT PRIMARY KEY,
        device_id       TEXT NOT NULL REFERENCES devices(device_id),
        common_code_key TEXT,
        slot            INTEGER NOT NULL,
        code            TEXT NOT NULL,
        deleted         INTEGER NOT NULL DEFAULT 0,
        ends_at         INTEGER,
        body            TEXT NOT NULL
    );
    CREATE UNIQUE INDEX access_codes_slot ON access_codes(device_id, slot);
    CREATE INDEX access_codes_key ON access_codes(common_code_key) WHERE common_code_key IS NOT NULL;
    CREATE TABLE slots (
        device_id TEXT NOT NULL,
        slot      INTEGER NOT NULL,
        code      TEXT NOT NULL,
        name      TEXT,
        starts_at TEXT,
        ends_at   TEXT,
        PRIMARY KEY (device_id, slot)
    ) WITHOUT ROWID;
    CREATE TABLE requests (
        request_id TEXT PRIMARY KEY,
        command    TEXT NOT NULL,
        response   TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX requests_created ON requests(created_at);
    CREATE TABLE outbox (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        topic   TEXT NOT NULL,
        payload BLOB NOT NULL,
        retain  INTEGER NOT NULL,
        -- 0: responses (a caller is waiting), 1: events and state
        lane    INTEGER NOT NULL DEFAULT 1
    );
    CREATE INDEX outbox_lane ON outbox(lane, id);
    CREATE INDEX outbox_retained ON outbox(topic) WHERE retain = 1;",
    // 2: PINs lockhub may have put in a slot (store::issued).
    "CREATE TABLE issued_pins (
        device_id TEXT NOT NULL,
        slot      INTEGER NOT NULL,
        digest    TEXT NOT NULL,
        PRIMARY KEY (device_id, slot, digest)
    ) WITHOUT ROWID;",
    // 3: the clock's trust (store::clock): one row.
    "CREATE TABLE clock_state (
        id              INTEGER PRIMARY KEY CHECK (id = 1),
        latest_trusted  TEXT,
        untrusted_since TEXT
    );
    INSERT INTO clock_state (id) VALUES (1);",
    // 4: a lock's reachability is unknown until a driver says (`online` was assumed).
    "ALTER TABLE devices ADD COLUMN presence_known INTEGER NOT NULL DEFAULT 0;",
    // 5: codes over time (slots taken only while a code is due, PIN history,
    // unmanaged codes' ids, device times, reported constraints).
    "DROP INDEX access_codes_slot;
    CREATE UNIQUE INDEX access_codes_slot ON access_codes(device_id, slot) WHERE slot > 0;
    CREATE INDEX access_codes_device ON access_codes(device_id);
    ALTER TABLE devices ADD COLUMN created_at TEXT;
    ALTER TABLE devices ADD COLUMN offline_since TEXT;
    UPDATE devices SET created_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now');
    CREATE TABLE pin_history (
        device_id TEXT NOT NULL,
        digest    BLOB NOT NULL,
        last_held INTEGER NOT NULL,
        PRIMARY KEY (device_id, digest)
    ) WITHOUT ROWID;
    CREATE TABLE unmanaged_codes (
        device_id      TEXT NOT NULL,
        slot           INTEGER NOT NULL,
        access_code_id TEXT NOT NULL UNIQUE,
        created_at     TEXT NOT NULL,
        PRIMARY KEY (device_id, slot)
    );
    CREATE TABLE hub_secrets (
        name  TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );
    CREATE TABLE reported_constraints (
        device_id TEXT PRIMARY KEY,
        body      TEXT NOT NULL
    );",
    // 6: a request_id is bound to its body; answers to an MQTT 5
    // Response Topic carry it and the Correlation Data.
    "ALTER TABLE requests ADD COLUMN fingerprint BLOB;
    ALTER TABLE outbox ADD COLUMN reply_topic TEXT;
    ALTER TABLE outbox ADD COLUMN correlation BLOB;
    -- signed commands: each jti is accepted once, remembered until it expires
    CREATE TABLE auth_jti (
        jti TEXT PRIMARY KEY,
        exp INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX auth_jti_exp ON auth_jti(exp);
    -- what was applied, hash-chained (store::audit); never a PIN
    CREATE TABLE audit (
        seq    INTEGER PRIMARY KEY,
        at     TEXT NOT NULL,
        kind   TEXT NOT NULL,
        detail TEXT NOT NULL,
        hash   BLOB NOT NULL
    );",
    // 7: the audit chain is pruned; the last pruned row stays as its sealed base.
    "CREATE TABLE audit_base (
        id   INTEGER PRIMARY KEY CHECK (id = 1),
        seq  INTEGER NOT NULL,
        hash BLOB NOT NULL,
        seal BLOB NOT NULL
    );",
    // 8 (issue 13a): what the locks say: bolt and door state, each code's
    // last use, and remote lock/unlock attempts (answered once the lock
    // confirms).
    "CREATE TABLE lock_state (
        device_id  TEXT PRIMARY KEY,
        locked     INTEGER,
        door_open  INTEGER,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE code_uses (
        access_code_id TEXT PRIMARY KEY,
        last_used_at   TEXT NOT NULL
    );
    CREATE TABLE action_attempts (
        action_attempt_id TEXT PRIMARY KEY,
        request_id   TEXT NOT NULL UNIQUE,
        device_id    TEXT NOT NULL,
        action_type  TEXT NOT NULL,
        status       TEXT NOT NULL,
        error_type   TEXT,
        error_message TEXT,
        created_at   TEXT NOT NULL,
        reply_topic  TEXT,
        correlation  BLOB,
        fingerprint  BLOB
    );
    CREATE INDEX action_attempts_pending ON action_attempts(status, created_at);
    -- codes removed after their first use (is_one_time_use)
    CREATE TABLE one_time_codes (
        access_code_id TEXT PRIMARY KEY
    );",
    // 9 (issue 13c): a lock's standing fault for its device object's errors[]
    "ALTER TABLE devices ADD COLUMN fault_code TEXT;
    ALTER TABLE devices ADD COLUMN fault_message TEXT;
    ALTER TABLE devices ADD COLUMN fault_since TEXT;
    -- the weekly schedule a lock holds for a slot (recurring codes), JSON
    ALTER TABLE slots ADD COLUMN weekly TEXT;",
    // 10 (issue 13): use counts (lockhub's `max_uses`; is_one_time_use is 1;
    // a code already in code_uses was used at least once); battery warnings
    "ALTER TABLE one_time_codes ADD COLUMN max_uses INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE code_uses ADD COLUMN use_count INTEGER NOT NULL DEFAULT 1;
    -- a lock's own low-battery warning without a level: 'low' or 'critical'
    ALTER TABLE lock_state ADD COLUMN battery_warning TEXT;",
    // 11 (issue 15): the code that last opened each lock (its id, name and
    // whether lockhub manages it; never its PIN), for `last_code_used/{id}`.
    "ALTER TABLE lock_state ADD COLUMN last_code TEXT;",
    // 12 (issue 14): a code's PIN lives in its sealed body only; the sealed copy in
    // its own column was written on every save and never read.
    "ALTER TABLE access_codes DROP COLUMN code;",
    // 13 (issue 14): an outbox payload that can hold no PIN (events, device
    // states, masked code states) is stored as it is; sealing each and opening
    // it again to publish was 8 % of the daemon's CPU under a stream of commands.
    "ALTER TABLE outbox ADD COLUMN plain INTEGER NOT NULL DEFAULT 0;",
    // 14 (issue 14): the SHA-256 of the device state last queued for each lock;
    // a fan-out that changes nothing on a lock queues no new `devices/{id}`.
    "ALTER TABLE devices ADD COLUMN state_digest BLOB;",
];

pub fn migrate(conn: &mut Connection) -> Result<()> {
    let known = STEPS.len() as i64;
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > known {
        return Err(StoreError::TooNew { found, known });
    }
    for (i, step) in STEPS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
