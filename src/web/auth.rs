//! Who may use the installer page over TCP: one password, checked against an
//! Argon2 hash from the config, then a session cookie. (Over the local socket
//! the socket's own permissions decide, and no login is asked.)
//!
//! A session token is 32 random bytes; only its SHA-256 is kept, and the
//! [`SessionToken`] type never prints it. Failed logins are slowed (one second
//! each) and, past ten a minute, refused outright until the minute is over.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a login lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Failed logins allowed per minute before every attempt is refused.
const FAILURES_PER_MINUTE: u32 = 10;
pub const COOKIE: &str = "lockhub_session";

/// Is `hash` an Argon2 PHC string lockhub can verify against?
pub fn check_hash(hash: &str) -> Result<(), String> {
    if hash.is_empty() {
        return Err(
            "required when web.listen is set (make one with `lockhub web hash-password`)".into(),
        );
    }
    let parsed = PasswordHash::new(hash).map_err(|e| format!("not a PHC hash string ({e})"))?;
    if !parsed.algorithm.as_str().starts_with("argon2") {
        return Err(format!(
            "{} is not an Argon2 hash (make one with `lockhub web hash-password`)",
            parsed.algorithm
        ));
    }
    Ok(())
}

/// A PHC string for `password` (argon2id, default parameters, random salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// A session cookie's value. Never printed.
pub struct SessionToken(String);

impl SessionToken {
    pub fn cookie_value(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken(****)")
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    WrongPassword,
    /// Too many failures this minute; nothing was checked.
    TooManyAttempts,
}

pub struct Auth {
    hash: String,
    sessions: Mutex<HashMap<[u8; 32], Instant>>,
    failures: Mutex<(Instant, u32)>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Auth {
    pub fn new(password_hash: &str) -> Auth {
        Auth {
            hash: password_hash.to_owned(),
            sessions: Mutex::default(),
            failures: Mutex::new((Instant::now(), 0)),
        }
    }

    /// Check the password; on success a new session. Blocking (Argon2 is slow on purpose).
    pub fn login(&self, password: &str) -> Result<SessionToken, LoginError> {
        {
            let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            if f.0.elapsed() > Duration::from_secs(60) {
                *f = (Instant::now(), 0);
            }
            if f.1 >= FAILURES_PER_MINUTE {
                return Err(LoginError::TooManyAttempts);
            }
        }
        let ok = PasswordHash::new(&self.hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        if !ok {
            let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            f.1 += 1;
            return Err(LoginError::WrongPassword);
        }
        let bytes: [u8; 32] = rand::random();
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.retain(|_, t| t.elapsed() < SESSION_LIFETIME);
        s.insert(digest(&token), Instant::now());
        Ok(SessionToken(token))
    }

    /// Is this cookie value a live session?
    pub fn valid(&self, token: &str) -> bool {
        let s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.get(&digest(token))
            .is_some_and(|t| t.elapsed() < SESSION_LIFETIME)
    }

    pub fn logout(&self, token: &str) {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.remove(&digest(token));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_needs_the_right_password() {
        let a = Auth::new(&hash_password("correct horse").unwrap());
        assert_eq!(a.login("wrong").unwrap_err(), LoginError::WrongPassword);
        let t = a.login("correct horse").unwrap();
        assert!(a.valid(t.cookie_value()));
        assert!(!a.valid("00"));
        assert_eq!(format!("{t:?}"), "SessionToken(****)");
        a.logout(t.cookie_value());
        assert!(!a.valid(t.cookie_value()));
    }

    #[test]
    fn many_failures_lock_out_even_the_right_password() {
        let a = Auth::new(&hash_password("pw").unwrap());
        for _ in 0..FAILURES_PER_MINUTE {
            assert_eq!(a.login("nope").unwrap_err(), LoginError::WrongPassword);
        }
        assert_eq!(a.login("pw").unwrap_err(), LoginError::TooManyAttempts);
    }

    #[test]
    fn hashes_are_checked() {
        assert!(check_hash("").is_err());
        assert!(check_hash("plain").is_err());
        assert!(check_hash(&hash_password("x").unwrap()).is_ok());
    }
}
