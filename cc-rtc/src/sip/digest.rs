//! SIP digest authentication (RFC 3261 §22.4 with RFC 2617 `qop=auth`, MD5), both sides.
//!
//! A client parses the server's challenge with [`DigestChallenge::parse`] and answers it with
//! [`DigestChallenge::authorization`]. A server (a simulated registrar) issues
//! [`DigestChallenge::new`] as `WWW-Authenticate` and checks the answer with
//! [`DigestAuthorization::parse`] and [`DigestAuthorization::verify`].
//!
//! ```
//! use cc_rtc::sip::{DigestAuthorization, DigestChallenge, Method};
//!
//! let challenge = DigestChallenge::new("sip.example", "n0nce");
//! let header = challenge.header_value(); // send in a 401 as WWW-Authenticate
//!
//! let parsed = DigestChallenge::parse(&header).unwrap();
//! let answer = parsed
//!     .authorization("1000", "secret", &Method::Register, "sip:sip.example", 1, "c0ffee")
//!     .unwrap();
//!
//! let auth = DigestAuthorization::parse(&answer).unwrap();
//! assert!(auth.verify(&Method::Register, "secret"));
//! assert!(!auth.verify(&Method::Register, "wrong"));
//! ```

use std::fmt::Write as _;

use md5::{Digest, Md5};
use rsipstack::sip::typed::tokenizers::AuthTokenizer;

use super::codec::Method;

/// A `WWW-Authenticate` / `Proxy-Authenticate` digest challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestChallenge {
    /// `realm`
    pub realm: String,
    /// `nonce`
    pub nonce: String,
    /// `opaque`, echoed back when present.
    pub opaque: Option<String>,
    /// `algorithm` as given (only MD5 is supported; absent means MD5).
    pub algorithm: Option<String>,
    /// The `qop` options offered (`auth`, `auth-int`); empty for an RFC 2069 challenge.
    pub qop: Vec<String>,
    /// `stale=true`: the nonce expired but the credentials were right.
    pub stale: bool,
}

impl DigestChallenge {
    /// A challenge with `qop="auth"` and `algorithm=MD5` (for servers).
    pub fn new(realm: impl Into<String>, nonce: impl Into<String>) -> Self {
        DigestChallenge {
            realm: realm.into(),
            nonce: nonce.into(),
            opaque: None,
            algorithm: Some("MD5".to_owned()),
            qop: vec!["auth".to_owned()],
            stale: false,
        }
    }

    /// Parses a header value (`Digest realm="..", nonce="..", qop="auth"`).
    pub fn parse(value: &str) -> Result<Self, String> {
        let tok = AuthTokenizer::parse(value).map_err(|e| e.to_string())?;
        if !tok.scheme.eq_ignore_ascii_case("Digest") {
            return Err(format!("auth scheme `{}` is not Digest", tok.scheme));
        }
        let get = |name: &str| {
            tok.params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| (*v).to_owned())
        };
        Ok(DigestChallenge {
            realm: get("realm").ok_or("challenge without realm")?,
            nonce: get("nonce").ok_or("challenge without nonce")?,
            opaque: get("opaque"),
            algorithm: get("algorithm"),
            qop: get("qop")
                .map(|q| {
                    q.split(',')
                        .map(|s| s.trim().to_ascii_lowercase())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// The header value of this challenge.
    pub fn header_value(&self) -> String {
        let mut out = format!("Digest realm=\"{}\", nonce=\"{}\"", self.realm, self.nonce);
        if let Some(opaque) = &self.opaque {
            let _ = write!(out, ", opaque=\"{opaque}\"");
        }
        if self.stale {
            out.push_str(", stale=true");
        }
        if let Some(algorithm) = &self.algorithm {
            let _ = write!(out, ", algorithm={algorithm}");
        }
        if !self.qop.is_empty() {
            let _ = write!(out, ", qop=\"{}\"", self.qop.join(","));
        }
        out
    }

    /// The `Authorization` / `Proxy-Authorization` value answering this challenge for a
    /// request `method uri`. `nc` is the nonce count (1 for the first use of this nonce),
    /// `cnonce` a fresh client nonce. Fails for algorithms other than MD5 and for a
    /// challenge that offers only `auth-int`.
    pub fn authorization(
        &self,
        username: &str,
        password: &str,
        method: &Method,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> Result<String, String> {
        if let Some(alg) = &self.algorithm
            && !alg.eq_ignore_ascii_case("MD5")
        {
            return Err(format!(
                "digest algorithm `{alg}` is not supported (MD5 only)"
            ));
        }
        let qop_auth = self.qop.iter().any(|q| q == "auth");
        if !self.qop.is_empty() && !qop_auth {
            return Err(format!(
                "digest qop `{}` is not supported (auth only)",
                self.qop.join(",")
            ));
        }
        let nc_text = format!("{nc:08x}");
        let response = compute(
            username,
            &self.realm,
            password,
            method,
            uri,
            &self.nonce,
            qop_auth.then_some((nc_text.as_str(), cnonce)),
        );
        let mut out = format!(
            "Digest username=\"{username}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\"",
            self.realm, self.nonce
        );
        if self.algorithm.is_some() {
            out.push_str(", algorithm=MD5");
        }
        if let Some(opaque) = &self.opaque {
            let _ = write!(out, ", opaque=\"{opaque}\"");
        }
        if qop_auth {
            let _ = write!(out, ", qop=auth, cnonce=\"{cnonce}\", nc={nc_text}");
        }
        Ok(out)
    }
}

/// A parsed `Authorization` / `Proxy-Authorization` digest answer (server side).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestAuthorization {
    /// `username`
    pub username: String,
    /// `realm`
    pub realm: String,
    /// `nonce`
    pub nonce: String,
    /// `uri` (the digest-uri, as the client wrote it)
    pub uri: String,
    /// `response` (32 hex digits)
    pub response: String,
    /// `qop` (`auth`) when used
    pub qop: Option<String>,
    /// `nc` as written (8 hex digits) when `qop` is used
    pub nc: Option<String>,
    /// `cnonce` when `qop` is used
    pub cnonce: Option<String>,
    /// `opaque`
    pub opaque: Option<String>,
    /// `algorithm`
    pub algorithm: Option<String>,
}

impl DigestAuthorization {
    /// Parses a header value.
    pub fn parse(value: &str) -> Result<Self, String> {
        let tok = AuthTokenizer::parse(value).map_err(|e| e.to_string())?;
        if !tok.scheme.eq_ignore_ascii_case("Digest") {
            return Err(format!("auth scheme `{}` is not Digest", tok.scheme));
        }
        let get = |name: &str| {
            tok.params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| (*v).to_owned())
        };
        let need = |name: &'static str| get(name).ok_or(format!("authorization without {name}"));
        Ok(DigestAuthorization {
            username: need("username")?,
            realm: need("realm")?,
            nonce: need("nonce")?,
            uri: need("uri")?,
            response: need("response")?,
            qop: get("qop"),
            nc: get("nc"),
            cnonce: get("cnonce"),
            opaque: get("opaque"),
            algorithm: get("algorithm"),
        })
    }

    /// The nonce count as a number (`None` without `qop` or when malformed).
    pub fn nonce_count(&self) -> Option<u32> {
        u32::from_str_radix(self.nc.as_deref()?, 16).ok()
    }

    /// Whether `response` is right for `method` and `password` (MD5; `qop=auth` or none).
    /// The server still checks that `nonce` is one it issued and `realm` is its own.
    pub fn verify(&self, method: &Method, password: &str) -> bool {
        if self
            .algorithm
            .as_deref()
            .is_some_and(|a| !a.eq_ignore_ascii_case("MD5"))
        {
            return false;
        }
        let qop = match self.qop.as_deref() {
            None => None,
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                match (self.nc.as_deref(), self.cnonce.as_deref()) {
                    (Some(nc), Some(cnonce)) => Some((nc, cnonce)),
                    _ => return false,
                }
            }
            Some(_) => return false,
        };
        let expected = compute(
            &self.username,
            &self.realm,
            password,
            method,
            &self.uri,
            &self.nonce,
            qop,
        );
        // Constant-time compare: the length is public, the content is not.
        expected.len() == self.response.len()
            && expected
                .bytes()
                .zip(self.response.to_ascii_lowercase().bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

fn md5_hex(input: &str) -> String {
    let digest = Md5::digest(input.as_bytes());
    let mut out = String::with_capacity(32);
    for byte in digest.iter() {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

fn compute(
    username: &str,
    realm: &str,
    password: &str,
    method: &Method,
    uri: &str,
    nonce: &str,
    qop: Option<(&str, &str)>,
) -> String {
    let ha1 = md5_hex(&format!("{username}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    match qop {
        Some((nc, cnonce)) => md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")),
        None => md5_hex(&format!("{ha1}:{nonce}:{ha2}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_2617_example() {
        // RFC 2617 §3.5 (HTTP GET, same arithmetic).
        let ha1 = md5_hex("Mufasa:testrealm@host.com:Circle Of Life");
        let ha2 = md5_hex("GET:/dir/index.html");
        let response = md5_hex(&format!(
            "{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:00000001:0a4f113b:auth:{ha2}"
        ));
        assert_eq!(response, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn parses_a_kamailio_and_a_freeswitch_challenge() {
        let k = DigestChallenge::parse(
            "Digest realm=\"127.0.0.1\", nonce=\"Y2Ft+aW5n\", qop=\"auth,auth-int\", algorithm=MD5",
        )
        .unwrap();
        assert_eq!(k.qop, ["auth", "auth-int"]);
        let f = DigestChallenge::parse(
            "Digest realm=\"10.0.0.1\", nonce=\"abc\", algorithm=MD5, qop=\"auth\", stale=true, opaque=\"o1\"",
        )
        .unwrap();
        assert!(f.stale);
        let answer = f
            .authorization("1000", "pw", &Method::Invite, "sip:9@10.0.0.1", 2, "cn")
            .unwrap();
        assert!(answer.contains("nc=00000002"), "{answer}");
        assert!(answer.contains("opaque=\"o1\""), "{answer}");
        let parsed = DigestAuthorization::parse(&answer).unwrap();
        assert_eq!(parsed.nonce_count(), Some(2));
        assert!(parsed.verify(&Method::Invite, "pw"));
        assert!(!parsed.verify(&Method::Register, "pw"));
    }

    #[test]
    fn rejects_what_it_cannot_answer() {
        let sha =
            DigestChallenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256").unwrap();
        assert!(
            sha.authorization("u", "p", &Method::Register, "sip:r", 1, "c")
                .is_err()
        );
        let int =
            DigestChallenge::parse("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"").unwrap();
        assert!(
            int.authorization("u", "p", &Method::Register, "sip:r", 1, "c")
                .is_err()
        );
        assert!(DigestChallenge::parse("Basic realm=\"r\"").is_err());
        assert!(DigestChallenge::parse("Digest nonce=\"n\"").is_err());
    }

    #[test]
    fn rfc_2069_style_without_qop() {
        let c = DigestChallenge::parse("Digest realm=\"r\", nonce=\"n\"").unwrap();
        let a = c
            .authorization("u", "p", &Method::Register, "sip:r", 1, "c")
            .unwrap();
        assert!(!a.contains("qop"));
        assert!(
            DigestAuthorization::parse(&a)
                .unwrap()
                .verify(&Method::Register, "p")
        );
    }
}
