//! Agora RTC tokens: the AccessToken2 format (version `007`) that Agora's own token builders produce
//! (`RtcTokenBuilder2.build_token_with_uid`), written here from the format so the module needs no Agora
//! library.
//!
//! A token is `"007"` followed by the standard base64 of the zlib-compressed bytes
//! `string(signature) ‖ content`, where every integer is little-endian, `string` is a `u16` length then the
//! bytes, and
//!
//! - `content` = `string(app id) ‖ u32 issued at ‖ u32 lifetime (s) ‖ u32 salt ‖ u16 service count ‖` the
//!   RTC service: `u16 type (1) ‖ u16 privilege count ‖ (u16 privilege, u32 lifetime (s))… ‖ string(channel)
//!   ‖ string(uid as decimal text, empty for uid 0)`;
//! - the signing key = HMAC-SHA256(key = `u32 salt`, HMAC-SHA256(key = `u32 issued at`, app certificate));
//! - `signature` = HMAC-SHA256(signing key, `content`).
//!
//! A subscriber may join the channel; a publisher may also publish audio, video and data streams.

use flate2::Compression;
use flate2::write::ZlibEncoder;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::Write;

/// The AccessToken2 version prefix.
const VERSION: &str = "007";
/// The RTC service's type in a token.
const SERVICE_RTC: u16 = 1;
/// RTC privileges: join the channel, publish audio, video, data streams.
const JOIN_CHANNEL: u16 = 1;
const PUBLISH_AUDIO: u16 = 2;
const PUBLISH_VIDEO: u16 = 3;
const PUBLISH_DATA: u16 = 4;

/// How long an issued token (and each of its privileges) is valid: an hour, the seed's "refresh for streams
/// longer than 1 hour".
pub const TOKEN_LIFETIME_SECS: u32 = 3600;

/// An Agora project's credentials: the app id and its primary certificate, each 32 hexadecimal digits as
/// Agora's console shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct AgoraCredentials {
    app_id: String,
    app_certificate: String,
}

impl std::fmt::Debug for AgoraCredentials {
    /// The certificate is a secret: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgoraCredentials").field("app_id", &self.app_id).finish_non_exhaustive()
    }
}

impl AgoraCredentials {
    /// Credentials from an app id and certificate; refused unless each is 32 hexadecimal digits (Agora's
    /// builders return an empty token for anything else).
    pub fn new(app_id: &str, app_certificate: &str) -> Result<Self, String> {
        let is_key = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !is_key(app_id) {
            return Err("the Agora app id must be 32 hexadecimal digits".into());
        }
        if !is_key(app_certificate) {
            return Err("the Agora app certificate must be 32 hexadecimal digits".into());
        }
        Ok(Self { app_id: app_id.to_owned(), app_certificate: app_certificate.to_owned() })
    }

    /// The app id (public: clients pass it to the Agora SDK).
    pub fn app_id(&self) -> &str {
        &self.app_id
    }
}

/// What the holder of a token may do in the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcRole {
    /// Joins and publishes audio, video and data streams (the session's creator).
    Publisher,
    /// Joins and watches.
    Subscriber,
}

impl RtcRole {
    /// The seed's name of the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Publisher => "publisher",
            Self::Subscriber => "subscriber",
        }
    }
}

/// Builds an RTC token for `uid` (0: any uid) in `channel`, issued at `issued_at` (seconds since the
/// epoch) with `salt`, the token and its privileges valid for `lifetime` seconds.
pub fn rtc_token(
    credentials: &AgoraCredentials,
    channel: &str,
    uid: u32,
    role: RtcRole,
    issued_at: u32,
    salt: u32,
    lifetime: u32,
) -> String {
    let mut privileges = vec![JOIN_CHANNEL];
    if role == RtcRole::Publisher {
        privileges.extend([PUBLISH_AUDIO, PUBLISH_VIDEO, PUBLISH_DATA]);
    }
    let mut content = Vec::with_capacity(128 + channel.len());
    put_string(&mut content, credentials.app_id.as_bytes());
    content.extend_from_slice(&issued_at.to_le_bytes());
    content.extend_from_slice(&lifetime.to_le_bytes());
    content.extend_from_slice(&salt.to_le_bytes());
    content.extend_from_slice(&1u16.to_le_bytes());
    content.extend_from_slice(&SERVICE_RTC.to_le_bytes());
    put_len(&mut content, privileges.len());
    for privilege in privileges {
        content.extend_from_slice(&privilege.to_le_bytes());
        content.extend_from_slice(&lifetime.to_le_bytes());
    }
    put_string(&mut content, channel.as_bytes());
    let uid_text = if uid == 0 { String::new() } else { uid.to_string() };
    put_string(&mut content, uid_text.as_bytes());

    let signing = hmac(&issued_at.to_le_bytes(), credentials.app_certificate.as_bytes());
    let signing = hmac(&salt.to_le_bytes(), &signing);
    let signature = hmac(&signing, &content);

    let mut packed = Vec::with_capacity(2 + signature.len() + content.len());
    put_string(&mut packed, &signature);
    packed.extend_from_slice(&content);
    let mut zlib = ZlibEncoder::new(Vec::new(), Compression::default());
    // Writing into a Vec cannot fail.
    zlib.write_all(&packed).expect("compress into memory");
    let compressed = zlib.finish().expect("compress into memory");
    use base64::Engine as _;
    format!("{VERSION}{}", base64::engine::general_purpose::STANDARD.encode(compressed))
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// A `u16` length. Every length written here is bounded far below it (the channel is a session id, the
/// app id 32 bytes, a signature 32 bytes, at most 4 privileges).
fn put_len(out: &mut Vec<u8>, len: usize) {
    let len = u16::try_from(len).expect("packed fields are shorter than 64 KiB");
    out.extend_from_slice(&len.to_le_bytes());
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    //! Vectors from Agora's own token builder tests: AgoraIO/Tools,
    //! `DynamicKey/AgoraDynamicKey/python3/test/AccessToken2Test.py` (`test_service_rtc`,
    //! `test_service_rtc_uid_0`): app id `970CA35de60c44645bbae8a215061b33`, certificate
    //! `5CFd2fd1755d40ecb72977518be15d3b`, channel `7d72365eb983485397e3e3f9d460bdda`, uid 2882341273 (and
    //! 0), issued at 1111111, salt 1, token and join privilege valid 600 s.

    use super::*;
    use base64::Engine as _;
    use std::io::Read;

    const APP_ID: &str = "970CA35de60c44645bbae8a215061b33";
    const APP_CERTIFICATE: &str = "5CFd2fd1755d40ecb72977518be15d3b";
    const CHANNEL: &str = "7d72365eb983485397e3e3f9d460bdda";

    const RTC_UID: &str = concat!(
        "007eJxTYBBbsMMnKq7p9Hf/HcIX5kce9b518kCiQgSr5Zrp4X1Tu6UUGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcw",
        "Mk4yN3b8IMEQwMTAwMoAwBIL4CgzmKeZGxmamqUmWFsYmFqbGluapxqnGaZYpJmYGSSkpiVwMRhYWRsYmhkbmxgDCaiTj"
    );
    const RTC_UID_0: &str = concat!(
        "007eJxTYLhzZP08Lxa1Pg57+TcXb/3cZ3wi4V6kbpbOog0G2dOYk20UGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcw",
        "Mk4yN3b8IMEQwMTAwMoAwBIL4CgzmKeZGxmamqUmWFsYmFqbGluapxqnGaZYpJmYGSSkpiQwMADacImo="
    );

    fn credentials() -> AgoraCredentials {
        AgoraCredentials::new(APP_ID, APP_CERTIFICATE).unwrap()
    }

    /// The signed bytes inside a token (after the version, base64 and zlib).
    fn unpacked(token: &str) -> Vec<u8> {
        let compressed = base64::engine::general_purpose::STANDARD
            .decode(token.strip_prefix(VERSION).expect("version 007"))
            .unwrap();
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(&compressed[..]).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn agora_reference_vectors() {
        let with_uid = rtc_token(&credentials(), CHANNEL, 2_882_341_273, RtcRole::Subscriber, 1_111_111, 1, 600);
        let any_uid = rtc_token(&credentials(), CHANNEL, 0, RtcRole::Subscriber, 1_111_111, 1, 600);
        // The signed bytes are the reference's byte for byte; so is the token text.
        assert_eq!(unpacked(&with_uid), unpacked(RTC_UID));
        assert_eq!(unpacked(&any_uid), unpacked(RTC_UID_0));
        assert_eq!(with_uid, RTC_UID);
        assert_eq!(any_uid, RTC_UID_0);
    }

    #[test]
    fn publisher_tokens_carry_the_publish_privileges() {
        let token = rtc_token(&credentials(), CHANNEL, 7, RtcRole::Publisher, 1_111_111, 1, 600);
        let bytes = unpacked(&token);
        // string(signature: 32 bytes), string(app id), issued, lifetime, salt, service count, type 1, then
        // the privilege map.
        let map = 2 + 32 + 2 + 32 + 4 + 4 + 4 + 2 + 2;
        assert_eq!(&bytes[map..map + 2], &4u16.to_le_bytes());
        let privileges: Vec<(u16, u32)> = (0..4)
            .map(|i| {
                let at = map + 2 + i * 6;
                (
                    u16::from_le_bytes([bytes[at], bytes[at + 1]]),
                    u32::from_le_bytes(bytes[at + 2..at + 6].try_into().unwrap()),
                )
            })
            .collect();
        assert_eq!(privileges, [(1, 600), (2, 600), (3, 600), (4, 600)]);
        let tail = map + 2 + 4 * 6;
        assert_eq!(&bytes[tail..], [&32u16.to_le_bytes()[..], CHANNEL.as_bytes(), &1u16.to_le_bytes(), b"7"].concat());
    }

    #[test]
    fn credentials_must_be_32_hex_digits() {
        assert!(AgoraCredentials::new("abc", APP_CERTIFICATE).unwrap_err().contains("app id"));
        let not_hex = "z".repeat(32);
        assert!(AgoraCredentials::new(APP_ID, &not_hex).unwrap_err().contains("certificate"));
        assert!(!format!("{:?}", credentials()).contains(APP_CERTIFICATE), "the certificate is never printed");
    }
}
