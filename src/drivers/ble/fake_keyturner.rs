//! The fake Nuki's lock mechanism, from the API 2.1 spec: Keyturner States,
//! Lock Action (Status ACCEPTED, the new states, Status COMPLETE) and the
//! activity log (Request Log Entries answered with Log Entry messages, then
//! Status COMPLETE). Tests move it as people would: a code at the keypad
//! (logged with the keypad code's id), a turn by hand, the door sensor.

use super::fake_lock::{FakeKeypad, FakeLock};
use super::nuki::error::NukiError;
use super::nuki::frame::{Command, Message};
use super::nuki::states::{
    self, action, lock_state, log_type, trigger, KeyturnerStates, LogEntry, Stamp,
};

/// Log entries the fake lock keeps (a real one keeps far more).
const LOG_CAPACITY: usize = 500;

pub struct FakeKeyturner {
    pub states: KeyturnerStates,
    pub log: Vec<LogEntry>,
    next_index: u32,
    /// Keyturner States and log requests answered (what a battery pays for).
    pub state_reads: u32,
    pub log_reads: u32,
}

fn now_stamp() -> Stamp {
    use chrono::{Datelike, Timelike};
    let t = chrono::Utc::now();
    let y = (t.year() as u16).to_le_bytes();
    [
        y[0],
        y[1],
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
    ]
}

impl Default for FakeKeyturner {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeKeyturner {
    /// Locked, door closed, with some history from before lockhub met it.
    pub fn new() -> FakeKeyturner {
        let mut k = FakeKeyturner {
            states: KeyturnerStates {
                nuki_state: 0x02,
                lock_state: lock_state::LOCKED,
                trigger: trigger::MANUAL,
                time: now_stamp(),
                timezone_offset: 0,
                battery_state: 0x00,
                config_update_count: 1,
                lock_n_go_timer: 0,
                last_action: action::LOCK,
                last_action_trigger: trigger::MANUAL,
                last_action_status: 0,
                door_sensor: 0x02,
            },
            log: Vec::new(),
            next_index: 1,
            state_reads: 0,
            log_reads: 0,
        };
        k.append(
            0,
            "",
            log_type::LOCK_ACTION,
            vec![action::UNLOCK, trigger::MANUAL, 0, 0],
        );
        k.append(
            0,
            "",
            log_type::LOCK_ACTION,
            vec![action::LOCK, trigger::MANUAL, 0, 0],
        );
        k
    }

    /// Whether a (decrypted) command is the mechanism's rather than the keypad's.
    pub fn handles(m: &Message) -> bool {
        match Command::from_u16(m.command) {
            Some(Command::LockAction | Command::RequestLogEntries) => true,
            Some(Command::RequestData) => {
                m.payload[..] == (Command::KeyturnerStates as u16).to_le_bytes()
            }
            _ => false,
        }
    }

    fn append(&mut self, auth_id: u32, name: &str, kind: u8, data: Vec<u8>) {
        self.log.push(LogEntry {
            index: self.next_index,
            time: now_stamp(),
            auth_id,
            name: name.into(),
            kind,
            data,
        });
        self.next_index += 1;
        if self.log.len() > LOG_CAPACITY {
            self.log.remove(0);
        }
    }

    fn moved(&mut self, act: u8, trig: u8) {
        self.states.lock_state = match act {
            action::LOCK | action::FULL_LOCK => lock_state::LOCKED,
            action::UNLATCH => lock_state::UNLATCHED,
            _ => lock_state::UNLOCKED,
        };
        self.states.trigger = trig;
        self.states.last_action = act;
        self.states.last_action_trigger = trig;
        self.states.last_action_status = 0;
        self.states.time = now_stamp();
    }

    /// Someone enters the keypad code `code_id`: the door unlocks (`ok`), or
    /// the code is wrong (logged as "invalid code", nothing moves).
    pub fn keypad_use(&mut self, code_id: u16, name: &str, ok: bool) {
        let status = if ok { 0x00 } else { states::INVALID_CODE };
        let id = code_id.to_le_bytes();
        self.append(
            0,
            name,
            log_type::KEYPAD,
            vec![action::UNLOCK, 0x00, status, id[0], id[1]],
        );
        if ok {
            self.moved(action::UNLOCK, trigger::MANUAL);
        }
    }

    /// Someone turns the lock by hand.
    pub fn manual(&mut self, locked: bool) {
        let act = if locked { action::LOCK } else { action::UNLOCK };
        self.append(
            0,
            "",
            log_type::LOCK_ACTION,
            vec![act, trigger::MANUAL, 0, 0],
        );
        self.moved(act, trigger::MANUAL);
    }

    /// The door sensor sees the door open or close.
    pub fn door(&mut self, open: bool) {
        self.append(0, "", log_type::DOOR_SENSOR, vec![u8::from(!open)]);
        self.states.door_sensor = if open { 0x03 } else { 0x02 };
    }

    /// Answers one decrypted command from `auth_id` (nonces and the security
    /// PIN are the keypad's).
    pub fn on_message(
        &mut self,
        m: &Message,
        auth_id: u32,
        keypad: &mut FakeKeypad,
    ) -> Vec<Message> {
        match self.handle(m, auth_id, keypad) {
            Ok(r) => r,
            Err(e) => vec![FakeLock::error(e, m.command)],
        }
    }

    fn handle(
        &mut self,
        m: &Message,
        auth_id: u32,
        keypad: &mut FakeKeypad,
    ) -> Result<Vec<Message>, NukiError> {
        match Command::from_u16(m.command) {
            Some(Command::RequestData) => {
                self.state_reads += 1;
                Ok(vec![self.states.encode()])
            }
            Some(Command::LockAction) => {
                let (act, nonce) =
                    states::decode_lock_action(m).map_err(|_| NukiError::BadLength)?;
                keypad.take_nonce(&nonce)?;
                if !matches!(
                    act,
                    action::UNLOCK | action::LOCK | action::UNLATCH | action::FULL_LOCK
                ) {
                    return Err(NukiError::BadParameter);
                }
                self.append(
                    auth_id,
                    "lockhub",
                    log_type::LOCK_ACTION,
                    vec![act, trigger::SYSTEM, 0, 0],
                );
                self.moved(act, trigger::SYSTEM);
                Ok(vec![
                    Message::new(Command::Status, vec![0x01]),
                    self.states.encode(),
                    Message::new(Command::Status, vec![0x00]),
                ])
            }
            Some(Command::RequestLogEntries) => {
                let r = states::decode_log_request(m).map_err(|_| NukiError::BadLength)?;
                keypad.take_nonce(&r.nonce)?;
                keypad.check_pin(r.pin)?;
                self.log_reads += 1;
                let mut picked: Vec<&LogEntry> = if r.descending {
                    self.log
                        .iter()
                        .rev()
                        .filter(|e| r.start == 0 || e.index < r.start)
                        .collect()
                } else {
                    self.log
                        .iter()
                        .filter(|e| r.start == 0 || e.index > r.start)
                        .collect()
                };
                picked.truncate(r.count as usize);
                let mut out: Vec<Message> = picked.into_iter().map(LogEntry::encode).collect();
                out.push(Message::new(Command::Status, vec![0x00]));
                Ok(out)
            }
            _ => Err(NukiError::BadLength),
        }
    }
}
