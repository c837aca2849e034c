//! Console sessions: who signed in (the admin, or one API key through its REST token), the
//! session cookie, the per-session CSRF token, and the admin password check. Sessions live in
//! memory: a restart signs everyone out, which costs an operator one login.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::crypto;

pub(crate) const COOKIE_NAME: &str = "hookgate_console";
/// However active, a session ends this long after its login.
const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Beyond this, the stalest session makes room for a new one.
const MAX_SESSIONS: usize = 10_000;

/// Who a session acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principal {
    /// Signed in with the configured admin password: every company.
    Admin,
    /// Signed in with a key's REST token: that key's company only.
    Key { key_id: String, company_id: String },
}

#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub principal: Principal,
    /// Sent back by the page in `X-CSRF-Token` on every state-changing call.
    pub csrf_token: String,
    started: Instant,
    last_seen: Instant,
}

/// The signed-in sessions, by the SHA-256 of their cookie value (the value itself is kept
/// nowhere, and lookups never compare a secret byte by byte).
pub(crate) struct Sessions {
    idle: Duration,
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    pub(crate) fn new(idle_secs: u64) -> Sessions {
        Sessions {
            idle: Duration::from_secs(idle_secs),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Starts a session; returns the cookie value and the session.
    pub(crate) fn start(&self, principal: Principal) -> (String, Session) {
        let cookie = crypto::random_token("");
        let now = Instant::now();
        let session = Session {
            principal,
            csrf_token: crypto::random_token(""),
            started: now,
            last_seen: now,
        };
        let mut map = self.map.lock().expect("session map");
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| self.alive(s, now));
            if map.len() >= MAX_SESSIONS
                && let Some(stalest) = map
                    .iter()
                    .min_by_key(|(_, s)| s.last_seen)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&stalest);
            }
        }
        map.insert(crypto::sha256_hex(cookie.as_bytes()), session.clone());
        (cookie, session)
    }

    /// The live session of this cookie value, marked as seen now.
    pub(crate) fn find(&self, cookie: &str) -> Option<Session> {
        let id = crypto::sha256_hex(cookie.as_bytes());
        let now = Instant::now();
        let mut map = self.map.lock().expect("session map");
        match map.get_mut(&id) {
            Some(s) if self.alive(s, now) => {
                s.last_seen = now;
                Some(s.clone())
            }
            Some(_) => {
                map.remove(&id);
                None
            }
            None => None,
        }
    }

    pub(crate) fn end(&self, cookie: &str) {
        let id = crypto::sha256_hex(cookie.as_bytes());
        self.map.lock().expect("session map").remove(&id);
    }

    /// Ends every session signed in with this key (it was revoked).
    pub(crate) fn end_for_key(&self, revoked: &str) {
        self.map.lock().expect("session map").retain(
            |_, s| !matches!(&s.principal, Principal::Key { key_id, .. } if key_id == revoked),
        );
    }

    fn alive(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last_seen) < self.idle && now.duration_since(s.started) < LIFETIME
    }
}

/// Whether `given` is the configured admin password. Both sides are hashed first, so the
/// comparison is constant-time whatever their lengths; an empty setting matches nothing.
pub(crate) fn admin_password_matches(configured: &str, given: &str) -> bool {
    !configured.is_empty()
        && crypto::ct_eq(
            crypto::sha256_hex(configured.as_bytes()).as_bytes(),
            crypto::sha256_hex(given.as_bytes()).as_bytes(),
        )
}

/// The session cookie's value in a `Cookie` request header.
pub(crate) fn cookie_value(header: Option<&str>) -> Option<&str> {
    header?
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value: unreadable by scripts, never sent by another site's page, only to
/// the console's paths; `Secure` when the gateway is served over https.
pub(crate) fn set_cookie(value: &str, secure: bool, max_age_secs: u64) -> String {
    format!(
        "{COOKIE_NAME}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the cookie.
pub(crate) fn clear_cookie(secure: bool) -> String {
    set_cookie("", secure, 0)
}

pub(crate) fn max_age_secs() -> u64 {
    LIFETIME.as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_password_needs_an_exact_match_and_a_setting() {
        assert!(admin_password_matches(
            "correct horse battery",
            "correct horse battery"
        ));
        assert!(!admin_password_matches(
            "correct horse battery",
            "correct horse batter"
        ));
        assert!(!admin_password_matches("correct horse battery", ""));
        assert!(!admin_password_matches("", ""));
    }

    #[test]
    fn finds_the_cookie_among_others() {
        let header = "theme=dark; hookgate_console=abc123; other=x";
        assert_eq!(cookie_value(Some(header)), Some("abc123"));
        assert_eq!(cookie_value(Some("hookgate_console=")), None);
        assert_eq!(cookie_value(Some("xhookgate_console=abc")), None);
        assert_eq!(cookie_value(None), None);
    }

    #[test]
    fn sessions_expire_when_idle_and_end_with_their_key() {
        let sessions = Sessions::new(3600);
        let key = Principal::Key {
            key_id: "hk_1".into(),
            company_id: "co_1".into(),
        };
        let (cookie, session) = sessions.start(key.clone());
        assert_eq!(
            sessions.find(&cookie).unwrap().csrf_token,
            session.csrf_token
        );
        let (admin_cookie, _) = sessions.start(Principal::Admin);
        sessions.end_for_key("hk_1");
        assert!(sessions.find(&cookie).is_none());
        assert!(sessions.find(&admin_cookie).is_some());
        sessions.end(&admin_cookie);
        assert!(sessions.find(&admin_cookie).is_none());

        let idle = Sessions::new(0);
        let (cookie, _) = idle.start(key);
        assert!(idle.find(&cookie).is_none());
    }
}
