//! The routes file: an append-only journal of JSON lines, compacted into a snapshot now and then, so that a proxy
//! restart (or crash) loses no route.
//!
//! One writer thread owns the file. API calls hand it records and wait for the write, so a `201` means the route is
//! on disk (in the page cache; `fdatasync` runs at most once a second). Records are idempotent upserts and removals,
//! which makes it safe for a compaction snapshot to include changes whose records are still queued.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::oneshot;

/// One line of the routes file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Record {
    Add { path: String, data: Map<String, Value>, last_activity_ms: i64 },
    Remove { path: String },
}

/// Errors opening or writing the routes file.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("routes file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "routes file {path} is in use by another proxy; give each proxy its own --routes-file \
         (or pass --no-persist-routes)"
    )]
    Locked { path: PathBuf },
    #[error("routes file writer has stopped")]
    Stopped,
}

/// What the writer thread needs to compact: the live routes right now, as records.
pub(crate) type SnapshotSource = Box<dyn Fn() -> Vec<Record> + Send>;

enum Command {
    Append(Record, oneshot::Sender<Result<(), String>>),
    Close(Vec<Record>, oneshot::Sender<Result<(), String>>),
}

/// Handle to the writer thread.
pub(crate) struct Journal {
    path: PathBuf,
    sender: Option<mpsc::Sender<Command>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Journal {
    /// Waits for the writer to flush and release the file lock, so the file can be reopened right away.
    fn drop(&mut self) {
        self.sender.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The routes read back from the file at start, in file order, with anything that could not be read reported.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub(crate) routes: Vec<(String, Map<String, Value>, i64)>,
    pub(crate) skipped_lines: Vec<usize>,
}

impl Journal {
    /// Locks and reads the routes file (creating it if needed) and starts the writer thread.
    ///
    /// The caller installs `loaded.routes` and then calls [`Journal::start`] with a way to snapshot them.
    pub(crate) fn open(path: &Path) -> Result<(Loaded, PendingJournal), JournalError> {
        let io_error = |source| JournalError::Io { path: path.to_owned(), source };
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_error)?;
        }
        let lock_path = lock_path(path);
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io_error)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(JournalError::Locked { path: path.to_owned() }),
            Err(std::fs::TryLockError::Error(source)) => return Err(io_error(source)),
        }
        let loaded = match File::open(path) {
            Ok(file) => read_records(BufReader::new(file)).map_err(io_error)?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => Loaded::default(),
            Err(error) => return Err(io_error(error)),
        };
        if !loaded.skipped_lines.is_empty() {
            // Keep the unreadable original next to the rewritten file: we never throw data away silently.
            let backup = path.with_extension(format!("corrupt-{}", crate::routes::now_ms()));
            std::fs::copy(path, &backup).map_err(io_error)?;
            tracing::warn!(
                file = %path.display(), lines = ?loaded.skipped_lines, backup = %backup.display(),
                "skipped unreadable lines in the routes file"
            );
        }
        Ok((loaded, PendingJournal { path: path.to_owned(), lock }))
    }

    /// Appends one record and waits until it is written.
    pub(crate) async fn append(&self, record: Record) -> Result<(), JournalError> {
        let (done, wait) = oneshot::channel();
        self.send(Command::Append(record, done))?;
        self.finish(wait).await
    }

    /// Writes a final snapshot (with current activity) and stops the writer.
    pub(crate) async fn close(&self, snapshot: Vec<Record>) -> Result<(), JournalError> {
        let (done, wait) = oneshot::channel();
        self.send(Command::Close(snapshot, done))?;
        self.finish(wait).await
    }

    fn send(&self, command: Command) -> Result<(), JournalError> {
        let sender = self.sender.as_ref().ok_or(JournalError::Stopped)?;
        sender.send(command).map_err(|_| JournalError::Stopped)
    }

    async fn finish(&self, wait: oneshot::Receiver<Result<(), String>>) -> Result<(), JournalError> {
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(JournalError::Io { path: self.path.clone(), source: io::Error::other(message) }),
            Err(_) => Err(JournalError::Stopped),
        }
    }
}

/// A locked, read routes file whose writer has not started yet.
pub(crate) struct PendingJournal {
    path: PathBuf,
    lock: File,
}

impl PendingJournal {
    /// Compacts the file to the current routes and starts the writer thread.
    pub(crate) fn start(self, snapshot: SnapshotSource) -> Result<Journal, JournalError> {
        let io_error = |source| JournalError::Io { path: self.path.clone(), source };
        let initial = snapshot();
        let file = write_snapshot(&self.path, &initial).map_err(io_error)?;
        let (sender, receiver) = mpsc::channel();
        let mut writer = Writer {
            path: self.path.clone(),
            file,
            _lock: self.lock,
            snapshot,
            appended_since_snapshot: 0,
            snapshot_len: initial.len(),
            dirty_since: None,
        };
        let writer = std::thread::Builder::new()
            .name("wasmhub-routes-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(io_error)?;
        Ok(Journal { path: self.path, sender: Some(sender), writer: Some(writer) })
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
}

/// A route as read back: path, data and `last_activity` in milliseconds.
type ReadRoute = (String, Map<String, Value>, i64);

fn read_records(reader: impl BufRead) -> io::Result<Loaded> {
    // Removed routes leave a tombstone so positions stay valid; file order is kept for the survivors.
    let mut routes: Vec<Option<ReadRoute>> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut skipped_lines = Vec::new();
    for (number, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(&line) {
            Ok(Record::Add { path, data, last_activity_ms }) => match index.get(&path) {
                Some(&position) => routes[position] = Some((path, data, last_activity_ms)),
                None => {
                    index.insert(path.clone(), routes.len());
                    routes.push(Some((path, data, last_activity_ms)));
                }
            },
            Ok(Record::Remove { path }) => {
                if let Some(position) = index.remove(&path) {
                    routes[position] = None;
                }
            }
            Err(_) => skipped_lines.push(number + 1),
        }
    }
    Ok(Loaded { routes: routes.into_iter().flatten().collect(), skipped_lines })
}

/// Replaces the file with `records` atomically (write, sync, rename) and returns it opened for appending.
fn write_snapshot(path: &Path, records: &[Record]) -> io::Result<File> {
    let temporary = path.with_extension("tmp");
    {
        let mut out = io::BufWriter::new(File::create(&temporary)?);
        for record in records {
            serde_json::to_writer(&mut out, record)?;
            out.write_all(b"\n")?;
        }
        out.into_inner().map_err(|error| error.into_error())?.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    OpenOptions::new().append(true).open(path)
}

struct Writer {
    path: PathBuf,
    file: File,
    /// Held for the writer's lifetime: the advisory lock that keeps a second proxy off this file.
    _lock: File,
    snapshot: SnapshotSource,
    appended_since_snapshot: usize,
    snapshot_len: usize,
    dirty_since: Option<Instant>,
}

impl Writer {
    fn run(&mut self, receiver: mpsc::Receiver<Command>) {
        let sync_every = Duration::from_secs(1);
        loop {
            let first = match self.dirty_since {
                // Wake up in time to sync a dirty file even when no new record arrives.
                Some(since) => match receiver.recv_timeout(sync_every.saturating_sub(since.elapsed())) {
                    Ok(command) => command,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.sync();
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                },
                None => match receiver.recv() {
                    Ok(command) => command,
                    Err(_) => break,
                },
            };
            // Group commit: everything queued behind the first command goes out in one write.
            let mut batch = vec![first];
            while let Ok(command) = receiver.try_recv() {
                batch.push(command);
            }
            let mut buffer = Vec::new();
            let mut waiting = Vec::new();
            let mut close = None;
            for command in batch {
                match command {
                    Command::Append(record, done) => {
                        serde_json::to_writer(&mut buffer, &record).expect("records serialise");
                        buffer.push(b'\n');
                        waiting.push(done);
                    }
                    Command::Close(records, done) => close = Some((records, done)),
                }
            }
            let result = self.file.write_all(&buffer).map_err(|error| error.to_string());
            self.appended_since_snapshot += waiting.len();
            self.dirty_since.get_or_insert_with(Instant::now);
            for done in waiting {
                let _ = done.send(result.clone());
            }
            if let Some((records, done)) = close {
                let result = write_snapshot(&self.path, &records).map(drop).map_err(|error| error.to_string());
                let _ = done.send(result);
                return;
            }
            if self.appended_since_snapshot > 1000 + 2 * self.snapshot_len {
                self.compact();
            } else if self.dirty_since.is_some_and(|since| since.elapsed() >= sync_every) {
                self.sync();
            }
        }
        self.sync();
    }

    fn sync(&mut self) {
        if let Err(error) = self.file.sync_data() {
            tracing::warn!(file = %self.path.display(), %error, "cannot sync the routes file");
        }
        self.dirty_since = None;
    }

    fn compact(&mut self) {
        let records = (self.snapshot)();
        match write_snapshot(&self.path, &records) {
            Ok(file) => {
                self.file = file;
                self.snapshot_len = records.len();
                self.appended_since_snapshot = 0;
                self.dirty_since = None;
            }
            // The journal is still complete, only longer: keep appending to it.
            Err(error) => tracing::warn!(file = %self.path.display(), %error, "cannot compact the routes file"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn add(path: &str) -> Record {
        let mut data = Map::new();
        data.insert("target".into(), Value::from("http://127.0.0.1:1"));
        Record::Add { path: path.into(), data, last_activity_ms: 7 }
    }

    fn start(path: &Path, live: Arc<Mutex<Vec<Record>>>) -> (Loaded, Journal) {
        let (loaded, pending) = Journal::open(path).unwrap();
        let source = live.clone();
        let journal = pending.start(Box::new(move || source.lock().unwrap().clone())).unwrap();
        (loaded, journal)
    }

    #[tokio::test]
    async fn records_survive_a_reopen_and_removals_apply() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routes.jsonl");
        let live = Arc::new(Mutex::new(Vec::new()));
        let (loaded, journal) = start(&path, live.clone());
        assert!(loaded.routes.is_empty());
        for key in ["/a", "/b", "/c"] {
            journal.append(add(key)).await.unwrap();
        }
        journal.append(Record::Remove { path: "/b".into() }).await.unwrap();
        drop(journal);

        let (loaded, _journal) = start(&path, live);
        let keys: Vec<&str> = loaded.routes.iter().map(|(key, _, _)| key.as_str()).collect();
        assert_eq!(keys, ["/a", "/c"]);
        assert_eq!(loaded.routes[0].2, 7);
    }

    #[tokio::test]
    async fn a_second_proxy_cannot_share_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routes.jsonl");
        let _first = start(&path, Arc::new(Mutex::new(Vec::new())));
        assert!(matches!(Journal::open(&path), Err(JournalError::Locked { .. })));
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_kept_in_a_backup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routes.jsonl");
        let good = serde_json::to_string(&add("/a")).unwrap();
        std::fs::write(&path, format!("{good}\n{{\"op\":\"add\",\"pa")).unwrap();
        let (loaded, _pending) = Journal::open(&path).unwrap();
        assert_eq!(loaded.routes.len(), 1);
        assert_eq!(loaded.skipped_lines, [2]);
        let backups = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|entry| entry.as_ref().unwrap().file_name().to_string_lossy().contains("corrupt"))
            .count();
        assert_eq!(backups, 1);
    }

    #[tokio::test]
    async fn compaction_keeps_every_live_route() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routes.jsonl");
        let live = Arc::new(Mutex::new(Vec::new()));
        let (_, journal) = start(&path, live.clone());
        for index in 0..2500 {
            let record = add(&format!("/user/u{index}"));
            live.lock().unwrap().push(record.clone());
            journal.append(record).await.unwrap();
        }
        let snapshot = live.lock().unwrap().clone();
        journal.close(snapshot).await.unwrap();
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert_eq!(lines, 2500);
    }
}
