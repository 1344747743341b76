//! Choosing a PIN that every lock of a group accepts. Pure: no I/O, no clock;
//! the random source is a parameter (the OS's generator in production).
//!
//! A lock accepts a code when the length is one it supports, every one of its
//! `code_constraints` holds, and no code already on it (managed by lockhub or
//! not) is the same PIN or, for locks with `unique_first_four_digits`, starts
//! with the same four digits. Independently of any lock, lockhub never *chooses*
//! a weak PIN (all one digit, or a straight run such as 1234 or 9876).

use crate::model::{Capabilities, CodeConstraint, Pin};
use rand::Rng;
use std::fmt;

/// The seeds' rule for any code: digits only, 4 to 9 long.
pub const MIN_CODE_LENGTH: usize = 4;
pub const MAX_CODE_LENGTH: usize = 9;

/// How many random candidates to try before scanning the space exhaustively.
const RANDOM_TRIES: usize = 256;
/// Lengths up to this are scanned exhaustively when random tries fail.
const MAX_SCAN_LENGTH: u32 = 6;

/// One lock, as far as choosing its PIN goes.
#[derive(Debug, Clone, Copy)]
pub struct LockView<'a> {
    pub capabilities: &'a Capabilities,
    /// Every code on the lock now or reserved for it (managed or unmanaged).
    pub existing: &'a [Pin],
    /// PINs the lock held recently (as keyed hashes): never *chosen* again, so
    /// a past guest's PIN cannot open the door during a new guest's stay.
    /// `None` where it does not apply (a PIN the cloud gives, a lock's own rules).
    pub recent: Option<&'a RecentPins>,
}

impl<'a> LockView<'a> {
    pub fn new(capabilities: &'a Capabilities, existing: &'a [Pin]) -> Self {
        LockView {
            capabilities,
            existing,
            recent: None,
        }
    }
}

/// The keyed hashes (HMAC-SHA256) of the PINs one lock held recently: the
/// history survives the purge of old codes without keeping any PIN.
#[derive(Debug, Clone, Default)]
pub struct RecentPins {
    key: [u8; 32],
    digests: std::collections::HashSet<[u8; 32]>,
}

impl RecentPins {
    pub fn new(key: [u8; 32], digests: impl IntoIterator<Item = [u8; 32]>) -> Self {
        RecentPins {
            key,
            digests: digests.into_iter().collect(),
        }
    }

    pub fn held(&self, code: &str) -> bool {
        !self.digests.is_empty() && self.digests.contains(&digest(&self.key, code))
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }
}

/// HMAC-SHA256 of a PIN under the hub's history key.
pub fn digest(key: &[u8; 32], code: &str) -> [u8; 32] {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(code.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Why one lock cannot take a given code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The code's length is not one the lock supports.
    UnsupportedLength { length: usize, supported: Vec<u8> },
    /// The code breaks one of the lock's constraints.
    Constraint(CodeConstraint),
    /// The lock already holds this very code.
    DuplicateCode,
    /// The lock chooses its own codes.
    CannotSpecifyPinCode,
    /// No length is supported by every lock of the group.
    NoCommonLength,
    /// No code of the chosen length satisfies the lock together with the others.
    NoCodeAvailable,
}

impl Refusal {
    /// The public error code this refusal maps to.
    pub fn error_code(&self) -> &'static str {
        match self {
            Refusal::DuplicateCode => "duplicate_code_on_device",
            _ => "code_constraints_violated",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::UnsupportedLength { length, supported } => {
                write!(
                    f,
                    "code length {length} is not supported (supported: {supported:?})"
                )
            }
            Refusal::Constraint(c) => {
                write!(f, "code breaks the lock's rule {}", constraint_name(c))
            }
            Refusal::DuplicateCode => f.write_str("the lock already holds this code"),
            Refusal::CannotSpecifyPinCode => f.write_str("the lock chooses its own codes"),
            Refusal::NoCommonLength => {
                f.write_str("no code length is supported by every lock of the group")
            }
            Refusal::NoCodeAvailable => {
                f.write_str("no free code fits this lock together with the others")
            }
        }
    }
}

/// The snake_case name of a constraint, as the public API spells it.
pub fn constraint_name(c: &CodeConstraint) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| {
            v.get("constraint_type")
                .and_then(|t| t.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Syntax of any code the cloud sends: digits only, 4 to 9 long.
pub fn validate_syntax(code: &str) -> Result<(), String> {
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err("code must contain digits only".into());
    }
    if !(MIN_CODE_LENGTH..=MAX_CODE_LENGTH).contains(&code.len()) {
        return Err(format!(
            "code must be {MIN_CODE_LENGTH} to {MAX_CODE_LENGTH} digits long"
        ));
    }
    Ok(())
}

fn digits(code: &str) -> Vec<u8> {
    code.bytes().map(|b| b - b'0').collect()
}

/// Every step +1 (or every step -1), with 9 -> 0 counting as a step up (7890).
fn is_straight_run(d: &[u8]) -> bool {
    if d.len() < 2 {
        return false;
    }
    let up = d.windows(2).all(|w| (w[0] + 1) % 10 == w[1]);
    let down = d.windows(2).all(|w| (w[1] + 1) % 10 == w[0]);
    up || down
}

fn has_triple_run(d: &[u8]) -> bool {
    d.windows(3)
        .any(|w| (w[0] + 1 == w[1] && w[1] + 1 == w[2]) || (w[0] == w[1] + 1 && w[1] == w[2] + 1))
}

/// A PIN lockhub will never choose itself, whatever the locks allow.
pub fn is_weak(code: &str) -> bool {
    let d = digits(code);
    d.iter().all(|&x| x == d[0]) || is_straight_run(&d)
}

/// Does `code` satisfy one constraint (on its own, without the lock's other codes)?
pub fn satisfies(code: &str, c: &CodeConstraint) -> bool {
    let d = digits(code);
    match c {
        CodeConstraint::NoZeros => !d.contains(&0),
        CodeConstraint::CannotStartWith12 => !code.starts_with("12"),
        CodeConstraint::NoTripleConsecutiveInts => !has_triple_run(&d),
        CodeConstraint::NoAscendingOrDescendingSequence => !is_straight_run(&d),
        CodeConstraint::AtLeastThreeUniqueDigits => {
            let mut seen = [false; 10];
            d.iter().for_each(|&x| seen[x as usize] = true);
            seen.iter().filter(|s| **s).count() >= 3
        }
        CodeConstraint::NoAllSameDigits => !d.iter().all(|&x| x == d[0]),
        CodeConstraint::CannotContain089 => !d.iter().any(|x| matches!(x, 0 | 8 | 9)),
        CodeConstraint::CannotContain0789 => !d.iter().any(|x| matches!(x, 0 | 7 | 8 | 9)),
        // These depend on context or are not about the PIN's digits.
        CodeConstraint::UniqueFirstFourDigits
        | CodeConstraint::CannotSpecifyPinCode
        | CodeConstraint::NameLength { .. } => true,
    }
}

fn first_four(code: &str) -> &str {
    &code[..code.len().min(4)]
}

/// Why `lock` would refuse `code`, or `Ok` if it takes it.
pub fn check(code: &str, lock: &LockView<'_>) -> Result<(), Refusal> {
    let caps = lock.capabilities;
    if caps.has(&CodeConstraint::CannotSpecifyPinCode) {
        return Err(Refusal::CannotSpecifyPinCode);
    }
    if !caps
        .supported_code_lengths
        .iter()
        .any(|&l| l as usize == code.len())
    {
        return Err(Refusal::UnsupportedLength {
            length: code.len(),
            supported: caps.supported_code_lengths.clone(),
        });
    }
    if let Some(c) = caps.code_constraints.iter().find(|c| !satisfies(code, c)) {
        return Err(Refusal::Constraint(c.clone()));
    }
    if lock.existing.iter().any(|p| p.expose() == code) {
        return Err(Refusal::DuplicateCode);
    }
    if caps.has(&CodeConstraint::UniqueFirstFourDigits)
        && lock
            .existing
            .iter()
            .any(|p| first_four(p.expose()) == first_four(code))
    {
        return Err(Refusal::Constraint(CodeConstraint::UniqueFirstFourDigits));
    }
    Ok(())
}

/// The length for a group: `preferred` if every lock supports it, else the
/// shortest length every lock supports; `None` when they share no length.
pub fn choose_length(preferred: Option<u8>, locks: &[LockView<'_>]) -> Option<u8> {
    let common = |l: u8| {
        locks
            .iter()
            .all(|v| v.capabilities.supported_code_lengths.contains(&l))
    };
    if let Some(p) = preferred.filter(|&p| common(p)) {
        return Some(p);
    }
    (MIN_CODE_LENGTH as u8..=MAX_CODE_LENGTH as u8).find(|&l| common(l))
}

/// The digits worth drawing from: those no lock of the group excludes outright.
fn alphabet(locks: &[LockView<'_>]) -> Vec<u8> {
    (0..10u8)
        .filter(|&x| {
            let s = [b'0' + x; 1];
            let one = std::str::from_utf8(&s).unwrap();
            locks.iter().all(|v| {
                v.capabilities.code_constraints.iter().all(|c| match c {
                    CodeConstraint::NoZeros
                    | CodeConstraint::CannotContain089
                    | CodeConstraint::CannotContain0789 => satisfies(one, c),
                    _ => true,
                })
            })
        })
        .collect()
}

fn acceptable(code: &str, locks: &[LockView<'_>]) -> bool {
    !is_weak(code)
        && locks
            .iter()
            .all(|v| check(code, v).is_ok() && !v.recent.is_some_and(|r| r.held(code)))
}

/// One PIN of `length` digits that every lock accepts, drawn at random from
/// `rng`; `None` if there is none.
pub fn choose_shared<R: Rng + ?Sized>(
    rng: &mut R,
    length: u8,
    locks: &[LockView<'_>],
) -> Option<Pin> {
    let alpha = alphabet(locks);
    if alpha.is_empty() {
        return None;
    }
    let len = length as usize;
    let mut buf = String::with_capacity(len);
    for _ in 0..RANDOM_TRIES {
        buf.clear();
        for _ in 0..len {
            buf.push((b'0' + alpha[rng.gen_range(0..alpha.len())]) as char);
        }
        if acceptable(&buf, locks) {
            return Some(Pin::new(buf));
        }
    }
    // Nearly full space: walk all of it from a random start so a free code is
    // found whenever one exists.
    if length as u32 > MAX_SCAN_LENGTH {
        return None;
    }
    let base = alpha.len() as u64;
    let total = base.pow(length as u32);
    let start = rng.gen_range(0..total);
    (0..total).find_map(|i| {
        let mut n = (start + i) % total;
        buf.clear();
        for _ in 0..len {
            buf.push((b'0' + alpha[(n % base) as usize]) as char);
            n /= base;
        }
        acceptable(&buf, locks).then(|| Pin::new(buf.clone()))
    })
}

/// A code for the whole group, or the first reason some lock cannot share one.
/// On success, the code satisfies every lock; on failure, the returned
/// refusals name each lock (by index) that stands in the way.
pub fn choose_for_group<R: Rng + ?Sized>(
    rng: &mut R,
    preferred_length: Option<u8>,
    locks: &[LockView<'_>],
) -> Result<Pin, Vec<(usize, Refusal)>> {
    let blocked: Vec<(usize, Refusal)> = locks
        .iter()
        .enumerate()
        .filter(|(_, v)| v.capabilities.has(&CodeConstraint::CannotSpecifyPinCode))
        .map(|(i, _)| (i, Refusal::CannotSpecifyPinCode))
        .collect();
    if !blocked.is_empty() {
        return Err(blocked);
    }
    let Some(length) = choose_length(preferred_length, locks) else {
        return Err(lengths_in_the_way(preferred_length, locks));
    };
    if let Some(pin) = choose_shared(rng, length, locks) {
        return Ok(pin);
    }
    // Find which locks make it impossible: each lock alone must be solvable.
    let lonely: Vec<(usize, Refusal)> = locks
        .iter()
        .enumerate()
        .filter(|(_, v)| choose_shared(rng, length, std::slice::from_ref(v)).is_none())
        .map(|(i, _)| (i, Refusal::NoCodeAvailable))
        .collect();
    if lonely.is_empty() {
        Err((0..locks.len())
            .map(|i| (i, Refusal::NoCodeAvailable))
            .collect())
    } else {
        Err(lonely)
    }
}

/// With no common length, the locks in the way: those lacking the preferred
/// length, or (with no preference) the length most locks share, shortest first.
fn lengths_in_the_way(preferred: Option<u8>, locks: &[LockView<'_>]) -> Vec<(usize, Refusal)> {
    let supporters = |l: &u8| {
        locks
            .iter()
            .filter(|v| v.capabilities.supported_code_lengths.contains(l))
            .count()
    };
    let majority = preferred
        .filter(|p| supporters(p) > 0)
        .or_else(|| {
            (MIN_CODE_LENGTH as u8..=MAX_CODE_LENGTH as u8)
                .min_by_key(|l| (std::cmp::Reverse(supporters(l)), *l))
        })
        .unwrap_or(4);
    locks
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.capabilities.supported_code_lengths.contains(&majority))
        .map(|(i, v)| {
            (
                i,
                Refusal::UnsupportedLength {
                    length: majority as usize,
                    supported: v.capabilities.supported_code_lengths.clone(),
                },
            )
        })
        .collect()
}

/// A code of its own for one lock (the `create_random_code` fallback).
pub fn choose_for_lock<R: Rng + ?Sized>(
    rng: &mut R,
    preferred_length: Option<u8>,
    lock: &LockView<'_>,
) -> Result<Pin, Refusal> {
    choose_for_group(rng, preferred_length, std::slice::from_ref(lock))
        .map_err(|mut v| v.pop().map(|(_, r)| r).unwrap_or(Refusal::NoCodeAvailable))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    fn caps(lengths: &[u8], constraints: Vec<CodeConstraint>) -> Capabilities {
        Capabilities {
            supported_code_lengths: lengths.to_vec(),
            code_constraints: constraints,
            max_active_codes_supported: 30,
            supports_native_scheduling: false,
            supports_backup_access_code_pool: false,
            can_program_online_access_codes: true,
            supports_remote_lock: false,
        }
    }

    fn nuki() -> Capabilities {
        caps(
            &[6],
            vec![CodeConstraint::NoZeros, CodeConstraint::CannotStartWith12],
        )
    }

    #[test]
    fn weak_codes() {
        for weak in ["1111", "1234", "4321", "7890", "0987", "999999", "3456789"] {
            assert!(is_weak(weak), "{weak}");
        }
        for ok in ["5974", "1235", "2580", "1212"] {
            assert!(!is_weak(ok), "{ok}");
        }
    }

    #[test]
    fn constraints_by_example() {
        use CodeConstraint::*;
        assert!(!satisfies("1205", &NoZeros));
        assert!(!satisfies("129999", &CannotStartWith12));
        assert!(satisfies("212999", &CannotStartWith12));
        assert!(!satisfies("9345", &NoTripleConsecutiveInts));
        assert!(!satisfies("9543", &NoTripleConsecutiveInts));
        assert!(satisfies("9355", &NoTripleConsecutiveInts));
        assert!(!satisfies("1234", &NoAscendingOrDescendingSequence));
        assert!(!satisfies("1122", &AtLeastThreeUniqueDigits));
        assert!(!satisfies("7777", &NoAllSameDigits));
        assert!(!satisfies("1238", &CannotContain089));
        assert!(!satisfies("1237", &CannotContain0789));
        assert!(satisfies("1236", &CannotContain0789));
    }

    #[test]
    fn schlage_first_four_digits_must_be_unique() {
        let c = caps(
            &[4, 5, 6, 7, 8],
            vec![CodeConstraint::UniqueFirstFourDigits],
        );
        let existing = [Pin::new("59741")];
        let lock = LockView::new(&c, &existing);
        assert_eq!(
            check("5974", &lock),
            Err(Refusal::Constraint(CodeConstraint::UniqueFirstFourDigits))
        );
        assert!(check("5975", &lock).is_ok());
    }

    #[test]
    fn four_digit_lock_and_nuki_cannot_share() {
        let four = caps(&[4], vec![]);
        let n = nuki();
        let locks = [LockView::new(&four, &[]), LockView::new(&n, &[])];
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let err = choose_for_group(&mut rng, Some(4), &locks).unwrap_err();
        assert!(!err.is_empty());
        assert!(matches!(err[0].1, Refusal::UnsupportedLength { .. }));
        // Each alone gets a code of its own.
        let own = choose_for_lock(&mut rng, Some(4), &locks[1]).unwrap();
        assert_eq!(own.len(), 6);
        assert!(check(own.expose(), &locks[1]).is_ok());
    }

    #[test]
    fn preferred_length_falls_back_to_shortest_common() {
        let a = caps(&[4, 5, 6], vec![]);
        let b = caps(&[5, 6, 8], vec![]);
        let locks = [LockView::new(&a, &[]), LockView::new(&b, &[])];
        assert_eq!(choose_length(Some(4), &locks), Some(5));
        assert_eq!(choose_length(Some(6), &locks), Some(6));
        assert_eq!(choose_length(None, &locks), Some(5));
    }

    #[test]
    fn a_nearly_full_lock_still_gets_the_last_free_code() {
        let c = caps(&[4], vec![CodeConstraint::CannotContain0789]);
        // Digits 1-6 only: 6^4 = 1296 codes. Occupy all but one non-weak code.
        let mut all: Vec<Pin> = Vec::new();
        for n in 0..1296u32 {
            let mut m = n;
            let s: String = (0..4)
                .map(|_| {
                    let d = (m % 6) as u8 + 1;
                    m /= 6;
                    (b'0' + d) as char
                })
                .collect();
            if s != "2516" {
                all.push(Pin::new(s));
            }
        }
        let lock = LockView::new(&c, &all);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        assert_eq!(
            choose_shared(&mut rng, 4, &[lock]).unwrap().expose(),
            "2516"
        );
        all.push(Pin::new("2516"));
        let lock = LockView::new(&c, &all);
        assert!(choose_shared(&mut rng, 4, &[lock]).is_none());
    }

    #[test]
    fn a_recently_held_pin_is_never_chosen() {
        // Digits 1-6, four long: mark every acceptable code as held but one.
        let c = caps(&[4], vec![CodeConstraint::CannotContain0789]);
        let key = [7u8; 32];
        let mut held = Vec::new();
        for n in 0..1296u32 {
            let mut m = n;
            let s: String = (0..4)
                .map(|_| {
                    let d = (m % 6) as u8 + 1;
                    m /= 6;
                    (b'0' + d) as char
                })
                .collect();
            if s != "3625" {
                held.push(digest(&key, &s));
            }
        }
        let recent = RecentPins::new(key, held);
        let mut lock = LockView::new(&c, &[]);
        lock.recent = Some(&recent);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        assert_eq!(
            choose_for_lock(&mut rng, None, &lock).unwrap().expose(),
            "3625"
        );
        // Another key does not match: the hashes are keyed.
        let other = RecentPins::new([8u8; 32], [digest(&key, "3625")]);
        assert!(!other.held("3625"));
        assert!(RecentPins::new(key, [digest(&key, "3625")]).held("3625"));
    }

    fn any_constraint() -> impl Strategy<Value = CodeConstraint> {
        use CodeConstraint::*;
        prop_oneof![
            Just(NoZeros),
            Just(CannotStartWith12),
            Just(NoTripleConsecutiveInts),
            Just(NoAscendingOrDescendingSequence),
            Just(AtLeastThreeUniqueDigits),
            Just(NoAllSameDigits),
            Just(CannotContain089),
            Just(CannotContain0789),
            Just(UniqueFirstFourDigits),
        ]
    }

    fn any_caps() -> impl Strategy<Value = Capabilities> {
        (
            proptest::collection::btree_set(4u8..=9, 1..4),
            proptest::collection::vec(any_constraint(), 0..4),
        )
            .prop_map(|(l, c)| caps(&l.into_iter().collect::<Vec<_>>(), c))
    }

    fn any_code() -> impl Strategy<Value = String> {
        "[0-9]{4,9}"
    }

    proptest! {
        /// Every chosen PIN satisfies every lock of the group, and is never weak.
        #[test]
        fn chosen_pin_satisfies_every_lock(
            group in proptest::collection::vec(
                (any_caps(), proptest::collection::vec(any_code(), 0..20)), 1..6),
            preferred in proptest::option::of(4u8..=9),
            seed in any::<u64>(),
        ) {
            let existing: Vec<Vec<Pin>> = group.iter()
                .map(|(_, e)| e.iter().cloned().map(Pin::new).collect()).collect();
            let views: Vec<LockView> = group.iter().zip(&existing)
                .map(|((c, _), e)| LockView::new(c, e)).collect();
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            match choose_for_group(&mut rng, preferred, &views) {
                Ok(pin) => {
                    prop_assert!(!is_weak(pin.expose()));
                    for v in &views {
                        prop_assert_eq!(check(pin.expose(), v), Ok(()));
                    }
                    if let Some(p) = preferred {
                        if views.iter().all(|v| v.capabilities.supported_code_lengths.contains(&p)) {
                            prop_assert_eq!(pin.len(), p as usize);
                        }
                    }
                }
                Err(refusals) => prop_assert!(!refusals.is_empty()),
            }
        }
    }
}
