//! Where an S3 store's credentials come from: a file given for the location
//! (`--s3-credentials-file`, copy's `--from-s3-credentials-file`, a job's
//! `s3-credentials-file`), else the environment. A file lets a job reach its offsite bucket
//! with credentials no other step sees, and lets one copy read from one account and write
//! to another.
//!
//! The file holds `NAME=VALUE` lines (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! optionally `AWS_SESSION_TOKEN` and `AWS_DEFAULT_REGION` or `AWS_REGION`); names are
//! read without regard to case and spaces around `=` are allowed, so the default profile
//! of an AWS shared credentials file works as it is. Lines starting with `#` or `[` are
//! skipped.

use crate::error::{Error, Result};
use rusty_s3::Credentials;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use zeroize::Zeroizing;

fn registered() -> &'static Mutex<HashMap<String, PathBuf>> {
    static FILES: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    FILES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Use the credentials in `file` for the repository at `location` (as written, `s3:...`).
pub fn register_credentials_file(location: &str, file: &Path) {
    registered().lock().expect("credentials registry").insert(key(location), file.to_path_buf());
}

fn key(location: &str) -> String {
    location.trim_end_matches('/').to_string()
}

/// The credentials and region (if the source names one) for `location`.
pub(super) fn for_location(location: &str) -> Result<(Credentials, Option<String>)> {
    let file = registered().lock().expect("credentials registry").get(&key(location)).cloned();
    if let Some(f) = file {
        return read_file(&f);
    }
    let credentials = Credentials::from_env().ok_or_else(|| {
        Error::invalid(
            "S3 needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give --s3-credentials-file",
        )
    })?;
    let region = std::env::var("AWS_DEFAULT_REGION").or_else(|_| std::env::var("AWS_REGION")).ok();
    Ok((credentials, region))
}

fn read_file(path: &Path) -> Result<(Credentials, Option<String>)> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read S3 credentials file {}", path.display()), e))?,
    );
    parse(&text).map_err(|what| Error::invalid(format!("S3 credentials file {}: {what}", path.display())))
}

fn parse(text: &str) -> std::result::Result<(Credentials, Option<String>), String> {
    let mut values: HashMap<String, Zeroizing<String>> = HashMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        let (name, value) = line.split_once('=').ok_or_else(|| "a line is not NAME=VALUE".to_string())?;
        values.insert(name.trim().to_ascii_uppercase(), Zeroizing::new(value.trim().to_string()));
    }
    let get = |name: &str| values.get(name).filter(|v| !v.is_empty()).map(|v| v.as_str().to_string());
    let (Some(id), Some(secret)) = (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) else {
        return Err("it needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into());
    };
    let credentials = match get("AWS_SESSION_TOKEN") {
        Some(token) => Credentials::new_with_token(id, secret, token),
        None => Credentials::new(id, secret),
    };
    Ok((credentials, get("AWS_DEFAULT_REGION").or_else(|| get("AWS_REGION"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_style_and_shared_credentials_files_parse() {
        let (c, region) =
            parse("# offsite\nAWS_ACCESS_KEY_ID=AK\nAWS_SECRET_ACCESS_KEY=SK\nAWS_REGION=eu-west-1\n")
                .unwrap();
        assert_eq!((c.key(), c.secret(), region.as_deref()), ("AK", "SK", Some("eu-west-1")));
        let (c, region) = parse("[default]\naws_access_key_id = AK2\naws_secret_access_key = SK2\n").unwrap();
        assert_eq!((c.key(), c.secret(), region), ("AK2", "SK2", None));
        assert!(parse("AWS_ACCESS_KEY_ID=AK\n").is_err());
        assert!(parse("just a secret\n").is_err());
    }
}
