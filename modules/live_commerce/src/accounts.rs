//! Accounts (the seed's `/api/auth` and `/api/users`): users with argon2-hashed passwords, access tokens
//! signed with the broker's own HS256 secret (so the token from a login opens a realtime connection), and
//! refresh tokens that rotate on use and are revoked by logout.
//!
//! Users are numbered (`"id": 1`, as in the seed), which makes the subject of their tokens a number and
//! their Agora uid that number. Storage:
//!
//! | table | partition | clustering key | value |
//! |---|---|---|---|
//! | [`USERS`] | `all` | user id, 8 bytes big-endian (numeric order) | [`UserRecord`] |
//! | [`EMAILS`] | `all` | the email, lower-cased | the user id: inserted if absent, so an email is unique |
//! | [`REFRESH_TOKENS`] | user id | SHA-256 of the token's secret | [`RefreshRecord`] |
//!
//! A refresh token is `<user id>.<43 characters of base64url randomness>`; only its hash is stored. Using
//! one deletes it (compare-and-delete: of two concurrent uses one wins) and issues a new pair; logout
//! deletes all of the user's. Access tokens are JWTs and cannot be recalled: they live
//! [`ACCESS_TOKEN_SECS`].

use crate::error::CommerceError;
use crate::requests::{self, MAX_TITLE_CHARS};
use crate::service::Commerce;
use crate::tables::{self, ALL, encode};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use bytes::Bytes;
use chorus_core::auth::Identity;
use chorus_core::config::JwtAlg;
use chorus_core::dialect::iso8601;
use chorus_core::module::Context;
use chorus_core::store::{CasOutcome, MAX_SCAN_LIMIT, Scan, Ttl};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Users: partition [`ALL`], clustering key = the id (big-endian), value [`UserRecord`].
pub const USERS: &str = "commerce_users";
/// Email index: partition [`ALL`], clustering key = the lower-cased email, value = the user id.
pub const EMAILS: &str = "commerce_user_emails";
/// Refresh tokens: partition = user id, clustering key = SHA-256 of the secret, value [`RefreshRecord`].
pub const REFRESH_TOKENS: &str = "commerce_refresh_tokens";

/// How long an access token is valid: short, because a JWT cannot be revoked; the refresh token renews it.
pub const ACCESS_TOKEN_SECS: u64 = 15 * 60;
/// How long a refresh token is valid (also its row's TTL, so forgotten tokens leave the store).
pub const REFRESH_TOKEN_SECS: u32 = 30 * 24 * 3600;
/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted: bounds the hashing work one request can ask for.
pub const MAX_PASSWORD_CHARS: usize = 128;
/// Longest email (the practical limit of a mailbox address).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Roles anyone may give themselves; `moderator` and `admin` are given by an admin.
const SELF_ROLES: [&str; 2] = ["user", "creator"];
/// Every role.
const ROLES: [&str; 4] = ["user", "creator", "moderator", "admin"];
/// Random bytes in a refresh token's secret.
const REFRESH_SECRET_BYTES: usize = 32;

/// A user account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The user's number, from 1.
    pub id: u64,
    /// Display name (also shown as `username`).
    pub name: String,
    /// Email, as given (unique regardless of case).
    pub email: String,
    /// The argon2 PHC string of the password.
    pub password_hash: String,
    /// `user`, `creator`, `moderator` or `admin`.
    pub role: String,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
    /// Last change, ms since the epoch.
    pub updated_ms: u64,
}

impl UserRecord {
    /// `{ id, name, username, email, role, createdAt, updatedAt }` — never the password hash.
    pub fn view(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "username": self.name,
            "email": self.email,
            "role": self.role,
            "createdAt": iso8601(self.created_ms),
            "updatedAt": iso8601(self.updated_ms),
        })
    }
}

/// A stored refresh token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRecord {
    /// When it stops being accepted, ms since the epoch (module clock).
    pub expires_ms: u64,
}

/// The tokens of a login, a registration or a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPair {
    /// The JWT.
    pub access: String,
    /// The refresh token.
    pub refresh: String,
}

/// A new user's or a change's fields, checked.
#[derive(Debug)]
pub struct UserFields {
    name: Option<String>,
    email: Option<String>,
    password: Option<String>,
    role: Option<String>,
}

impl UserFields {
    /// Reads `{ name, email, password, role? }` (all required but `role` when `new`; any, at least one,
    /// otherwise).
    pub fn read(body: &Map<String, Value>, new: bool) -> Result<Self, CommerceError> {
        let text = |key: &str, max: usize| {
            if new {
                requests::required_text(body, key, max).map(Some)
            } else {
                requests::optional_text(body, key, max)
            }
        };
        let name = text("name", MAX_TITLE_CHARS)?;
        let email = text("email", MAX_EMAIL_CHARS)?;
        if let Some(email) = &email {
            let valid = email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
            }) && !email.contains(char::is_whitespace);
            if !valid {
                return Err(CommerceError::Invalid("email must be a valid email address".into()));
            }
        }
        let password = match body.get("password") {
            None | Some(Value::Null) if !new => None,
            None | Some(Value::Null) => return Err(CommerceError::Invalid("password is required".into())),
            Some(Value::String(p)) => {
                let chars = p.chars().count();
                if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
                    return Err(CommerceError::Invalid(format!(
                        "password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
                    )));
                }
                Some(p.clone())
            }
            Some(_) => return Err(CommerceError::Invalid("password must be a string".into())),
        };
        let role = requests::optional_text(body, "role", MAX_TITLE_CHARS)?;
        if let Some(role) = &role
            && !ROLES.contains(&role.as_str())
        {
            return Err(CommerceError::Invalid("Invalid role. Must be one of: user, creator, moderator, admin".into()));
        }
        let fields = Self { name, email, password, role };
        if !new && fields.name.is_none() && fields.email.is_none() && fields.password.is_none() && fields.role.is_none()
        {
            return Err(CommerceError::Invalid("Nothing to update: give name, email, password or role".into()));
        }
        Ok(fields)
    }

    /// Refuses a role only an admin may give, unless `by` is an admin.
    fn check_role(&self, by: Option<&Identity>) -> Result<(), CommerceError> {
        let admin = by.is_some_and(is_admin);
        match &self.role {
            Some(role) if !admin && !SELF_ROLES.contains(&role.as_str()) => {
                Err(CommerceError::Forbidden(format!("Only an admin can give the role {role}")))
            }
            _ => Ok(()),
        }
    }
}

/// Whether `who` holds the `admin` role.
pub fn is_admin(who: &Identity) -> bool {
    !who.guest && who.role.as_deref() == Some("admin")
}

impl Commerce {
    /// The HS256 key tokens are signed with: the broker's `--jwt-secret`, the key its verifier opens them
    /// with. Without it (a public key only, or no key) accounts cannot issue tokens.
    fn signing_key(ctx: &Context) -> Result<jsonwebtoken::EncodingKey, CommerceError> {
        let config = ctx.config();
        match (&config.jwt_secret, config.jwt_alg) {
            (Some(secret), JwtAlg::Hs256) => Ok(jsonwebtoken::EncodingKey::from_secret(secret.as_bytes())),
            _ if config.jwt_public_key.is_some() => Err(CommerceError::Unavailable(
                "Accounts cannot sign tokens: this server verifies tokens with a public key only (set --jwt-secret to issue them here)".into(),
            )),
            _ => Err(CommerceError::Unavailable(
                "Accounts cannot sign tokens: this server has no --jwt-secret configured".into(),
            )),
        }
    }

    /// Creates a user (`by`: the caller, if any, who may give admin roles); with `sign_in`, also its tokens.
    pub async fn create_user(
        &self,
        ctx: &Context,
        body: &Map<String, Value>,
        by: Option<&Identity>,
        sign_in: bool,
    ) -> Result<(UserRecord, Option<TokenPair>), CommerceError> {
        let fields = UserFields::read(body, true)?;
        fields.check_role(by)?;
        let key = if sign_in { Some(Self::signing_key(ctx)?) } else { None };
        let (Some(name), Some(email), Some(password)) = (fields.name, fields.email, fields.password) else {
            return Err(CommerceError::Invalid("name, email and password are required".into()));
        };
        let password_hash = hash_password(password).await?;
        let store = ctx.store();
        let email_key = email.to_lowercase();
        let id = next_id(ctx).await?;
        let claimed = store.insert_if_absent(EMAILS, ALL, email_key.as_bytes(), encode(&id)?, None).await?;
        if !claimed.applied {
            return Err(CommerceError::Conflict("User with this email already exists".into()));
        }
        let now = ctx.clock().now_ms();
        let record = UserRecord {
            id,
            name,
            email,
            password_hash,
            role: fields.role.unwrap_or_else(|| "user".into()),
            created_ms: now,
            updated_ms: now,
        };
        let user = match store_new_user(ctx, &email_key, record).await {
            Ok(user) => user,
            Err(e) => {
                // Free the email again: no account holds it.
                if let Err(cleanup) = store.delete(EMAILS, ALL, email_key.as_bytes()).await {
                    tracing::warn!(error = %cleanup, "freeing the email of a failed registration");
                }
                return Err(e);
            }
        };
        let tokens = match key {
            Some(key) => Some(self.issue_tokens(ctx, &key, &user).await?),
            None => None,
        };
        Ok((user, tokens))
    }

    /// Logs in with `{ email, password }`.
    pub async fn login(
        &self,
        ctx: &Context,
        body: &Map<String, Value>,
    ) -> Result<(UserRecord, TokenPair), CommerceError> {
        let key = Self::signing_key(ctx)?;
        let email = requests::required_text(body, "email", MAX_EMAIL_CHARS)?;
        let password = match body.get("password") {
            Some(Value::String(p)) if !p.is_empty() => p.clone(),
            _ => return Err(CommerceError::Invalid("password is required".into())),
        };
        let refused = || CommerceError::Unauthenticated("Invalid email or password".into());
        if password.chars().count() > MAX_PASSWORD_CHARS {
            return Err(refused());
        }
        let user = match self.user_by_email(ctx, &email).await? {
            Some(user) => user,
            None => {
                // As slow as a wrong password, so the answer's time does not tell which emails have accounts.
                verify_password(password, unknown_user_hash().await?).await?;
                return Err(refused());
            }
        };
        if !verify_password(password, user.password_hash.clone()).await? {
            return Err(refused());
        }
        let tokens = self.issue_tokens(ctx, &key, &user).await?;
        Ok((user, tokens))
    }

    /// Trades a refresh token for a new pair; the old one stops working.
    pub async fn refresh_tokens(
        &self,
        ctx: &Context,
        body: &Map<String, Value>,
    ) -> Result<(UserRecord, TokenPair), CommerceError> {
        let key = Self::signing_key(ctx)?;
        let token = requests::required_text(body, "refreshToken", 256)?;
        let refused = || CommerceError::Unauthenticated("Invalid or expired refresh token".into());
        let (id, hash) = parse_refresh(&token).ok_or_else(refused)?;
        let store = ctx.store();
        let partition = id.to_string();
        let raw = store.get(REFRESH_TOKENS, &partition, &hash).await?.ok_or_else(refused)?;
        let record: RefreshRecord = tables::decode("refresh token", &raw)?;
        let CasOutcome { applied, .. } = store.delete_if_equal(REFRESH_TOKENS, &partition, &hash, &raw).await?;
        if !applied || record.expires_ms <= ctx.clock().now_ms() {
            return Err(refused());
        }
        let user = self.user(ctx, id).await?.ok_or_else(refused)?;
        let tokens = self.issue_tokens(ctx, &key, &user).await?;
        Ok((user, tokens))
    }

    /// Revokes every refresh token of the user `who`.
    pub async fn logout(&self, ctx: &Context, who: &Identity) -> Result<(), CommerceError> {
        let id = self.signed_in_user(ctx, who).await?.id;
        revoke_all(ctx, id).await
    }

    /// The user behind a token.
    pub async fn signed_in_user(&self, ctx: &Context, who: &Identity) -> Result<UserRecord, CommerceError> {
        let id = who.sub.parse::<u64>().map_err(|_| CommerceError::not_found("User"))?;
        self.user(ctx, id).await?.ok_or_else(|| CommerceError::not_found("User"))
    }

    /// User `id`, if it exists.
    pub async fn user(&self, ctx: &Context, id: u64) -> Result<Option<UserRecord>, CommerceError> {
        match ctx.store().get(USERS, ALL, &user_ck(id)).await? {
            Some(raw) => tables::decode("user", &raw).map(Some),
            None => Ok(None),
        }
    }

    /// User `id` named by a path segment: 404 for anything but an existing number.
    pub async fn user_by_path(&self, ctx: &Context, id: &str) -> Result<UserRecord, CommerceError> {
        let not_found = || CommerceError::not_found("User");
        let id = id.parse::<u64>().map_err(|_| not_found())?;
        self.user(ctx, id).await?.ok_or_else(not_found)
    }

    /// Every user, by id.
    pub async fn users(&self, ctx: &Context) -> Result<Vec<UserRecord>, CommerceError> {
        tables::load_all(ctx.store().as_ref(), USERS, ALL, "user").await
    }

    async fn user_by_email(&self, ctx: &Context, email: &str) -> Result<Option<UserRecord>, CommerceError> {
        let Some(raw) = ctx.store().get(EMAILS, ALL, email.to_lowercase().as_bytes()).await? else { return Ok(None) };
        let id: u64 = tables::decode("email", &raw)?;
        self.user(ctx, id).await
    }

    /// Changes user `id` (`by`: the caller: the user themself or an admin). A new password revokes the
    /// user's refresh tokens.
    pub async fn update_user(
        &self,
        ctx: &Context,
        by: &Identity,
        id: u64,
        body: &Map<String, Value>,
    ) -> Result<UserRecord, CommerceError> {
        if by.sub != id.to_string() && !is_admin(by) {
            return Err(CommerceError::Forbidden("Only the user or an admin can change this account".into()));
        }
        let fields = UserFields::read(body, false)?;
        fields.check_role(Some(by))?;
        let current = self.user(ctx, id).await?.ok_or_else(|| CommerceError::not_found("User"))?;
        let store = ctx.store();
        let old_key = current.email.to_lowercase();
        let new_key = fields.email.as_ref().map(|e| e.to_lowercase()).filter(|k| *k != old_key);
        if let Some(key) = &new_key
            && !store.insert_if_absent(EMAILS, ALL, key.as_bytes(), encode(&id)?, None).await?.applied
        {
            return Err(CommerceError::Conflict("User with this email already exists".into()));
        }
        let password_hash = match fields.password.clone() {
            Some(p) => Some(hash_password(p).await?),
            None => None,
        };
        let now = ctx.clock().now_ms();
        let updated = tables::update(store.as_ref(), USERS, ALL, &user_ck(id), "User", |u: &mut UserRecord| {
            if let Some(name) = &fields.name {
                u.name = name.clone();
            }
            if let Some(email) = &fields.email {
                u.email = email.clone();
            }
            if let Some(hash) = &password_hash {
                u.password_hash = hash.clone();
            }
            if let Some(role) = &fields.role {
                u.role = role.clone();
            }
            u.updated_ms = now;
            Ok(())
        })
        .await;
        let updated = match updated {
            Ok(user) => user,
            Err(e) => {
                if let Some(key) = &new_key {
                    store.delete_if_equal(EMAILS, ALL, key.as_bytes(), &encode(&id)?).await?;
                }
                return Err(e);
            }
        };
        if new_key.is_some() {
            store.delete_if_equal(EMAILS, ALL, old_key.as_bytes(), &encode(&id)?).await?;
        }
        if password_hash.is_some() {
            revoke_all(ctx, id).await?;
        }
        Ok(updated)
    }

    /// Deletes user `id` (the user themself or an admin), its email and its refresh tokens. Sessions and
    /// products it created stay.
    pub async fn delete_user(&self, ctx: &Context, by: &Identity, id: &str) -> Result<(), CommerceError> {
        let user = self.user_by_path(ctx, id).await?;
        if by.sub != user.id.to_string() && !is_admin(by) {
            return Err(CommerceError::Forbidden("Only the user or an admin can delete this account".into()));
        }
        let store = ctx.store();
        store.delete(USERS, ALL, &user_ck(user.id)).await?;
        store.delete_if_equal(EMAILS, ALL, user.email.to_lowercase().as_bytes(), &encode(&user.id)?).await?;
        revoke_all(ctx, user.id).await
    }

    /// A new access token and refresh token for `user`.
    async fn issue_tokens(
        &self,
        ctx: &Context,
        key: &jsonwebtoken::EncodingKey,
        user: &UserRecord,
    ) -> Result<TokenPair, CommerceError> {
        // `exp` is checked by the broker's verifier against the system clock, so it is set from that clock.
        let now = jsonwebtoken::get_current_timestamp();
        let claims = json!({
            "sub": user.id.to_string(),
            "name": user.name,
            "email": user.email,
            "role": user.role,
            "iat": now,
            "exp": now + ACCESS_TOKEN_SECS,
        });
        let access = jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), &claims, key)
            .map_err(|e| CommerceError::Internal(format!("signing a token: {e}")))?;
        let secret: [u8; REFRESH_SECRET_BYTES] = rand::random();
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
        let record = RefreshRecord { expires_ms: ctx.clock().now_ms() + u64::from(REFRESH_TOKEN_SECS) * 1000 };
        let ttl = Ttl::from_secs(REFRESH_TOKEN_SECS)?;
        let hash = Sha256::digest(secret.as_bytes());
        ctx.store().put(REFRESH_TOKENS, &user.id.to_string(), &hash, encode(&record)?, Some(ttl)).await?;
        Ok(TokenPair { access, refresh: format!("{}.{secret}", user.id) })
    }
}

/// `{ user, accessToken, refreshToken }`.
pub fn signed_in_view(user: &UserRecord, tokens: &TokenPair) -> Value {
    json!({ "user": user.view(), "accessToken": tokens.access, "refreshToken": tokens.refresh })
}

fn user_ck(id: u64) -> Bytes {
    Bytes::copy_from_slice(&id.to_be_bytes())
}

/// Stores a new user whose email `email_key` is claimed with its id; when another registration took that
/// number meanwhile, takes the next and points the email at it.
async fn store_new_user(ctx: &Context, email_key: &str, mut user: UserRecord) -> Result<UserRecord, CommerceError> {
    let store = ctx.store();
    loop {
        if store.insert_if_absent(USERS, ALL, &user_ck(user.id), encode(&user)?, None).await?.applied {
            return Ok(user);
        }
        let next = next_id(ctx).await?;
        store.update_if_equal(EMAILS, ALL, email_key.as_bytes(), &encode(&user.id)?, encode(&next)?, None).await?;
        user.id = next;
    }
}

/// The next free user number: one more than the highest.
async fn next_id(ctx: &Context) -> Result<u64, CommerceError> {
    let page = ctx.store().scan(USERS, ALL, &Scan::all(1).reversed()).await?;
    match page.rows.first() {
        Some(row) => {
            let last: [u8; 8] =
                row.ck.as_ref().try_into().map_err(|_| CommerceError::Internal("unreadable user key".into()))?;
            Ok(u64::from_be_bytes(last) + 1)
        }
        None => Ok(1),
    }
}

/// Deletes every refresh token of user `id`.
async fn revoke_all(ctx: &Context, id: u64) -> Result<(), CommerceError> {
    let store = ctx.store();
    let partition = id.to_string();
    loop {
        let page = store.scan(REFRESH_TOKENS, &partition, &Scan::all(MAX_SCAN_LIMIT)).await?;
        if page.rows.is_empty() {
            return Ok(());
        }
        for row in page.rows {
            store.delete(REFRESH_TOKENS, &partition, &row.ck).await?;
        }
    }
}

/// The (user id, secret hash) of a refresh token's text.
fn parse_refresh(token: &str) -> Option<(u64, [u8; 32])> {
    let (id, secret) = token.split_once('.')?;
    let id = id.parse::<u64>().ok()?;
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(secret).ok()?;
    (decoded.len() == REFRESH_SECRET_BYTES).then(|| (id, Sha256::digest(secret.as_bytes()).into()))
}

/// The argon2 (default parameters) PHC string of `password`, off the async threads: hashing is tens of
/// milliseconds of CPU on purpose.
async fn hash_password(password: String) -> Result<String, CommerceError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
            .map_err(|e| CommerceError::Internal(format!("password salt: {e}")))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| CommerceError::Internal(format!("hashing a password: {e}")))
    })
    .await
    .map_err(|e| CommerceError::Internal(format!("password hashing task: {e}")))?
}

/// The hash a login for an unknown email is checked against: one made at first use, of a random password.
async fn unknown_user_hash() -> Result<String, CommerceError> {
    static HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
    HASH.get_or_try_init(|| hash_password(secret)).await.cloned()
}

/// Whether `password` matches the stored PHC string.
async fn verify_password(password: String, stored: String) -> Result<bool, CommerceError> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&stored)
            .map_err(|e| CommerceError::Internal(format!("unreadable password hash: {e}")))?;
        Ok(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
    .map_err(|e| CommerceError::Internal(format!("password check task: {e}")))?
}
