//! Authentication: a JWT is verified once, at `hello` (or at the HTTP upgrade for dialects), and the
//! resulting [`Identity`] lives on the connection. The algorithm is pinned by config, so a token that
//! names another `alg` (including `none`) is refused before its signature is looked at.

use crate::config::{Config, JwtAlg};
use anyhow::Context as _;
use axum::http::{HeaderMap, header};
use chorus_protocol::ErrorCode;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::sync::Arc;
use thiserror::Error;

/// Longest token accepted, in bytes. Identity providers' tokens are well under 2 KiB; 8 KiB (the header
/// buffer size of common proxies, e.g. nginx's `large_client_header_buffers`) leaves room for rich claims
/// and bounds the decoding and hashing an unauthenticated client can ask for.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Who is on the other end of a connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// Subject: the `sub` claim (or `userId`/`id` when `sub` is absent), `guest-<conn id>` for guests.
    pub sub: String,
    /// Display name: the `name` claim (or `username`).
    pub name: Option<String>,
    /// The `role` claim.
    pub role: Option<String>,
    /// True when no token was presented.
    pub guest: bool,
    /// All claims of the token, for modules that need more than the above.
    pub claims: Arc<Map<String, Value>>,
}

impl Identity {
    /// A guest identity for a connection.
    pub fn guest(conn_id: u64) -> Self {
        Self { sub: format!("guest-{conn_id}"), name: None, role: None, guest: true, claims: Arc::default() }
    }

    /// The identity as announced in `welcome`.
    pub fn to_wire(&self) -> chorus_protocol::Identity {
        chorus_protocol::Identity {
            sub: self.sub.clone(),
            name: self.name.clone(),
            role: self.role.clone(),
            guest: self.guest,
        }
    }

    fn from_claims(claims: Map<String, Value>) -> Result<Self, AuthError> {
        let text = |v: &Value| match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let sub = ["sub", "userId", "id"]
            .iter()
            .find_map(|k| claims.get(*k).and_then(text))
            .ok_or(AuthError::Invalid("token has no `sub` claim".into()))?;
        let name = ["name", "username"].iter().find_map(|k| claims.get(*k).and_then(text));
        let role = claims.get("role").and_then(text);
        Ok(Self { sub, name, role, guest: false, claims: Arc::new(claims) })
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    /// Malformed, forged, signed with another key or another algorithm.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// The broker has no verification key configured, so it accepts guests only.
    #[error("this server accepts guests only; connect without a token")]
    NotConfigured,
}

impl AuthError {
    /// The error code sent to the client before the 1008 close.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) | Self::NotConfigured => ErrorCode::TokenInvalid,
            Self::Expired => ErrorCode::TokenExpired,
            Self::NotYetValid => ErrorCode::TokenNotYetValid,
        }
    }

    /// A short label for the auth-failure metric.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::NotConfigured => "not_configured",
        }
    }
}

/// Verifies tokens with the configured key and pinned algorithm.
pub struct Verifier {
    key: Option<(DecodingKey, Validation)>,
    /// The accepted algorithm's name, for refusals.
    accepted: String,
}

impl Verifier {
    /// Builds the verifier from config. Reads the public key file if one is configured.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let key = match (&config.jwt_secret, &config.jwt_public_key) {
            (Some(secret), _) => Some(DecodingKey::from_secret(secret.as_bytes())),
            (None, Some(path)) => {
                let pem = std::fs::read(path).with_context(|| format!("reading JWT public key {}", path.display()))?;
                Some(match config.jwt_alg {
                    JwtAlg::Rs256 => DecodingKey::from_rsa_pem(&pem).context("parsing RSA public key")?,
                    JwtAlg::EdDsa => DecodingKey::from_ed_pem(&pem).context("parsing Ed25519 public key")?,
                    JwtAlg::Hs256 => anyhow::bail!("--jwt-public-key needs --jwt-alg RS256 or EdDSA"),
                })
            }
            (None, None) => None,
        };
        let alg = match config.jwt_alg {
            JwtAlg::Hs256 => Algorithm::HS256,
            JwtAlg::Rs256 => Algorithm::RS256,
            JwtAlg::EdDsa => Algorithm::EdDSA,
        };
        let mut validation = Validation::new(alg);
        validation.leeway = config.jwt_leeway_secs;
        validation.validate_nbf = true;
        // Without a configured audience a token's `aud` is not checked (jsonwebtoken would refuse every
        // token that carries one); with one, `aud` is required, and likewise `iss`.
        let mut required = vec!["exp"];
        match &config.jwt_audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = &config.jwt_issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        let accepted =
            clap::ValueEnum::to_possible_value(&config.jwt_alg).map_or_else(String::new, |v| v.get_name().to_owned());
        Ok(Self { key: key.map(|k| (k, validation)), accepted })
    }

    /// Whether any token can be accepted (false: guests only).
    pub fn enabled(&self) -> bool {
        self.key.is_some()
    }

    /// Verifies a token and extracts the identity.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let (key, validation) = self.key.as_ref().ok_or(AuthError::NotConfigured)?;
        if token.trim().is_empty() {
            return Err(AuthError::Invalid("the token is empty".into()));
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Invalid(format!("the token is longer than {MAX_TOKEN_BYTES} bytes")));
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, validation)
            .map_err(|e| refusal(token, e.kind(), &self.accepted))?;
        Identity::from_claims(data.claims)
    }

    /// Identity for an optional token: none → guest.
    pub fn identify(&self, token: Option<&str>, conn_id: u64) -> Result<Identity, AuthError> {
        match token {
            Some(token) => self.verify(token),
            None => Ok(Identity::guest(conn_id)),
        }
    }
}

/// Why `token` was refused, in words a client developer can act on (the error code is the machine-readable
/// part; these texts never name a Rust type).
fn refusal(token: &str, kind: &ErrorKind, accepted: &str) -> AuthError {
    let text = match kind {
        ErrorKind::ExpiredSignature => return AuthError::Expired,
        ErrorKind::ImmatureSignature => return AuthError::NotYetValid,
        ErrorKind::InvalidSignature => "the signature does not match: the token was signed with another key".into(),
        ErrorKind::InvalidAlgorithm => match header_alg(token) {
            Some(alg) => format!("the token is signed with {alg}; this server accepts only {accepted}"),
            None => format!("the token's algorithm does not match; this server accepts only {accepted}"),
        },
        ErrorKind::Json(_) => match header_alg(token) {
            Some(alg) if !is_known_alg(&alg) => {
                format!("the token names the algorithm `{alg}`; this server accepts only {accepted}")
            }
            _ => "the token's header or claims are not valid JWT JSON".into(),
        },
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no `{claim}` claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("the token's `{claim}` claim has the wrong type"),
        ErrorKind::Base64(_) | ErrorKind::Utf8(_) => "the token is not base64url-encoded JWT text".into(),
        _ => "the token is not a JWT (expected three base64url parts separated by dots)".into(),
    };
    AuthError::Invalid(text)
}

/// The `alg` a token's header names, read without verifying anything (to explain a refusal).
fn header_alg(token: &str) -> Option<String> {
    use base64::Engine as _;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header.trim_end_matches('=')).ok()?;
    let header: Value = serde_json::from_slice(&bytes).ok()?;
    header.get("alg")?.as_str().map(str::to_owned)
}

fn is_known_alg(alg: &str) -> bool {
    alg.parse::<Algorithm>().is_ok()
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, token trimmed);
/// `None` when the header is missing, not text, another scheme, or empty. Every HTTP entry point (module
/// REST routes, WebSocket upgrades) reads tokens through this.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    #[test]
    fn bearer_tokens_come_only_from_the_bearer_scheme() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            bearer_token(&headers).map(str::to_owned)
        };
        assert_eq!(with("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(with("bearer  abc ").as_deref(), Some("abc"));
        assert_eq!(with("Basic abc"), None);
        assert_eq!(with("Bearer "), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    fn config(secret: &str) -> Config {
        Config::load_from(["chorus", "--jwt-secret", secret]).unwrap()
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn token(secret: &str, claims: Value) -> String {
        encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    }

    #[test]
    fn outcomes() {
        let v = Verifier::from_config(&config("s3cret")).unwrap();
        let ok = token("s3cret", json!({"sub": "u1", "name": "Ann", "role": "admin", "exp": now() + 60}));
        let id = v.verify(&ok).unwrap();
        assert_eq!(
            (id.sub.as_str(), id.name.as_deref(), id.role.as_deref(), id.guest),
            ("u1", Some("Ann"), Some("admin"), false)
        );
        let numeric = token("s3cret", json!({"userId": 42, "exp": now() + 60}));
        assert_eq!(v.verify(&numeric).unwrap().sub, "42");
        assert_eq!(v.verify(&token("s3cret", json!({"sub": "u", "exp": now() - 120}))), Err(AuthError::Expired));
        assert_eq!(
            v.verify(&token("s3cret", json!({"sub": "u", "exp": now() + 600, "nbf": now() + 300}))),
            Err(AuthError::NotYetValid)
        );
        assert!(matches!(
            v.verify(&token("other", json!({"sub": "u", "exp": now() + 60}))),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(v.verify("not.a.jwt"), Err(AuthError::Invalid(_))));
        assert!(matches!(v.verify(&token("s3cret", json!({"exp": now() + 60}))), Err(AuthError::Invalid(_))));
        // alg "none": header {"alg":"none","typ":"JWT"}, unsigned.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1IiwiZXhwIjo0MTAyNDQ0ODAwfQ.";
        assert!(matches!(v.verify(none), Err(AuthError::Invalid(_))));
        assert_eq!(v.identify(None, 7).unwrap().sub, "guest-7");
        let padding = "x".repeat(MAX_TOKEN_BYTES);
        let oversized = token("s3cret", json!({"sub": "u", "exp": now() + 60, "pad": padding}));
        assert_eq!(
            v.verify(&oversized),
            Err(AuthError::Invalid(format!("the token is longer than {MAX_TOKEN_BYTES} bytes"))),
            "a correctly signed token over the size bound"
        );
    }

    #[test]
    fn eddsa_public_key_from_a_pem_file() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let public = dir.path().join("jwt.pub.pem");
        std::fs::write(&public, key.public_key_pem()).unwrap();
        let config =
            Config::load_from(["chorus", "--jwt-public-key", public.to_str().unwrap(), "--jwt-alg", "EdDSA"]).unwrap();
        let v = Verifier::from_config(&config).unwrap();
        let signer = EncodingKey::from_ed_pem(key.serialize_pem().as_bytes()).unwrap();
        let claims = json!({"sub": "ed", "exp": now() + 60});
        let good = encode(&Header::new(jsonwebtoken::Algorithm::EdDSA), &claims, &signer).unwrap();
        assert_eq!(v.verify(&good).unwrap().sub, "ed");
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let forged_signer = EncodingKey::from_ed_pem(other.serialize_pem().as_bytes()).unwrap();
        let forged = encode(&Header::new(jsonwebtoken::Algorithm::EdDSA), &claims, &forged_signer).unwrap();
        assert!(matches!(v.verify(&forged), Err(AuthError::Invalid(_))));
        assert!(
            matches!(v.verify(&token("secret", claims)), Err(AuthError::Invalid(_))),
            "HS256 refused when EdDSA is pinned"
        );
        assert!(Config::load_from(["chorus", "--jwt-public-key", "x.pem"]).is_err(), "public key needs RS256 or EdDSA");
    }

    #[test]
    fn audience_and_issuer_when_configured() {
        let claims = |extra: Value| {
            let mut claims = json!({"sub": "u", "exp": now() + 60});
            claims.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            token("s3cret", claims)
        };
        let open = Verifier::from_config(&config("s3cret")).unwrap();
        assert!(open.verify(&claims(json!({"aud": "anyone", "iss": "anywhere"}))).is_ok(), "unchecked when unset");
        let pinned = Verifier::from_config(
            &Config::load_from(["chorus", "--jwt-secret", "s3cret", "--jwt-audience", "chorus", "--jwt-issuer", "idp"])
                .unwrap(),
        )
        .unwrap();
        assert!(pinned.verify(&claims(json!({"aud": "chorus", "iss": "idp"}))).is_ok());
        assert!(pinned.verify(&claims(json!({"aud": ["other", "chorus"], "iss": "idp"}))).is_ok());
        for (what, extra) in [
            ("wrong aud", json!({"aud": "other", "iss": "idp"})),
            ("wrong iss", json!({"aud": "chorus", "iss": "evil"})),
            ("no aud", json!({"iss": "idp"})),
            ("no iss", json!({"aud": "chorus"})),
        ] {
            assert!(matches!(pinned.verify(&claims(extra)), Err(AuthError::Invalid(_))), "{what}");
        }
    }

    #[test]
    fn guests_only_without_a_key() {
        let v = Verifier::from_config(&Config::load_from(["chorus"]).unwrap()).unwrap();
        assert!(!v.enabled());
        assert_eq!(v.verify("x.y.z"), Err(AuthError::NotConfigured));
    }
}
