//! Claims-based security as the service checks it. A `servicebus.windows.net:sastoken` is
//! `SharedAccessSignature sr=<resource>&sig=<signature>&se=<expiry>&skn=<key name>`, valid when
//! the key name is ours, it has not expired, its signature is the base64 HMAC-SHA256 (the key's
//! bytes as the HMAC key) of `sr + "\n" + se` with `sr` exactly as sent (percent-encoded), and its
//! resource covers the audience it is put for. A `jwt` is valid when it is the test bearer.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use percent_encoding::percent_decode_str;
use sha2::Sha256;

pub(super) const SAS_TOKEN_TYPE: &str = "servicebus.windows.net:sastoken";
pub(super) const JWT_TOKEN_TYPE: &str = "jwt";
const SAS_PREFIX: &str = "SharedAccessSignature ";

/// The credentials the server accepts.
pub(super) struct Keys {
    pub key_name: String,
    pub key: String,
    pub bearer: String,
}

impl Keys {
    /// Whether `token` of type `token_type` authorizes `audience` at `now`; the error says why not.
    pub(super) fn check(
        &self,
        token_type: &str,
        token: &str,
        audience: &str,
        now: SystemTime,
    ) -> Result<(), String> {
        match token_type {
            SAS_TOKEN_TYPE => self.check_sas(token, audience, now),
            JWT_TOKEN_TYPE if token == self.bearer => Ok(()),
            JWT_TOKEN_TYPE => Err("unknown bearer token".to_string()),
            other => Err(format!("unsupported token type {other:?}")),
        }
    }

    /// A management request's `security_token`: a SAS token for the hub, or the bearer.
    pub(super) fn check_any(&self, token: &str, audience: &str) -> Result<(), String> {
        let token_type = if token.starts_with(SAS_PREFIX) {
            SAS_TOKEN_TYPE
        } else {
            JWT_TOKEN_TYPE
        };
        self.check(token_type, token, audience, SystemTime::now())
    }

    fn check_sas(&self, token: &str, audience: &str, now: SystemTime) -> Result<(), String> {
        let fields = token
            .strip_prefix(SAS_PREFIX)
            .ok_or("not a SharedAccessSignature")?;
        let field = |name: &str| {
            fields
                .split('&')
                .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
                .ok_or(format!("no {name} in the signature"))
        };
        let (sr, sig, se, skn) = (field("sr")?, field("sig")?, field("se")?, field("skn")?);
        if skn != self.key_name {
            return Err(format!("unknown key name {skn:?}"));
        }
        let expiry: u64 = se.parse().map_err(|_| format!("bad expiry {se:?}"))?;
        let now = now
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        if expiry <= now {
            return Err(format!("expired at {expiry} (now {now})"));
        }
        let signature = BASE64
            .decode(decode(sig)?)
            .map_err(|_| "signature is not base64".to_string())?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(self.key.as_bytes()).expect("HMAC takes any key");
        mac.update(format!("{sr}\n{se}").as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| "signature does not match the key".to_string())?;
        let resource = decode(sr)?;
        if !covers(&resource, audience) {
            return Err(format!("a token for {resource} does not cover {audience}"));
        }
        Ok(())
    }
}

/// Whether a grant for `resource` covers `audience`: the same entity or one below it, ignoring
/// the scheme (`sb://`, `amqps://`) and case.
pub(super) fn covers(resource: &str, audience: &str) -> bool {
    let (resource, audience) = (normalize(resource), normalize(audience));
    audience == resource || audience.starts_with(&format!("{resource}/"))
}

fn normalize(address: &str) -> String {
    let without_scheme = address.split_once("://").map_or(address, |(_, rest)| rest);
    without_scheme.trim_end_matches('/').to_ascii_lowercase()
}

fn decode(field: &str) -> Result<String, String> {
    percent_decode_str(field)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| format!("{field:?} is not percent-encoded UTF-8"))
}
