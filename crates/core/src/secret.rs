//! Salted hashes for charger passwords and API tokens.
//!
//! Both are machine-generated secrets of high entropy (OCPP security profile 1 asks for 16-40
//! characters), so a fast salted SHA-256 is enough; a deliberately slow hash would turn a connect
//! storm of hundreds of thousands of chargers into minutes of CPU.

use sha2::{Digest, Sha256};

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // getrandom only fails when the OS has no entropy source at all; fall back to the clock
    // mixed through SHA-256 rather than panic in a server.
    if getrandom::fill(&mut buf).is_err() {
        let seed = format!(
            "{:?}{:?}",
            std::time::SystemTime::now(),
            std::thread::current().id()
        );
        let digest = Sha256::digest(seed.as_bytes());
        for (i, b) in buf.iter_mut().enumerate() {
            *b = digest[i % digest.len()];
        }
    }
    hex(&buf)
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

/// `sha256$<salt>$<hex digest of salt||secret>`.
pub fn hash_secret(secret: &str) -> String {
    let salt = random_hex(16);
    format!("sha256${salt}${}", digest(&salt, secret))
}

pub fn verify_secret(secret: &str, stored: &str) -> bool {
    let mut parts = stored.splitn(3, '$');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("sha256"), Some(salt), Some(expected)) => {
            constant_time_eq(digest(salt, secret).as_bytes(), expected.as_bytes())
        }
        _ => false,
    }
}

/// PBKDF2 rounds for new password hashes; the count is stored with each hash, so it can be
/// raised without invalidating existing passwords.
pub const PASSWORD_ROUNDS: u32 = 120_000;

/// A person's password as `pbkdf2-sha256$ROUNDS$SALT$HASH` (hex), with a new random salt:
/// deliberately slow, unlike [`hash_secret`], which guards long random machine credentials.
pub fn hash_password(password: &str) -> String {
    let salt = random_hex(16);
    let out = pbkdf2_sha256(password, &salt, PASSWORD_ROUNDS);
    format!("pbkdf2-sha256${PASSWORD_ROUNDS}${salt}${}", hex(&out))
}

/// Checks a password against a [`hash_password`] hash; anything malformed is a mismatch.
pub fn verify_password(password: &str, stored: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("pbkdf2-sha256"), Some(rounds), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    match rounds.parse::<u32>() {
        Ok(rounds) if (1..=10_000_000).contains(&rounds) => constant_time_eq(
            hex(&pbkdf2_sha256(password, salt, rounds)).as_bytes(),
            hash.as_bytes(),
        ),
        _ => false,
    }
}

fn pbkdf2_sha256(password: &str, salt: &str, rounds: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt.as_bytes(), rounds, &mut out);
    out
}

/// A password derived from a secret and a charger id: how the demo gives each of its
/// thousands of simulated chargers its own credentials without a file of them.
pub fn derive_password(secret: &str, charger_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(secret.as_bytes());
    h.update(b":");
    h.update(charger_id.as_bytes());
    hex(&h.finalize()[..12])
}

/// Unsalted digest used to look an API token up by value.
pub fn token_digest(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn digest(salt: &str, secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(secret.as_bytes());
    hex(&h.finalize())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let h = hash_password("correct horse battery");
        assert!(h.starts_with(&format!("pbkdf2-sha256${PASSWORD_ROUNDS}$")));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterx", &h));
        assert_ne!(h, hash_password("correct horse battery"), "salted");
        let extra = format!("{h}$extra");
        for bad in [
            "",
            "pbkdf2-sha256$x$ab$cd",
            "md5$1$a$b",
            "pbkdf2-sha256$0$a$b",
            &extra,
        ] {
            assert!(!verify_password("correct horse battery", bad), "{bad}");
        }
    }

    #[test]
    fn hash_then_verify() {
        let h = hash_secret("s3cret-password-16");
        assert!(verify_secret("s3cret-password-16", &h));
        assert!(!verify_secret("s3cret-password-17", &h));
        assert!(!verify_secret("s3cret-password-16", "plain"));
        assert_ne!(
            h,
            hash_secret("s3cret-password-16"),
            "salt differs per hash"
        );
    }
}
