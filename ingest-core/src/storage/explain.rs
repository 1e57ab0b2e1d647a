//! Turns a failed start-up write into one line saying what is wrong and how to fix it.
//!
//! Pure: works on the error's category and text, so every diagnosis is unit-tested.

use super::build::Kind;
use super::STATE_PREFIX;

/// The broad category object_store gives an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    NotFound,
    Unauthenticated,
    PermissionDenied,
    Other,
}

impl Category {
    pub fn of(e: &object_store::Error) -> Category {
        match e {
            object_store::Error::NotFound { .. } => Category::NotFound,
            object_store::Error::Unauthenticated { .. } => Category::Unauthenticated,
            object_store::Error::PermissionDenied { .. } => Category::PermissionDenied,
            _ => Category::Other,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Diagnosis {
    MissingContainer,
    BadCredentials,
    NoPermission,
    /// A 400 answer naming the object's name (too long, a character the store does not take).
    NameRefused,
    Unreachable,
    Unknown,
}

pub fn diagnose(category: Category, text: &str) -> Diagnosis {
    let t = text.to_ascii_lowercase();
    let has = |codes: &[&str]| codes.iter().any(|c| t.contains(&c.to_ascii_lowercase()));
    if has(&["NoSuchBucket", "ContainerNotFound", "bucket does not exist"]) {
        return Diagnosis::MissingContainer;
    }
    if has(&[
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AuthenticationFailed",
        "ExpiredToken",
        "InvalidToken",
        "Server failed to authenticate",
    ]) {
        return Diagnosis::BadCredentials;
    }
    if has(&[
        "AccessDenied",
        "AuthorizationPermissionMismatch",
        "AuthorizationFailure",
        "not authorized",
    ]) {
        return Diagnosis::NoPermission;
    }
    if t.contains("status code: 400")
        && has(&[
            "KeyTooLongError",
            "InvalidURI",
            "InvalidObjectName",
            "InvalidResourceName",
            "OutOfRangeInput",
        ])
    {
        return Diagnosis::NameRefused;
    }
    if has(&[
        "connection refused",
        "tcp connect error",
        "dns error",
        "error sending request",
        "timed out",
        "connection reset",
    ]) {
        return Diagnosis::Unreachable;
    }
    match category {
        Category::NotFound => Diagnosis::MissingContainer,
        Category::Unauthenticated => Diagnosis::BadCredentials,
        Category::PermissionDenied => Diagnosis::NoPermission,
        Category::Other => Diagnosis::Unknown,
    }
}

/// One line for an operation the store refused while the service ran (a permission revoked, a
/// SAS expired): what, and the permissions to grant.
pub fn refused(op: &str, path: &str, store: &str, detail: &str) -> String {
    format!(
        "{op} {path} in {store} was refused ({detail}): the service writes under the topic's directory and the dead-letter prefix, and reads, writes, deletes and lists under {STATE_PREFIX}/ (claims, staging, schemas); grant that (S3: s3:GetObject, s3:PutObject, s3:DeleteObject, s3:ListBucket; Azure: Storage Blob Data Contributor, or a SAS with 'racwdl') and restart; nothing past the last landed file was committed"
    )
}

/// One line: where, what is wrong, what to do.
pub fn explain(kind: Kind, label: &str, category: Category, detail: &str) -> String {
    let fix = match (diagnose(category, detail), kind) {
        (Diagnosis::MissingContainer, Kind::Azure) => {
            "the container does not exist: create it (ingest never creates containers) or fix INGEST_STORAGE_URL".to_string()
        }
        (Diagnosis::MissingContainer, _) => {
            "the bucket does not exist: create it (ingest never creates buckets) or fix INGEST_STORAGE_URL".to_string()
        }
        (Diagnosis::BadCredentials, Kind::Azure) => {
            "the credentials were rejected: check AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT_KEY or the SAS token".to_string()
        }
        (Diagnosis::BadCredentials, _) => {
            "the credentials were rejected: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the role) and AWS_REGION".to_string()
        }
        (Diagnosis::NoPermission, Kind::Azure) => {
            "these credentials may not write here: grant Storage Blob Data Contributor on the container (or a SAS with create, write, read, delete)".to_string()
        }
        (Diagnosis::NoPermission, _) => {
            "these credentials may not write here: allow s3:PutObject, s3:GetObject and s3:DeleteObject under the prefix".to_string()
        }
        (Diagnosis::NameRefused, _) => {
            "the store refuses the object's name: check the prefix of INGEST_STORAGE_URL (its length, and characters the store takes)".to_string()
        }
        (Diagnosis::Unreachable, _) => {
            "the storage endpoint cannot be reached: check the endpoint (AWS_ENDPOINT, BlobEndpoint), DNS and network".to_string()
        }
        (Diagnosis::Unknown, _) => {
            format!("{}; check INGEST_STORAGE_URL, the credentials and write permission", shorten(detail))
        }
    };
    format!("cannot write to {label}: {fix}")
}

fn shorten(s: &str) -> &str {
    match s.char_indices().nth(300) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_error_codes_win_over_the_http_category() {
        let cases = [
            (
                Category::NotFound,
                "Client error with status 404: <Code>NoSuchBucket</Code>",
                Diagnosis::MissingContainer,
            ),
            (
                Category::Other,
                "ContainerNotFound: The specified container does not exist.",
                Diagnosis::MissingContainer,
            ),
            (
                Category::PermissionDenied,
                "<Code>InvalidAccessKeyId</Code>",
                Diagnosis::BadCredentials,
            ),
            (
                Category::PermissionDenied,
                "<Code>SignatureDoesNotMatch</Code>",
                Diagnosis::BadCredentials,
            ),
            (
                Category::PermissionDenied,
                "AuthenticationFailed: Server failed to authenticate the request",
                Diagnosis::BadCredentials,
            ),
            (
                Category::PermissionDenied,
                "<Code>AccessDenied</Code>",
                Diagnosis::NoPermission,
            ),
            (
                Category::PermissionDenied,
                "AuthorizationPermissionMismatch",
                Diagnosis::NoPermission,
            ),
            (
                Category::Other,
                "error sending request: tcp connect error: Connection refused",
                Diagnosis::Unreachable,
            ),
            (
                Category::NotFound,
                "404 Not Found",
                Diagnosis::MissingContainer,
            ),
            (Category::Unauthenticated, "401", Diagnosis::BadCredentials),
            (
                Category::Other,
                "Server returned non-2xx status code: 400 Bad Request: <Code>KeyTooLongError</Code>",
                Diagnosis::NameRefused,
            ),
            (
                Category::Other,
                "Server returned non-2xx status code: 400 Bad Request: <Code>InvalidUri</Code>",
                Diagnosis::NameRefused,
            ),
            (Category::Other, "something new", Diagnosis::Unknown),
        ];
        for (category, text, want) in cases {
            assert_eq!(diagnose(category, text), want, "{text}");
        }
    }

    #[test]
    fn explanations_name_the_store_and_the_fix_on_one_line() {
        let s3 = explain(
            Kind::S3,
            "s3://lake/raw",
            Category::NotFound,
            "NoSuchBucket",
        );
        assert_eq!(
            s3,
            "cannot write to s3://lake/raw: the bucket does not exist: create it (ingest never creates buckets) or fix INGEST_STORAGE_URL"
        );
        let az = explain(
            Kind::Azure,
            "az://raw/",
            Category::PermissionDenied,
            "AuthenticationFailed",
        );
        assert!(az.contains("AZURE_STORAGE_CONNECTION_STRING"), "{az}");
        let long = "x".repeat(1000);
        let other = explain(Kind::S3, "s3://b/", Category::Other, &long);
        assert!(other.len() < 450 && !other.contains('\n'), "{other}");
    }
}
