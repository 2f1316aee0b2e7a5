//! The jobs' durable store: one SQLite database (`jobs.sqlite3`, WAL mode, `synchronous=FULL`)
//! and a spool folder (`spool/<id>`) with each job's uploaded audio, both under `--data-dir`.
//!
//! Durability: a job is accepted (202) only after its audio file has been written and fsynced
//! (and its directory entry, by an fsync of the spool folder after the rename), and then its row
//! committed. In WAL mode `synchronous=FULL` fsyncs the write-ahead log at every commit, so a
//! committed row survives a power cut, not only a killed process; `NORMAL` would fsync only at
//! checkpoints and could lose the last commits on power loss. Commits here are few (a submit,
//! a start, a finish, progress at most once a second per running job), so FULL costs little.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};
use whisper::transcribe::{Segment, Transcript};
use whisper::words::Word;

/// A job's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 5] = [Status::Queued, Status::Running, Status::Done, Status::Failed, Status::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether the job is over (it will not change again).
    pub fn is_final(self) -> bool {
        matches!(self, Status::Done | Status::Failed | Status::Cancelled)
    }
}

/// One job's row (without its result).
#[derive(Clone, Debug)]
pub struct JobRow {
    pub id: String,
    pub status: Status,
    pub progress: f64,
    pub created_at: f64,
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
    pub filename: Option<String>,
    /// The form's fields (the transcription options), as sent.
    pub fields: Vec<(String, String)>,
    pub webhook_url: Option<String>,
    pub error: Option<Value>,
    /// Seconds of audio, once decoded.
    pub duration: Option<f64>,
}

impl JobRow {
    /// The job as `GET /v1/jobs/{id}` shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "transcription.job",
            "status": self.status.as_str(),
            "progress": (self.progress * 1000.0).round() / 1000.0,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "filename": self.filename,
            "duration": self.duration,
            "webhook_url": self.webhook_url,
            "error": self.error,
        })
    }
}

pub fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| (d.as_millis() as f64) / 1000.0)
}

/// The default `--data-dir`: `$XDG_DATA_HOME/amanuensis`, else `~/.local/share/amanuensis`.
pub fn default_data_dir() -> PathBuf {
    match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d).join("amanuensis"),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".local/share/amanuensis"),
    }
}

pub struct Store {
    conn: Mutex<Connection>,
    spool: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    filename TEXT,
    fields TEXT NOT NULL,
    webhook_url TEXT,
    error TEXT,
    duration REAL,
    result TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created_at);
";

const COLUMNS: &str = "id, status, progress, created_at, started_at, finished_at, filename, fields, webhook_url, error, duration";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    let status: String = r.get(1)?;
    let fields: String = r.get(7)?;
    let error: Option<String> = r.get(9)?;
    Ok(JobRow {
        id: r.get(0)?,
        status: Status::parse(&status).unwrap_or(Status::Failed),
        progress: r.get(2)?,
        created_at: r.get(3)?,
        started_at: r.get(4)?,
        finished_at: r.get(5)?,
        filename: r.get(6)?,
        fields: serde_json::from_str(&fields).unwrap_or_default(),
        webhook_url: r.get(8)?,
        error: error.and_then(|e| serde_json::from_str(&e).ok()),
        duration: r.get(10)?,
    })
}

/// fsync of a directory, so that a file created or renamed in it survives a crash.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Store {
    /// Opens (creating) the store in `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<Store> {
        let spool = dir.join("spool");
        fs::create_dir_all(&spool).with_context(|| format!("cannot create the jobs folder {}", spool.display()))?;
        let db = dir.join("jobs.sqlite3");
        let conn = Connection::open(&db).with_context(|| format!("cannot open the jobs database {}", db.display()))?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        anyhow::ensure!(mode.eq_ignore_ascii_case("wal"), "{}: SQLite refused WAL mode ({mode})", db.display());
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store { conn: Mutex::new(conn), spool })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn audio_path(&self, id: &str) -> PathBuf {
        self.spool.join(id)
    }

    /// Writes the audio to the spool and fsyncs it, then commits the job's row (queued).
    /// Blocking: call it off the async threads.
    pub fn insert(&self, id: &str, audio: &[u8], filename: Option<&str>, fields: &[(String, String)], webhook_url: Option<&str>) -> anyhow::Result<JobRow> {
        let tmp = self.spool.join(format!("{id}.part"));
        let path = self.audio_path(id);
        {
            let mut f = File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
            f.write_all(audio)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        sync_dir(&self.spool)?;
        let created = now();
        let fields_json = serde_json::to_string(fields)?;
        let inserted = self.db().execute(
            "INSERT INTO jobs (id, status, progress, created_at, filename, fields, webhook_url) VALUES (?1, 'queued', 0, ?2, ?3, ?4, ?5)",
            params![id, created, filename, fields_json, webhook_url],
        );
        if let Err(e) = inserted {
            let _ = fs::remove_file(&path);
            return Err(e.into());
        }
        self.get(id)?.context("the job vanished after its insert")
    }

    pub fn get(&self, id: &str) -> anyhow::Result<Option<JobRow>> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1");
        Ok(self.db().query_row(&sql, [id], row).optional()?)
    }

    /// Jobs newest first, optionally of one status.
    pub fn list(&self, status: Option<Status>, limit: usize) -> anyhow::Result<Vec<JobRow>> {
        let db = self.db();
        let limit = limit as i64;
        let rows = match status {
            Some(s) => {
                let sql = format!("SELECT {COLUMNS} FROM jobs WHERE status = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2");
                let mut st = db.prepare(&sql)?;
                let r = st.query_map(params![s.as_str(), limit], row)?.collect::<Result<Vec<_>, _>>()?;
                r
            }
            None => {
                let sql = format!("SELECT {COLUMNS} FROM jobs ORDER BY created_at DESC, id DESC LIMIT ?1");
                let mut st = db.prepare(&sql)?;
                let r = st.query_map(params![limit], row)?.collect::<Result<Vec<_>, _>>()?;
                r
            }
        };
        Ok(rows)
    }

    /// The oldest queued jobs, up to `limit`.
    pub fn queued(&self, limit: usize) -> anyhow::Result<Vec<JobRow>> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE status = 'queued' ORDER BY created_at, id LIMIT ?1");
        let db = self.db();
        let mut st = db.prepare(&sql)?;
        let r = st.query_map(params![limit as i64], row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(r)
    }

    /// Puts jobs a killed server was running back in the queue; returns how many.
    pub fn requeue_interrupted(&self) -> anyhow::Result<usize> {
        Ok(self.db().execute("UPDATE jobs SET status = 'queued', progress = 0, started_at = NULL WHERE status = 'running'", [])?)
    }

    /// running → queued (the engine could not take it yet).
    pub fn requeue(&self, id: &str) -> anyhow::Result<bool> {
        Ok(self.db().execute("UPDATE jobs SET status = 'queued', progress = 0, started_at = NULL WHERE id = ?1 AND status = 'running'", [id])? == 1)
    }

    /// queued → running; false if the job is no longer queued (cancelled meanwhile).
    pub fn start(&self, id: &str) -> anyhow::Result<bool> {
        Ok(self.db().execute("UPDATE jobs SET status = 'running', started_at = ?2 WHERE id = ?1 AND status = 'queued'", params![id, now()])? == 1)
    }

    pub fn set_duration(&self, id: &str, seconds: f64) -> anyhow::Result<()> {
        self.db().execute("UPDATE jobs SET duration = ?2 WHERE id = ?1", params![id, seconds])?;
        Ok(())
    }

    pub fn set_progress(&self, id: &str, progress: f64) -> anyhow::Result<()> {
        self.db().execute("UPDATE jobs SET progress = ?2 WHERE id = ?1 AND status = 'running'", params![id, progress.clamp(0.0, 1.0)])?;
        Ok(())
    }

    /// running → done with its result; the audio is no longer needed.
    pub fn finish(&self, id: &str, result: &Value) -> anyhow::Result<bool> {
        let n = self.db().execute(
            "UPDATE jobs SET status = 'done', progress = 1, finished_at = ?2, result = ?3 WHERE id = ?1 AND status = 'running'",
            params![id, now(), result.to_string()],
        )?;
        self.remove_audio(id);
        Ok(n == 1)
    }

    /// queued/running → failed (or cancelled) with `error`.
    pub fn fail(&self, id: &str, status: Status, error: &Value) -> anyhow::Result<bool> {
        let n = self.db().execute(
            "UPDATE jobs SET status = ?2, finished_at = ?3, error = ?4 WHERE id = ?1 AND status IN ('queued', 'running')",
            params![id, status.as_str(), now(), error.to_string()],
        )?;
        self.remove_audio(id);
        Ok(n == 1)
    }

    pub fn result(&self, id: &str) -> anyhow::Result<Option<Value>> {
        let r: Option<Option<String>> = self.db().query_row("SELECT result FROM jobs WHERE id = ?1", [id], |r| r.get(0)).optional()?;
        Ok(r.flatten().and_then(|s| serde_json::from_str(&s).ok()))
    }

    /// Deletes a finished job's row and files.
    pub fn delete(&self, id: &str) -> anyhow::Result<bool> {
        let n = self.db().execute("DELETE FROM jobs WHERE id = ?1", [id])?;
        self.remove_audio(id);
        Ok(n == 1)
    }

    fn remove_audio(&self, id: &str) {
        let _ = fs::remove_file(self.audio_path(id));
    }

    /// Deletes the jobs finished before `before` (seconds since the epoch), and spool files
    /// over an hour old that belong to no queued or running job. Returns the number of jobs
    /// deleted.
    pub fn prune(&self, before: f64) -> anyhow::Result<usize> {
        let n = self.db().execute("DELETE FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ?1", params![before])?;
        let live: std::collections::HashSet<String> = {
            let db = self.db();
            let mut st = db.prepare("SELECT id FROM jobs WHERE status IN ('queued', 'running')")?;
            let ids = st.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<_, _>>()?;
            ids
        };
        // Only files older than an hour: a file younger than that may be a submission whose
        // row is being committed right now.
        for entry in fs::read_dir(&self.spool)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let old = entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|e| e.as_secs() > 3600));
            if old && !live.contains(&name) {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(n)
    }
}

/// A transcript as stored (the serialised `Transcript`), read back.
pub fn transcript_from_json(v: &Value) -> Option<Transcript> {
    let f = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    // An f32 field out of f32's range (only in a hand-edited or hostile row) reads as 0, as a
    // missing one does: infinity would be written back as `null`.
    let f32_of = |v: &Value, k: &str| Some(f(v, k) as f32).filter(|x| x.is_finite()).unwrap_or(0.0);
    let segments = v.get("segments")?.as_array()?.iter().map(|s| Segment {
        id: s.get("id").and_then(Value::as_u64).unwrap_or(0) as usize,
        seek: s.get("seek").and_then(Value::as_u64).unwrap_or(0) as usize,
        start: f(s, "start"),
        end: f(s, "end"),
        text: s.get("text").and_then(Value::as_str).unwrap_or("").to_string(),
        tokens: s.get("tokens").and_then(Value::as_array).map(|t| t.iter().filter_map(|x| x.as_u64().map(|x| x as u32)).collect()).unwrap_or_default(),
        temperature: f32_of(s, "temperature"),
        avg_logprob: f32_of(s, "avg_logprob"),
        compression_ratio: f32_of(s, "compression_ratio"),
        no_speech_prob: f32_of(s, "no_speech_prob"),
        words: s.get("words").and_then(Value::as_array).map(|ws| ws.iter().map(|w| Word {
            word: w.get("word").and_then(Value::as_str).unwrap_or("").to_string(),
            start: f(w, "start"),
            end: f(w, "end"),
            probability: f(w, "probability"),
        }).collect()),
    }).collect();
    Some(Transcript {
        language: v.get("language").and_then(Value::as_str).unwrap_or("en").to_string(),
        language_probability: f32_of(v, "language_probability"),
        duration: f(v, "duration"),
        segments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_run_finish_prune() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let fields = vec![("language".to_string(), "en".to_string())];
        let j = s.insert("job_a", b"RIFF", Some("a.wav"), &fields, None).unwrap();
        assert_eq!(j.status, Status::Queued);
        assert_eq!(j.fields, fields);
        assert!(s.audio_path("job_a").is_file());
        assert_eq!(s.queued(10).unwrap().len(), 1);
        assert!(s.start("job_a").unwrap());
        assert!(!s.start("job_a").unwrap());
        assert_eq!(s.requeue_interrupted().unwrap(), 1);
        assert!(s.start("job_a").unwrap());
        s.set_progress("job_a", 0.5).unwrap();
        assert_eq!(s.get("job_a").unwrap().unwrap().progress, 0.5);
        assert!(s.finish("job_a", &json!({"transcript": {"segments": []}})).unwrap());
        assert!(!s.audio_path("job_a").exists());
        assert_eq!(s.list(Some(Status::Done), 10).unwrap().len(), 1);
        assert!(s.result("job_a").unwrap().is_some());
        drop(s);
        // Reopened: the row is still there.
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.get("job_a").unwrap().unwrap().status, Status::Done);
        // A fresh file without a row may be a submission being committed: kept.
        fs::write(dir.path().join("spool/fresh"), b"x").unwrap();
        assert_eq!(s.prune(now() + 1.0).unwrap(), 1);
        assert!(s.get("job_a").unwrap().is_none());
        assert!(dir.path().join("spool/fresh").exists());
    }

    #[test]
    fn transcript_round_trip() {
        let seg = Segment { id: 1, seek: 0, start: 0.0, end: 1.5, text: " Hi.".into(), tokens: vec![1, 2], temperature: 0.0, avg_logprob: -0.25, compression_ratio: 1.0, no_speech_prob: 0.5, words: None };
        let t = Transcript { language: "en".into(), language_probability: 0.5, duration: 2.0, segments: vec![seg] };
        let back = transcript_from_json(&serde_json::to_value(&t).unwrap()).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&t).unwrap());
    }
}
