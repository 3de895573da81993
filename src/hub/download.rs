//! Getting a snapshot's files into the cache: which files to fetch, then each
//! one as a blob that is streamed into `blobs/<etag>.incomplete` (resumed
//! where an earlier try stopped), checked against the listing's size and
//! hash, renamed into `blobs/<etag>` and linked from the snapshot.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ring::digest::{Context, SHA1_FOR_LEGACY_USE_ONLY, SHA256};

use super::cache::{
    blob_path, incomplete_path, is_cached, is_safe_relative, link_blob, lock_path, read_index,
    repo_dir, snapshot_dir, write_ref,
};
use super::client::{Client, FileError, Listed, RepoInfo};
use super::messages::denied_message;
use super::settings::Settings;
use super::{DownloadProgress, CONFIG_FILE, SENTENCE_TRANSFORMERS_FILES, TOKENIZER_FILES};
use crate::error::{Error, Result};
use crate::weights::WEIGHT_CANDIDATES;

/// How often (at most) a download reports progress.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// Bytes read from the network per write.
const CHUNK: usize = 256 * 1024;

/// The files to fetch, before any shards: config, tokenizer and
/// sentence-transformers files the repo has, then the best weights.
fn plan_files(id: &str, settings: &Settings, info: &RepoInfo) -> Result<Vec<String>> {
    let has = |name: &str| info.files.contains_key(name);
    let listing = || {
        let names: Vec<&str> = info.files.keys().map(String::as_str).take(30).collect();
        match info.files.len() - names.len() {
            0 => names.join(", "),
            more => format!("{}, ... ({more} more)", names.join(", ")),
        }
    };
    let at = format!("{id:?} (revision {:?})", settings.revision);
    if !has(CONFIG_FILE) {
        return Err(Error::Hub(format!(
            "{at} has no config.json, so it is not a transformers model crossrank can load; it \
             has: {}",
            listing()
        )));
    }
    let Some(weights) = WEIGHT_CANDIDATES.iter().find(|name| has(name)) else {
        return Err(Error::Hub(format!(
            "{at} has no weights in a format crossrank reads ({}); it has: {}",
            WEIGHT_CANDIDATES.join(", "),
            listing()
        )));
    };
    let mut plan = vec![CONFIG_FILE.to_string()];
    plan.extend(
        TOKENIZER_FILES
            .iter()
            .chain(SENTENCE_TRANSFORMERS_FILES)
            .filter(|name| has(name))
            .map(|name| name.to_string()),
    );
    plan.push(weights.to_string());
    Ok(plan)
}

/// Makes `snapshots/<commit>` hold every file the model needs; returns the
/// names it downloaded. `refs/<revision>` is written last, so that a ref
/// never names a snapshot that lacks a file.
pub(super) fn fetch_snapshot(
    client: &Client,
    settings: &Settings,
    id: &str,
    info: &RepoInfo,
    progress: &mut dyn DownloadProgress,
) -> Result<Vec<String>> {
    let fetcher = Fetcher {
        client,
        settings,
        id,
        repo: repo_dir(&settings.cache_dir, id),
        snapshot: snapshot_dir(&settings.cache_dir, id, &info.sha),
    };
    let mut downloaded = Vec::new();
    let mut fetch = |file: &str, progress: &mut dyn DownloadProgress| -> Result<()> {
        let listed = info.files.get(file).cloned().unwrap_or_default();
        if fetcher.ensure(file, &info.sha, listed, progress)? {
            downloaded.push(file.to_string());
        }
        Ok(())
    };
    let plan = plan_files(id, settings, info)?;
    for file in &plan {
        fetch(file, &mut *progress)?;
    }
    let weights = plan.last().expect("plan ends with the weights");
    if weights.ends_with(".index.json") {
        for shard in read_index(&fetcher.snapshot.join(weights))? {
            if !info.files.contains_key(&shard) {
                return Err(Error::Hub(format!(
                    "{id:?}: {weights} names the shard {shard}, which the repository does not \
                     have"
                )));
            }
            fetch(&shard, &mut *progress)?;
        }
    }
    if settings.revision != info.sha {
        write_ref(&fetcher.repo, &settings.revision, &info.sha)
            .map_err(|e| Error::io(fetcher.repo.join("refs").join(&settings.revision), e))?;
    }
    Ok(downloaded)
}

/// A blob as the hub names it, and how to check its bytes.
#[derive(Clone, Debug)]
struct Blob {
    etag: String,
    size: u64,
}

impl Blob {
    /// The hash the etag is: sha256 of the contents for an LFS file (64 hex
    /// digits), the git blob id (sha1 of `blob <size>\0` + contents) for any
    /// other (40). `None`: only the size can be checked.
    fn hasher(&self) -> Option<Context> {
        match self.etag.len() {
            64 => Some(Context::new(&SHA256)),
            40 => {
                let mut git = Context::new(&SHA1_FOR_LEGACY_USE_ONLY);
                git.update(format!("blob {}\0", self.size).as_bytes());
                Some(git)
            }
            _ => None,
        }
    }

    fn hash_name(&self) -> &'static str {
        if self.etag.len() == 64 {
            "sha256"
        } else {
            "git blob id"
        }
    }
}

/// Why a blob is not in place.
#[derive(Debug)]
enum BlobError {
    Request(FileError),
    /// The connection failed mid-body; the part received is kept.
    Body(std::io::Error),
    Io(PathBuf, std::io::Error),
    /// The body ended after `got` bytes; the part received is kept.
    Short {
        got: u64,
    },
    /// More bytes than listed: discarded.
    Long,
    /// The bytes do not hash to the etag: discarded.
    Mismatch,
    /// The progress callback said stop; the part received is kept.
    Stopped,
}

struct Fetcher<'a> {
    client: &'a Client,
    settings: &'a Settings,
    id: &'a str,
    repo: PathBuf,
    snapshot: PathBuf,
}

impl Fetcher<'_> {
    /// Puts `file` in the snapshot; `true` when it had to be downloaded.
    fn ensure(
        &self,
        file: &str,
        commit: &str,
        listed: Listed,
        progress: &mut dyn DownloadProgress,
    ) -> Result<bool> {
        if !is_safe_relative(file) {
            return Err(Error::Hub(format!(
                "{:?}: unsafe file name {file:?}",
                self.id
            )));
        }
        let pointer = self.snapshot.join(file);
        if is_cached(&pointer, listed.size) {
            return Ok(false);
        }
        // A dangling link, or a file of the wrong size: replace it.
        if std::fs::symlink_metadata(&pointer).is_ok() {
            std::fs::remove_file(&pointer).map_err(|e| Error::io(&pointer, e))?;
        }
        let url = self.client.file_url(self.id, commit, file);
        let blob = match (listed.etag, listed.size) {
            (Some(etag), Some(size)) => Blob { etag, size },
            _ => {
                let (etag, size) = self
                    .client
                    .file_meta(&url)
                    .map_err(|e| self.error(file, &url, None, BlobError::Request(e)))?;
                Blob { etag, size }
            }
        };
        let path = blob_path(&self.repo, &blob.etag);
        let downloaded = !has_blob(&path, blob.size)
            && self.download(file, &url, &blob, &path, &mut *progress)?;
        link_blob(&path, &pointer, file).map_err(|e| Error::io(&pointer, e))?;
        Ok(downloaded)
    }

    /// Downloads `blob` to `path` under the blob's lock; `false` when another
    /// process finished it first.
    fn download(
        &self,
        file: &str,
        url: &str,
        blob: &Blob,
        path: &Path,
        progress: &mut dyn DownloadProgress,
    ) -> Result<bool> {
        let lock = lock_path(&self.settings.cache_dir, self.id, &blob.etag);
        let _held = match try_lock(&lock).map_err(|e| Error::io(&lock, e))? {
            Some(held) => held,
            None => {
                return Err(Error::Hub(format!(
                    "another process is downloading {file} of {:?} (lock {}); try again when it \
                     has finished",
                    self.id,
                    lock.display()
                )))
            }
        };
        if has_blob(path, blob.size) {
            return Ok(false);
        }
        let partial = incomplete_path(path);
        let mut report = FileProgress::new(progress);
        if !report.inner.start(file, blob.size) {
            return Err(Error::Interrupted);
        }
        fetch_blob(self.client, url, &partial, blob, &mut report)
            .map_err(|e| self.error(file, url, Some(blob), e))?;
        std::fs::rename(&partial, path).map_err(|e| Error::io(path, e))?;
        Ok(true)
    }

    fn error(&self, file: &str, url: &str, blob: Option<&Blob>, error: BlobError) -> Error {
        let id = self.id;
        let kept = "The partial download is kept aside, never used as a model file; running \
                    again resumes it.";
        let size = blob.map_or(0, |b| b.size);
        let message = match error {
            BlobError::Stopped => return Error::Interrupted,
            BlobError::Io(path, e) => return Error::io(path, e),
            BlobError::Request(FileError::Status(status @ (401 | 403))) => {
                denied_message(id, status, None, self.settings)
            }
            BlobError::Request(FileError::Status(404)) => {
                format!("{file} of {id:?} is listed by the hub but {url} answered HTTP 404")
            }
            BlobError::Request(FileError::Status(status)) => {
                format!("downloading {url} failed: HTTP {status}")
            }
            BlobError::Request(FileError::Transport(e)) => {
                format!("downloading {file} of {id:?} from {url} failed ({e}). {kept}")
            }
            BlobError::Request(FileError::Invalid(why)) => {
                format!("downloading {file} of {id:?} from {url} failed: {why}")
            }
            BlobError::Body(e) => {
                format!("downloading {file} of {id:?} from {url} failed ({e}). {kept}")
            }
            BlobError::Short { got } => format!(
                "downloading {file} of {id:?} from {url} failed: the answer ended after {got} of \
                 {size} bytes. {kept}"
            ),
            BlobError::Long => format!(
                "the download of {file} for {id:?} from {url} is longer than the {size} bytes \
                 the hub lists and was discarded; run again to retry"
            ),
            BlobError::Mismatch => format!(
                "the download of {file} for {id:?} from {url} does not match its {} {} and was \
                 discarded; run again to retry",
                blob.map_or("hash", Blob::hash_name),
                blob.map_or("", |b| b.etag.as_str())
            ),
        };
        Error::Hub(message)
    }
}

fn has_blob(path: &Path, size: u64) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == size)
}

/// The blob's lock (an advisory `flock`, as huggingface_hub's `filelock`
/// takes); `None` when another process holds it.
fn try_lock(path: &Path) -> std::io::Result<Option<File>> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Streams `url` into `partial` until it holds the whole, checked blob:
/// resumes from what `partial` already holds when the server answers the
/// `Range` (206), starts over when it sends the whole file (200) or cannot
/// serve the range (416).
fn fetch_blob(
    client: &Client,
    url: &str,
    partial: &Path,
    blob: &Blob,
    report: &mut FileProgress,
) -> std::result::Result<(), BlobError> {
    let io = |e| BlobError::Io(partial.to_path_buf(), e);
    let mut have = std::fs::metadata(partial).map_or(0, |m| m.len());
    // Complete but never checked (stopped at the very end): check it now.
    if have == blob.size && blob.size > 0 {
        let hasher = blob.hasher();
        if complete_file_matches(partial, blob, hasher).map_err(io)? {
            return match report.advance(have) && report.flush() {
                true => Ok(()),
                false => Err(BlobError::Stopped),
            };
        }
    }
    if have >= blob.size {
        remove(partial).map_err(io)?;
        have = 0;
    }
    let body = match client.open(url, have) {
        Err(FileError::Status(416)) if have > 0 => {
            remove(partial).map_err(io)?;
            have = 0;
            client.open(url, 0)
        }
        other => other,
    }
    .map_err(BlobError::Request)?;
    if body.start != have && body.start != 0 {
        remove(partial).map_err(io)?;
        return Err(BlobError::Request(FileError::Invalid(format!(
            "asked for bytes {have}- and got bytes {}-",
            body.start
        ))));
    }
    if let Some(blobs) = partial.parent() {
        std::fs::create_dir_all(blobs).map_err(io)?;
    }
    let mut out = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(partial)
        .map_err(io)?;
    // What is kept counts towards the hash, and towards the progress shown.
    out.set_len(body.start).map_err(io)?;
    let mut hasher = blob.hasher();
    if let Some(hasher) = &mut hasher {
        hash_prefix(&mut out, body.start, hasher).map_err(io)?;
    }
    out.seek(SeekFrom::Start(body.start)).map_err(io)?;
    if body.start > 0 && !report.advance(body.start) {
        return Err(BlobError::Stopped);
    }
    let remaining = blob.size - body.start;
    let got = copy_body(
        body.reader,
        (&mut out, partial),
        remaining,
        &mut hasher,
        report,
    )?;
    drop(out);
    check(partial, blob, body.start + got, hasher)
}

/// Copies at most `remaining + 1` bytes (one more shows a body too long).
/// Returns the bytes copied; a plain return (`Stopped`) when the progress
/// callback says stop, leaving what arrived for a later resume.
fn copy_body(
    body: impl Read,
    (out, path): (&mut File, &Path),
    remaining: u64,
    hasher: &mut Option<Context>,
    report: &mut FileProgress,
) -> std::result::Result<u64, BlobError> {
    let mut body = body.take(remaining + 1);
    let mut buf = vec![0; CHUNK];
    let mut got = 0;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BlobError::Body(e)),
        };
        out.write_all(&buf[..n])
            .map_err(|e| BlobError::Io(path.to_path_buf(), e))?;
        if let Some(hasher) = hasher {
            hasher.update(&buf[..n]);
        }
        got += n as u64;
        if got > remaining {
            return Ok(got);
        }
        if !report.advance(n as u64) {
            return Err(BlobError::Stopped);
        }
    }
    if !report.flush() {
        return Err(BlobError::Stopped);
    }
    Ok(got)
}

/// Keeps a short `partial` (to resume), removes a long or corrupt one.
fn check(
    partial: &Path,
    blob: &Blob,
    len: u64,
    hasher: Option<Context>,
) -> std::result::Result<(), BlobError> {
    let discard = |error| match remove(partial) {
        Ok(()) => error,
        Err(e) => BlobError::Io(partial.to_path_buf(), e),
    };
    if len < blob.size {
        return Err(BlobError::Short { got: len });
    }
    if len > blob.size {
        return Err(discard(BlobError::Long));
    }
    match hasher.is_none_or(|h| matches_etag(h, blob)) {
        true => Ok(()),
        false => Err(discard(BlobError::Mismatch)),
    }
}

fn matches_etag(hasher: Context, blob: &Blob) -> bool {
    hex(hasher.finish().as_ref()) == blob.etag.to_ascii_lowercase()
}

/// Whether `path`, `blob.size` bytes long, hashes to the blob's etag.
fn complete_file_matches(
    path: &Path,
    blob: &Blob,
    hasher: Option<Context>,
) -> std::io::Result<bool> {
    let Some(mut hasher) = hasher else {
        return Ok(true);
    };
    hash_prefix(&mut File::open(path)?, blob.size, &mut hasher)?;
    Ok(matches_etag(hasher, blob))
}

/// Feeds the first `len` bytes of `file` to `hasher`.
fn hash_prefix(file: &mut File, len: u64, hasher: &mut Context) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    let mut prefix = (&mut *file).take(len);
    let mut buf = vec![0; CHUNK];
    loop {
        match prefix.read(&mut buf)? {
            0 => break,
            n => hasher.update(&buf[..n]),
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// One file's progress: `advance` at most every [`PROGRESS_INTERVAL`], and
/// `finish` whatever happens (on drop).
struct FileProgress<'a> {
    inner: &'a mut dyn DownloadProgress,
    pending: u64,
    last: Instant,
}

impl<'a> FileProgress<'a> {
    fn new(inner: &'a mut dyn DownloadProgress) -> Self {
        Self {
            inner,
            pending: 0,
            last: Instant::now(),
        }
    }

    /// `false`: stop.
    fn advance(&mut self, bytes: u64) -> bool {
        self.pending += bytes;
        self.last.elapsed() < PROGRESS_INTERVAL || self.flush()
    }

    fn flush(&mut self) -> bool {
        self.last = Instant::now();
        match std::mem::take(&mut self.pending) {
            0 => true,
            bytes => self.inner.advance(bytes),
        }
    }
}

impl Drop for FileProgress<'_> {
    fn drop(&mut self) {
        self.inner.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{env_of, etag_of, FakeHub};
    use super::super::{resolve_with_env, HubOptions};
    use super::*;

    const WEIGHTS: &str = "model.safetensors";

    fn weights() -> Vec<u8> {
        (0..600_000u32).map(|i| (i * 13 % 253) as u8).collect()
    }

    struct Setup {
        hub: FakeHub,
        cache: tempfile::TempDir,
        options: HubOptions,
        repo: PathBuf,
        blob: PathBuf,
    }

    fn setup() -> Setup {
        let data = weights();
        let hub = FakeHub::start("org/m", &[("config.json", b"{\"a\": 1}"), (WEIGHTS, &data)]);
        let cache = tempfile::tempdir().unwrap();
        let options = HubOptions {
            cache_dir: Some(cache.path().into()),
            endpoint: Some(hub.url.clone()),
            ..Default::default()
        };
        let repo = repo_dir(cache.path(), "org/m");
        let blob = blob_path(&repo, &etag_of(WEIGHTS, &data));
        Setup {
            hub,
            cache,
            options,
            repo,
            blob,
        }
    }

    impl Setup {
        fn resolve(&self, progress: Option<&mut dyn DownloadProgress>) -> Result<Vec<String>> {
            resolve_with_env("org/m", &self.options, progress, &env_of(&[])).map(|r| r.downloaded)
        }

        fn weight_requests(&self) -> Vec<Option<String>> {
            let requests = self.hub.requests();
            requests
                .into_iter()
                .filter(|r| r.method == "GET" && r.path.ends_with(WEIGHTS))
                .map(|r| r.range)
                .collect()
        }

        /// Nothing a load would use: no blob, no snapshot file, no ref.
        fn assert_nothing_usable(&self) {
            assert!(!self.blob.exists());
            let snapshot = self
                .repo
                .join("snapshots")
                .join(super::super::testing::COMMIT);
            assert!(std::fs::symlink_metadata(snapshot.join(WEIGHTS)).is_err());
            assert!(!self.repo.join("refs").join("main").exists());
        }
    }

    /// Counts what it is told; says stop once `stop_at` bytes have arrived.
    #[derive(Default)]
    struct Recorder {
        started: Vec<(String, u64)>,
        bytes: u64,
        finished: usize,
        stop_at: Option<u64>,
    }

    impl DownloadProgress for Recorder {
        fn start(&mut self, file: &str, size: u64) -> bool {
            self.started.push((file.to_string(), size));
            self.bytes = 0;
            true
        }
        fn advance(&mut self, bytes: u64) -> bool {
            self.bytes += bytes;
            self.stop_at.is_none_or(|at| self.bytes < at)
        }
        fn finish(&mut self) {
            self.finished += 1;
        }
    }

    #[test]
    fn resumes_a_partial_blob() {
        let s = setup();
        let data = weights();
        std::fs::create_dir_all(s.blob.parent().unwrap()).unwrap();
        std::fs::write(incomplete_path(&s.blob), &data[..250_000]).unwrap();
        let mut progress = Recorder::default();
        let downloaded = s.resolve(Some(&mut progress)).unwrap();
        assert!(downloaded.contains(&WEIGHTS.to_string()));
        assert_eq!(s.weight_requests(), [Some("bytes=250000-".to_string())]);
        assert_eq!(std::fs::read(&s.blob).unwrap(), data);
        assert!(!incomplete_path(&s.blob).exists());
        // The bar counts the resumed part too.
        assert_eq!(progress.started.last().unwrap().1, data.len() as u64);
        assert_eq!(progress.bytes, data.len() as u64);
        assert_eq!(progress.finished, progress.started.len());
    }

    #[test]
    fn starts_over_when_the_server_ignores_the_range() {
        let s = setup();
        s.hub.faults(|f| f.ignore_range = true);
        std::fs::create_dir_all(s.blob.parent().unwrap()).unwrap();
        std::fs::write(incomplete_path(&s.blob), b"stale bytes from elsewhere").unwrap();
        s.resolve(None).unwrap();
        assert_eq!(std::fs::read(&s.blob).unwrap(), weights());
    }

    #[test]
    fn a_dropped_connection_keeps_the_part_and_the_next_try_resumes() {
        let s = setup();
        s.hub.faults(|f| {
            f.cut.insert(WEIGHTS.into(), 100_000);
        });
        let err = s.resolve(None).unwrap_err().to_string();
        assert!(err.contains("failed") && err.contains("resumes"), "{err}");
        s.assert_nothing_usable();
        let kept = std::fs::metadata(incomplete_path(&s.blob)).unwrap().len();
        assert!(kept > 0 && kept <= 100_000, "{kept}");
        s.resolve(None).unwrap();
        assert_eq!(s.weight_requests()[1], Some(format!("bytes={kept}-")));
        assert_eq!(std::fs::read(&s.blob).unwrap(), weights());
    }

    #[test]
    fn a_body_longer_than_listed_is_rejected() {
        let s = setup();
        let mut long = weights();
        long.extend_from_slice(b"trailing");
        s.hub.faults(|f| {
            f.replace.insert(WEIGHTS.into(), long);
        });
        let err = s.resolve(None).unwrap_err().to_string();
        assert!(err.contains("longer than the 600000 bytes"), "{err}");
        s.assert_nothing_usable();
        assert!(!incomplete_path(&s.blob).exists());
    }

    #[test]
    fn a_short_body_is_kept_to_resume() {
        let s = setup();
        s.hub.faults(|f| {
            f.replace.insert(WEIGHTS.into(), weights()[..1000].to_vec());
        });
        let err = s.resolve(None).unwrap_err().to_string();
        assert!(err.contains("ended after 1000 of 600000 bytes"), "{err}");
        s.assert_nothing_usable();
        s.hub.faults(|f| f.replace.clear());
        s.resolve(None).unwrap();
        assert_eq!(s.weight_requests()[1], Some("bytes=1000-".into()));
        assert_eq!(std::fs::read(&s.blob).unwrap(), weights());
    }

    #[test]
    fn a_hash_mismatch_is_rejected() {
        let s = setup();
        let mut corrupt = weights();
        corrupt[12_345] ^= 1;
        s.hub.faults(|f| {
            f.replace.insert(WEIGHTS.into(), corrupt);
            // A git blob id is checked as well.
            f.replace
                .insert("config.json".into(), b"{\"a\": 2}".to_vec());
        });
        let err = s.resolve(None).unwrap_err().to_string();
        assert!(
            err.contains("config.json") && err.contains("git blob id"),
            "{err}"
        );
        s.hub.faults(|f| {
            f.replace.remove("config.json");
        });
        let err = s.resolve(None).unwrap_err().to_string();
        assert!(err.contains("does not match its sha256"), "{err}");
        s.assert_nothing_usable();
        assert!(!incomplete_path(&s.blob).exists());
    }

    #[test]
    fn cancel_leaves_no_blob_and_no_ref() {
        let s = setup();
        let mut progress = Recorder {
            stop_at: Some(1),
            ..Default::default()
        };
        let err = s.resolve(Some(&mut progress)).unwrap_err();
        assert!(matches!(err, Error::Interrupted), "{err}");
        assert_eq!(progress.finished, progress.started.len());
        s.assert_nothing_usable();
        // What arrived is kept; the next try completes (and checks) it.
        let mut progress = Recorder::default();
        s.resolve(Some(&mut progress)).unwrap();
        assert_eq!(std::fs::read(&s.blob).unwrap(), weights());
        assert_eq!(progress.bytes, weights().len() as u64);
    }

    #[test]
    fn a_blob_locked_by_another_download_is_not_touched() {
        let s = setup();
        let lock = lock_path(s.cache.path(), "org/m", &etag_of(WEIGHTS, &weights()));
        let held = try_lock(&lock).unwrap().unwrap();
        let err = s.resolve(None).unwrap_err().to_string();
        assert!(err.contains("another process is downloading"), "{err}");
        s.assert_nothing_usable();
        drop(held);
        s.resolve(None).unwrap();
    }

    #[test]
    fn progress_is_reported_in_intervals() {
        let mut recorder = Recorder::default();
        let mut report = FileProgress::new(&mut recorder);
        assert!(report.advance(5) && report.advance(6));
        assert!(report.flush());
        drop(report);
        assert_eq!((recorder.bytes, recorder.finished), (11, 1));
    }
}
