//! Test helpers: an environment from pairs, and a loopback hub serving one
//! repository at one commit (model info, resolve URLs with `Range`), with
//! switches for the failures the downloads must survive.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use ring::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY, SHA256};
use serde_json::json;

pub(crate) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

pub(super) const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// How the hub misbehaves, per file name.
#[derive(Default)]
pub(super) struct Faults {
    /// Answer a `Range` with the whole file (200).
    pub ignore_range: bool,
    /// Serve these bytes instead (the listing still describes the real file).
    pub replace: HashMap<String, Vec<u8>>,
    /// Promise the whole body, send this many bytes, hang up (once).
    pub cut: HashMap<String, usize>,
}

#[derive(Clone, Debug)]
pub(super) struct Seen {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
}

struct State {
    repo_id: String,
    files: Vec<(String, Vec<u8>)>,
    faults: Faults,
    requests: Vec<Seen>,
}

pub(super) struct FakeHub {
    pub url: String,
    state: Arc<Mutex<State>>,
}

/// The hub's blob name: sha256 for the LFS-stored weights, else the git id.
pub(super) fn etag_of(name: &str, data: &[u8]) -> String {
    let hash = if name.ends_with(".safetensors") {
        digest(&SHA256, data)
    } else {
        let mut blob = format!("blob {}\0", data.len()).into_bytes();
        blob.extend_from_slice(data);
        digest(&SHA1_FOR_LEGACY_USE_ONLY, &blob)
    };
    hash.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl FakeHub {
    pub fn start(repo_id: &str, files: &[(&str, &[u8])]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            repo_id: repo_id.to_string(),
            files: files
                .iter()
                .map(|(n, d)| (n.to_string(), d.to_vec()))
                .collect(),
            faults: Faults::default(),
            requests: Vec::new(),
        }));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = serve(stream, &shared);
            }
        });
        Self { url, state }
    }

    pub fn faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.state.lock().unwrap().faults);
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut range = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("range") {
                range = Some(value.trim().to_string());
            }
        }
    }
    let path = target.split('?').next().unwrap_or_default().to_string();
    let mut state = state.lock().unwrap();
    state.requests.push(Seen {
        method: method.clone(),
        path: path.clone(),
        range: range.clone(),
    });
    let info = format!("/api/models/{}/revision/main", state.repo_id);
    let resolve = format!("/{}/resolve/{COMMIT}/", state.repo_id);
    let mut out = stream;
    if path == info {
        let siblings: Vec<_> = state
            .files
            .iter()
            .map(|(name, data)| {
                let etag = etag_of(name, data);
                match etag.len() {
                    64 => json!({"rfilename": name, "size": data.len(), "blobId": "ab",
                                 "lfs": {"sha256": etag, "size": data.len()}}),
                    _ => json!({"rfilename": name, "size": data.len(), "blobId": etag}),
                }
            })
            .collect();
        let body = json!({"sha": COMMIT, "siblings": siblings}).to_string();
        return reply(&mut out, "200 OK", &[], body.as_bytes(), None);
    }
    let Some(name) = path.strip_prefix(&resolve).map(str::to_string) else {
        return reply(&mut out, "404 Not Found", &[], b"{}", None);
    };
    let Some(real) = state.files.iter().find(|(n, _)| *n == name) else {
        return reply(&mut out, "404 Not Found", &[], b"{}", None);
    };
    let data = state.faults.replace.get(&name).unwrap_or(&real.1).clone();
    let etag = format!("\"{}\"", etag_of(&name, &real.1));
    let start = match (&range, state.faults.ignore_range) {
        (Some(r), false) => r
            .strip_prefix("bytes=")
            .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok()),
        _ => None,
    };
    let cut = state.faults.cut.remove(&name);
    drop(state);
    match start {
        Some(start) if start >= data.len() => {
            let total = format!("bytes */{}", data.len());
            reply(
                &mut out,
                "416 Range Not Satisfiable",
                &[("Content-Range", &total)],
                b"",
                None,
            )
        }
        Some(start) => {
            let span = format!("bytes {start}-{}/{}", data.len() - 1, data.len());
            let headers = [("ETag", etag.as_str()), ("Content-Range", span.as_str())];
            reply(
                &mut out,
                "206 Partial Content",
                &headers,
                &data[start..],
                cut,
            )
        }
        None => reply(&mut out, "200 OK", &[("ETag", &etag)], &data, cut),
    }
}

/// Writes an answer (and closes: one request per connection); `cut`: only
/// that many bytes of the body.
fn reply(
    out: &mut TcpStream,
    status: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    cut: Option<usize>,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.write_all(&body[..cut.unwrap_or(body.len()).min(body.len())])?;
    out.flush()?;
    // Drain what the client may still send, so the close is not a reset.
    out.shutdown(std::net::Shutdown::Write)?;
    let _ = out.read(&mut [0; 64]);
    Ok(())
}
