//! What a resolve runs with: [`HubOptions`] first, then the environment
//! variables huggingface_hub reads, then its defaults.

use std::path::PathBuf;
use std::time::Duration;

use super::{HubOptions, Token, DEFAULT_ENDPOINT};
use crate::error::{Error, Result};

/// How long to wait for a connection or the start of an answer, when the
/// environment does not say (huggingface_hub's default for both).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct Settings {
    pub cache_dir: PathBuf,
    pub revision: String,
    pub token: Option<String>,
    /// Why downloads are off, when they are.
    pub offline_reason: Option<&'static str>,
    /// Without a trailing `/`.
    pub endpoint: String,
    /// For the model-info request (`HF_HUB_ETAG_TIMEOUT`).
    pub info_timeout: Duration,
    /// For file downloads (`HF_HUB_DOWNLOAD_TIMEOUT`).
    pub download_timeout: Duration,
}

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Settings {
    pub fn new(options: &HubOptions, env: Env) -> Result<Self> {
        let var = |key: &str| env(key).filter(|v| !v.trim().is_empty());
        let cache_dir = match (
            &options.cache_dir,
            var("HF_HUB_CACHE"),
            var("HUGGINGFACE_HUB_CACHE"),
        ) {
            (Some(dir), _, _) => expand_user(&dir.to_string_lossy(), env),
            (None, Some(dir), _) | (None, None, Some(dir)) => expand_user(&dir, env),
            (None, None, None) => hf_home(env)?.join("hub"),
        };
        let offline_reason = if options.local_files_only {
            Some("local_files_only=True")
        } else if var("HF_HUB_OFFLINE").is_some_and(|v| truthy(&v)) {
            Some("HF_HUB_OFFLINE=1")
        } else if var("TRANSFORMERS_OFFLINE").is_some_and(|v| truthy(&v)) {
            Some("TRANSFORMERS_OFFLINE=1")
        } else {
            None
        };
        let endpoint = options
            .endpoint
            .clone()
            .or_else(|| var("HF_ENDPOINT"))
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
            .trim()
            .trim_end_matches('/')
            .to_string();
        let revision = options
            .revision
            .clone()
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| "main".to_string());
        Ok(Self {
            cache_dir,
            revision,
            token: token(&options.token, env)?,
            offline_reason,
            endpoint,
            info_timeout: timeout(var("HF_HUB_ETAG_TIMEOUT")),
            download_timeout: timeout(var("HF_HUB_DOWNLOAD_TIMEOUT")),
        })
    }
}

/// The token to send, as huggingface_hub picks it.
fn token(choice: &Token, env: Env) -> Result<Option<String>> {
    let var = |key: &str| env(key).filter(|v| !v.trim().is_empty());
    let found = match choice {
        Token::Disabled => return Ok(None),
        Token::Value(t) => return Ok(Some(t.trim().to_string()).filter(|t| !t.is_empty())),
        Token::Auto if var("HF_HUB_DISABLE_IMPLICIT_TOKEN").is_some_and(|v| truthy(&v)) => {
            return Ok(None)
        }
        Token::Auto | Token::Required => var("HF_TOKEN")
            .or_else(|| var("HUGGING_FACE_HUB_TOKEN"))
            .map(|t| t.trim().to_string())
            .or_else(|| saved_token(env)),
    };
    if found.is_none() && *choice == Token::Required {
        return Err(Error::Hub(
            "token=True, but no Hugging Face token was found: set HF_TOKEN, log in with `hf auth \
             login`, or pass the token itself as token='hf_...'"
                .into(),
        ));
    }
    Ok(found)
}

/// The token `hf auth login` saved (`HF_TOKEN_PATH`, else `$HF_HOME/token`).
fn saved_token(env: Env) -> Option<String> {
    let path = match env("HF_TOKEN_PATH").filter(|v| !v.trim().is_empty()) {
        Some(p) => expand_user(&p, env),
        None => hf_home(env).ok()?.join("token"),
    };
    let saved = std::fs::read_to_string(path).ok()?;
    Some(saved.trim().to_string()).filter(|t| !t.is_empty())
}

/// `HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
fn hf_home(env: Env) -> Result<PathBuf> {
    let var = |key: &str| env(key).filter(|v| !v.trim().is_empty());
    if let Some(home) = var("HF_HOME") {
        return Ok(expand_user(&home, env));
    }
    if let Some(xdg) = var("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(xdg).join("huggingface"));
    }
    Ok(home_dir(env)?.join(".cache").join("huggingface"))
}

/// Seconds from the environment; anything unreadable means the default.
fn timeout(value: Option<String>) -> Duration {
    value
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(DEFAULT_TIMEOUT)
}

fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "on" | "yes" | "true"
    )
}

fn home_dir(env: Env) -> Result<PathBuf> {
    env("HOME")
        .or_else(|| env("USERPROFILE"))
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| {
            Error::Hub(
                "cannot find the home directory for the Hugging Face cache: set HF_HOME or pass \
                 cache_folder"
                    .into(),
            )
        })
}

fn expand_user(path: &str, env: Env) -> PathBuf {
    match path.strip_prefix("~") {
        Some(rest) if rest.is_empty() || rest.starts_with(['/', '\\']) => match home_dir(env) {
            Ok(home) => home.join(rest.trim_start_matches(['/', '\\'])),
            Err(_) => PathBuf::from(path),
        },
        _ => PathBuf::from(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::testing::env_of;

    #[test]
    fn settings_follow_huggingface_hub_env() {
        let env = env_of(&[("HOME", "/home/u")]);
        let s = Settings::new(&HubOptions::default(), &env).unwrap();
        assert_eq!(s.cache_dir, PathBuf::from("/home/u/.cache/huggingface/hub"));
        assert_eq!(s.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(s.revision, "main");
        assert!(s.offline_reason.is_none());
        assert_eq!(s.download_timeout, DEFAULT_TIMEOUT);

        let env = env_of(&[
            ("HF_HOME", "/hf"),
            ("HF_ENDPOINT", "http://127.0.0.1:1/"),
            ("HF_HUB_OFFLINE", "1"),
            ("HF_TOKEN", "hf_env"),
            ("HF_HUB_DOWNLOAD_TIMEOUT", "2.5"),
            ("HF_HUB_ETAG_TIMEOUT", "nonsense"),
        ]);
        let s = Settings::new(&HubOptions::default(), &env).unwrap();
        assert_eq!(s.cache_dir, PathBuf::from("/hf/hub"));
        assert_eq!(s.endpoint, "http://127.0.0.1:1");
        assert_eq!(s.offline_reason, Some("HF_HUB_OFFLINE=1"));
        assert_eq!(s.token.as_deref(), Some("hf_env"));
        assert_eq!(s.download_timeout, Duration::from_millis(2500));
        assert_eq!(s.info_timeout, DEFAULT_TIMEOUT);

        let options = HubOptions {
            cache_dir: Some("/c".into()),
            token: Token::Disabled,
            ..Default::default()
        };
        let s = Settings::new(&options, &env).unwrap();
        assert_eq!(s.cache_dir, PathBuf::from("/c"));
        assert_eq!(s.token, None);
    }

    #[test]
    fn saved_token_and_token_true() {
        let home = tempfile::tempdir().unwrap();
        let home_s = home.path().to_str().unwrap();
        let env = env_of(&[("HF_HOME", home_s)]);
        let required = HubOptions {
            token: Token::Required,
            ..Default::default()
        };
        assert!(Settings::new(&required, &env).is_err());
        assert_eq!(
            Settings::new(&HubOptions::default(), &env).unwrap().token,
            None
        );
        std::fs::write(home.path().join("token"), "hf_saved\n").unwrap();
        assert_eq!(
            Settings::new(&required, &env).unwrap().token.as_deref(),
            Some("hf_saved")
        );
        let env = env_of(&[("HF_HOME", home_s), ("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")]);
        assert_eq!(
            Settings::new(&HubOptions::default(), &env).unwrap().token,
            None
        );
    }
}
