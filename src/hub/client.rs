//! The few HTTP calls the hub layout needs, on `ureq`: a model's info
//! (`/api/models/{id}/revision/{rev}?blobs=true`), a file's blob name and size
//! (`HEAD /{id}/resolve/{commit}/{file}`, only when the listing lacks them)
//! and a file's body from an offset (`GET` of the same URL, with `Range`).
//!
//! Statuses are read from the response (`http_status_as_error(false)`), so
//! every decision is made on the number, never on an error's text.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use ureq::config::RedirectAuthHeaders;
use ureq::http::{HeaderMap, Response};
use ureq::typestate::WithoutBody;
use ureq::{Agent, Body, BodyReader, RequestBuilder};

use super::settings::Settings;

/// The model info is JSON listing every file: generous, but bounded.
const MAX_INFO_BYTES: u64 = 64 << 20;

pub(super) struct Client {
    agent: Agent,
    endpoint: String,
    token: Option<String>,
    info_timeout: Duration,
}

/// A repository at one commit, as the model info lists it.
pub(super) struct RepoInfo {
    pub sha: String,
    pub files: BTreeMap<String, Listed>,
}

/// What the listing (`?blobs=true`) says about a file, where it says it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Listed {
    pub size: Option<u64>,
    /// The blob name the hub's `ETag` gives: the sha256 of an LFS file, the
    /// git blob id of any other.
    pub etag: Option<String>,
}

/// Why the model info is not there.
pub(super) enum InfoError {
    /// 404, or 401 with `X-Error-Code: RepoNotFound` (the hub's answer to an
    /// anonymous request for a missing or private repository).
    NotFound {
        status: u16,
    },
    RevisionNotFound,
    /// 401/403 for a repository that exists (gated, private).
    Denied {
        status: u16,
        code: Option<String>,
    },
    /// No answer (connection, DNS, TLS, timeout) or a server error: the
    /// cache may stand in.
    Unreachable(String),
    Invalid(String),
}

/// Why a file request failed.
#[derive(Debug)]
pub(super) enum FileError {
    Status(u16),
    Transport(ureq::Error),
    Invalid(String),
}

/// A file's body, starting at byte `start` of the file.
pub(super) struct FileBody {
    pub start: u64,
    pub reader: BodyReader<'static>,
}

impl Client {
    pub fn new(settings: &Settings) -> Self {
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(format!("crossrank/{}", env!("CARGO_PKG_VERSION")))
            // The token goes along hub-internal redirects, not to the LFS CDN
            // (whose URLs are signed), as with huggingface_hub.
            .redirect_auth_headers(RedirectAuthHeaders::SameHost)
            .timeout_connect(Some(settings.download_timeout))
            .timeout_recv_response(Some(settings.download_timeout))
            .build();
        Self {
            agent: Agent::new_with_config(config),
            endpoint: settings.endpoint.clone(),
            token: settings.token.clone(),
            info_timeout: settings.info_timeout,
        }
    }

    fn authorized(&self, request: RequestBuilder<WithoutBody>) -> RequestBuilder<WithoutBody> {
        match &self.token {
            Some(token) => request.header("Authorization", format!("Bearer {token}")),
            None => request,
        }
    }

    /// The files of `id` at `revision` and the commit that is (one request,
    /// so every file can then be fetched at that commit).
    pub fn model_info(&self, id: &str, revision: &str) -> Result<RepoInfo, InfoError> {
        let url = format!(
            "{}/api/models/{id}/revision/{}?blobs=true",
            self.endpoint,
            encode(revision, false)
        );
        let mut response = self
            .authorized(self.agent.get(&url))
            .config()
            .timeout_connect(Some(self.info_timeout))
            .timeout_recv_response(Some(self.info_timeout))
            .build()
            .call()
            .map_err(|e| InfoError::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let code = header(response.headers(), "x-error-code").map(str::to_string);
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_INFO_BYTES)
            .read_to_string()
            .map_err(|e| InfoError::Unreachable(format!("reading the model info: {e}")))?;
        match (status, code.as_deref()) {
            (200..=299, _) => parse_info(&body).map_err(InfoError::Invalid),
            (_, Some("RevisionNotFound")) => Err(InfoError::RevisionNotFound),
            (404, _) | (401, Some("RepoNotFound")) => Err(InfoError::NotFound { status }),
            (401 | 403, _) => Err(InfoError::Denied { status, code }),
            (500.., _) | (429, _) => Err(InfoError::Unreachable(format!("HTTP {status}"))),
            _ => Err(InfoError::Invalid(format!(
                "HTTP {status}: {}",
                body.chars().take(200).collect::<String>()
            ))),
        }
    }

    pub fn file_url(&self, id: &str, commit: &str, file: &str) -> String {
        format!(
            "{}/{id}/resolve/{commit}/{}",
            self.endpoint,
            encode(file, true)
        )
    }

    /// `(etag, size)` of a file from the headers of its resolve URL, not
    /// following the redirect: for an LFS file the hub's `X-Linked-*`
    /// headers on the redirect itself describe the file (the CDN's would not).
    pub fn file_meta(&self, url: &str) -> Result<(String, u64), FileError> {
        let response = self
            .authorized(self.agent.head(url))
            .config()
            .max_redirects(0)
            .build()
            .call()
            .map_err(FileError::Transport)?;
        let status = response.status().as_u16();
        if !(200..400).contains(&status) {
            return Err(FileError::Status(status));
        }
        let headers = response.headers();
        let etag = header(headers, "x-linked-etag")
            .or_else(|| header(headers, "etag"))
            .map(|e| e.trim_start_matches("W/").trim_matches('"').to_string())
            .filter(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_hexdigit()));
        let size = header(headers, "x-linked-size")
            .or_else(|| header(headers, "content-length"))
            .and_then(|s| s.trim().parse().ok());
        match (etag, size) {
            (Some(etag), Some(size)) => Ok((etag, size)),
            _ => Err(FileError::Invalid(format!(
                "HTTP {status} without the ETag and size of the file"
            ))),
        }
    }

    /// The body of `url` from byte `from` on (`Range` when `from > 0`). A
    /// server may answer with the whole file instead (`start` 0).
    pub fn open(&self, url: &str, from: u64) -> Result<FileBody, FileError> {
        let mut request = self.authorized(self.agent.get(url));
        if from > 0 {
            request = request.header("Range", format!("bytes={from}-"));
        }
        let response = request.call().map_err(FileError::Transport)?;
        let start = match response.status().as_u16() {
            200 => 0,
            206 => range_start(&response).ok_or_else(|| {
                FileError::Invalid("HTTP 206 without a readable Content-Range".into())
            })?,
            status => return Err(FileError::Status(status)),
        };
        Ok(FileBody {
            start,
            reader: response.into_body().into_reader(),
        })
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The first byte of a 206 answer (`Content-Range: bytes <start>-<end>/<size>`).
fn range_start(response: &Response<Body>) -> Option<u64> {
    header(response.headers(), "content-range")?
        .trim()
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Percent-encodes all but unreserved characters (and `/` when
/// `keep_slash`), as huggingface_hub quotes revisions and file names.
fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(super) fn parse_info(body: &str) -> Result<RepoInfo, String> {
    let json: Value = serde_json::from_str(body).map_err(|e| format!("not JSON ({e})"))?;
    let sha = json
        .get("sha")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("no \"sha\" in the model info")?
        .to_string();
    let siblings = json
        .get("siblings")
        .and_then(Value::as_array)
        .ok_or("no \"siblings\" file list in the model info")?;
    let files = siblings.iter().filter_map(parse_sibling).collect();
    Ok(RepoInfo { sha, files })
}

fn parse_sibling(sibling: &Value) -> Option<(String, Listed)> {
    let name = sibling.get("rfilename")?.as_str()?.to_string();
    let lfs = sibling.get("lfs");
    // The hub names an LFS file's blob by its sha256, any other by its git id.
    let etag = lfs
        .and_then(|l| l.get("sha256"))
        .or_else(|| sibling.get("blobId"))
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string);
    let size = sibling
        .get("size")
        .or_else(|| lfs.and_then(|l| l.get("size")))
        .and_then(Value::as_u64);
    Some((name, Listed { size, etag }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_parsing() {
        let info = parse_info(
            r#"{"sha": "abc", "siblings": [{"rfilename": "config.json", "size": 3},
                {"rfilename": "vocab.txt"}]}"#,
        )
        .unwrap();
        assert_eq!(info.sha, "abc");
        assert_eq!(info.files["config.json"].size, Some(3));
        assert_eq!(info.files["vocab.txt"], Listed::default());
        let lfs = parse_info(
            r#"{"sha": "abc", "siblings": [{"rfilename": "model.safetensors", "blobId": "0a1b",
                "size": 9, "lfs": {"sha256": "ffee", "size": 9}},
                {"rfilename": "vocab.txt", "blobId": "12cd", "size": 4}]}"#,
        )
        .unwrap();
        let weights = &lfs.files["model.safetensors"];
        assert_eq!(
            (weights.etag.as_deref(), weights.size),
            (Some("ffee"), Some(9))
        );
        assert_eq!(lfs.files["vocab.txt"].etag.as_deref(), Some("12cd"));
        assert!(parse_info("{}").is_err());
        assert!(parse_info("<html>").is_err());
    }

    #[test]
    fn url_parts_are_quoted() {
        assert_eq!(encode("feature/x", false), "feature%2Fx");
        assert_eq!(encode("onnx/model v2.onnx", true), "onnx/model%20v2.onnx");
        assert_eq!(encode("a-b_c.d~e", false), "a-b_c.d~e");
    }
}
