//! Who may use the dashboard: whoever holds the login token. Opening `/?token=TOKEN` once
//! starts a session (a random id in an HttpOnly, SameSite=Strict cookie); the API takes the
//! token itself as `Authorization: Bearer TOKEN`. Every POST made with a session cookie
//! must carry that session's CSRF token, and an Origin header, when sent, must be the
//! dashboard's own: another site cannot make a logged-in browser act.
//!
//! Tokens are compared through their BLAKE3 hashes, whose equality is constant-time.

use cairn::{Error, Result};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// The cookie that carries a session id.
pub const COOKIE: &str = "cairn_ui_session";

/// A session ends this long after it started.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// The token that logs in, kept only as its hash once printed.
pub struct LoginToken {
    /// The token itself, to print at start (None when it came from the environment:
    /// the operator has it already).
    pub printable: Option<Zeroizing<String>>,
    hash: blake3::Hash,
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut b = Zeroizing::new(vec![0u8; bytes]);
    getrandom::fill(&mut b).map_err(|e| Error::invalid(format!("no random numbers from the system: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl LoginToken {
    /// CAIRN_UI_TOKEN if set (at least 16 characters), else 32 random bytes.
    pub fn from_env_or_new() -> Result<LoginToken> {
        // Taken out of the environment at start, like every secret (repo::secrets).
        match cairn::repo::secrets::from_environment("CAIRN_UI_TOKEN") {
            Some(t) => {
                let t = Zeroizing::new(String::from_utf8_lossy(&t).into_owned());
                if t.trim().len() < 16 {
                    return Err(Error::invalid(
                        "CAIRN_UI_TOKEN is shorter than 16 characters: give a longer one, or unset it to get a random one",
                    ));
                }
                Ok(LoginToken { printable: None, hash: blake3::hash(t.trim().as_bytes()) })
            }
            None => {
                let t = Zeroizing::new(random_hex(32)?);
                Ok(LoginToken { hash: blake3::hash(t.as_bytes()), printable: Some(t) })
            }
        }
    }

    pub fn matches(&self, given: &str) -> bool {
        blake3::hash(given.trim().as_bytes()) == self.hash
    }
}

struct Session {
    csrf: String,
    started: Instant,
}

/// Live sessions by id.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

impl Sessions {
    /// A new session: its id (for the cookie).
    pub fn start(&self) -> Result<String> {
        let id = random_hex(32)?;
        let csrf = random_hex(32)?;
        let mut all = self.0.lock().expect("sessions lock");
        all.retain(|_, s| s.started.elapsed() < SESSION_LIFETIME);
        all.insert(id.clone(), Session { csrf, started: Instant::now() });
        Ok(id)
    }

    /// The CSRF token of a live session.
    pub fn csrf(&self, id: &str) -> Option<String> {
        let all = self.0.lock().expect("sessions lock");
        all.get(id).filter(|s| s.started.elapsed() < SESSION_LIFETIME).map(|s| s.csrf.clone())
    }
}

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A browser with a session cookie; its CSRF token.
    Session { csrf: String },
    /// A client that sent the token itself (no cookie, so no cross-site request).
    Bearer,
}

/// The value of cookie `name` in a Cookie header.
pub fn cookie<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header.split(';').map(str::trim).find_map(|c| c.strip_prefix(name)?.strip_prefix('='))
}

/// Whether a form's CSRF field is the session's.
pub fn csrf_ok(expected: &str, given: Option<&str>) -> bool {
    given.is_some_and(|g| blake3::hash(g.as_bytes()) == blake3::hash(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_cookie_is_found_among_others_and_not_by_prefix() {
        let h = "a=1; cairn_ui_session_x=2; cairn_ui_session=abc; b=3";
        assert_eq!(cookie(h, COOKIE), Some("abc"));
        assert_eq!(cookie("cairn_ui_sessionx=1", COOKIE), None);
    }

    #[test]
    fn csrf_needs_the_exact_token() {
        assert!(csrf_ok("abc", Some("abc")));
        assert!(!csrf_ok("abc", Some("abd")));
        assert!(!csrf_ok("abc", None));
        assert!(!csrf_ok("abc", Some("")));
    }

    #[test]
    fn sessions_are_random_and_carry_their_own_csrf() {
        let s = Sessions::default();
        let (a, b) = (s.start().unwrap(), s.start().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_ne!(s.csrf(&a), s.csrf(&b));
        assert!(s.csrf("not-a-session").is_none());
    }
}
