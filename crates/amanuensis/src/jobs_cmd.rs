//! `amanuensis jobs ...`: a client of a server's jobs API (`/v1/jobs`): submit files, wait for
//! them with a progress bar, show a job's status, fetch its result, list and delete jobs.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

#[derive(Debug, clap::Args)]
pub struct JobsArgs {
    /// The server's address.
    #[arg(long, global = true, default_value = "http://127.0.0.1:9004", env = "AMANUENSIS_SERVER")]
    pub server: String,
    #[command(subcommand)]
    pub command: JobsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum JobsCommand {
    /// Upload files as jobs; prints each job's id (and file). With --wait, waits for them with
    /// a progress bar and prints their results.
    Submit {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Wait until every job is finished, then print the results.
        #[arg(long)]
        wait: bool,
        /// Format of the results printed with --wait: text, json, verbose_json, srt, vtt.
        #[arg(long, default_value = "text")]
        output_format: String,
        /// Language of the audio (default: detected).
        #[arg(long)]
        language: Option<String>,
        /// Initial prompt.
        #[arg(long)]
        prompt: Option<String>,
        /// An http:// address the server POSTs to when a job ends.
        #[arg(long)]
        webhook_url: Option<String>,
    },
    /// A job's status, progress and timestamps (JSON).
    Status { id: String },
    /// A finished job's transcript.
    Result {
        id: String,
        /// text, json, verbose_json, srt or vtt.
        #[arg(long, default_value = "text")]
        output_format: String,
    },
    /// The newest jobs, one a line: id, status, progress, file.
    List {
        /// Only jobs with this status (queued, running, done, failed, cancelled).
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Cancel a queued or running job, or delete a finished one.
    Delete { id: String },
}

struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.trim_end_matches('/'))
    }

    /// The body of a 2xx answer; an error with the server's message otherwise.
    fn call(&self, req: ureq::Request, send: Option<(&str, &[u8])>) -> anyhow::Result<String> {
        let url = req.url().to_string();
        let r = match send {
            Some((ct, body)) => req.set("Content-Type", ct).send_bytes(body),
            None => req.call(),
        };
        match r {
            Ok(r) => Ok(r.into_string()?),
            Err(ureq::Error::Status(code, r)) => {
                let body = r.into_string().unwrap_or_default();
                let msg = serde_json::from_str::<Value>(&body).ok().and_then(|v| v["error"]["message"].as_str().map(str::to_string)).unwrap_or(body);
                bail!("{url}: HTTP {code}: {msg}")
            }
            Err(e) => Err(anyhow::anyhow!("{url}: {e} (is `amanuensis serve` running there? see --server)")),
        }
    }

    fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let body = self.call(self.agent.get(&self.url(path)), None)?;
        serde_json::from_str(&body).context("the server's answer is not JSON")
    }
}

/// A multipart/form-data body with text fields and one file.
fn multipart(fields: &[(&str, &str)], file: &std::path::Path, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = format!("amanuensis-{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    let mut body = Vec::new();
    for (n, v) in fields {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\n{v}\r\n").as_bytes());
    }
    let name = file.file_name().map_or("audio".into(), |n| n.to_string_lossy().replace(['"', '\r', '\n'], "_"));
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn check_format(f: &str) -> anyhow::Result<()> {
    if !["text", "json", "verbose_json", "srt", "vtt"].contains(&f) {
        bail!("--output-format {f}: use text, json, verbose_json, srt or vtt");
    }
    Ok(())
}

pub fn run(args: JobsArgs) -> anyhow::Result<()> {
    let client = Client { base: args.server.clone(), agent: ureq::AgentBuilder::new().timeout(Duration::from_secs(600)).build() };
    let mut out = std::io::stdout().lock();
    match args.command {
        JobsCommand::Submit { files, wait, output_format, language, prompt, webhook_url } => {
            check_format(&output_format)?;
            let mut fields: Vec<(&str, &str)> = Vec::new();
            for (n, v) in [("language", &language), ("prompt", &prompt), ("webhook_url", &webhook_url)] {
                if let Some(v) = v {
                    fields.push((n, v.as_str()));
                }
            }
            let mut ids = Vec::new();
            for f in &files {
                let bytes = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
                let (ct, body) = multipart(&fields, f, &bytes);
                let answer = client.call(client.agent.post(&client.url("/v1/jobs")), Some((ct.as_str(), body.as_slice()))).with_context(|| format!("{}: not accepted", f.display()))?;
                let v: Value = serde_json::from_str(&answer)?;
                let id = v["id"].as_str().context("the server's answer has no job id")?.to_string();
                if wait {
                    eprintln!("{id}\t{}", f.display());
                } else {
                    writeln!(out, "{id}\t{}", f.display())?;
                }
                ids.push(id);
            }
            if wait {
                let failed = wait_all(&client, &ids)?;
                for id in &ids {
                    if failed.contains(id) {
                        continue;
                    }
                    let text = client.call(client.agent.get(&client.url(&format!("/v1/jobs/{id}/result?format={output_format}"))), None)?;
                    out.write_all(text.as_bytes())?;
                }
                if !failed.is_empty() {
                    bail!("{} of {} job(s) did not finish: {}", failed.len(), ids.len(), failed.join(", "));
                }
            }
        }
        JobsCommand::Status { id } => {
            let v = client.get_json(&format!("/v1/jobs/{id}"))?;
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
        JobsCommand::Result { id, output_format } => {
            check_format(&output_format)?;
            let text = client.call(client.agent.get(&client.url(&format!("/v1/jobs/{id}/result?format={output_format}"))), None)?;
            // Exactly what the server answered (the same bytes as /v1/audio/transcriptions').
            out.write_all(text.as_bytes())?;
        }
        JobsCommand::List { status, limit } => {
            let mut path = format!("/v1/jobs?limit={limit}");
            if let Some(s) = status {
                path.push_str(&format!("&status={s}"));
            }
            let v = client.get_json(&path)?;
            for j in v["data"].as_array().into_iter().flatten() {
                writeln!(
                    out,
                    "{}\t{}\t{:.0}%\t{}",
                    j["id"].as_str().unwrap_or("?"),
                    j["status"].as_str().unwrap_or("?"),
                    j["progress"].as_f64().unwrap_or(0.0) * 100.0,
                    j["filename"].as_str().unwrap_or("")
                )?;
            }
        }
        JobsCommand::Delete { id } => {
            let body = client.call(client.agent.delete(&client.url(&format!("/v1/jobs/{id}"))), None)?;
            let v: Value = serde_json::from_str(&body)?;
            if v["deleted"] == true {
                writeln!(out, "{id}\tdeleted")?;
            } else {
                writeln!(out, "{id}\t{}", v["status"].as_str().unwrap_or("?"))?;
            }
        }
    }
    Ok(())
}

/// Polls the jobs until each is finished, with one progress bar over all of them (on stderr);
/// returns the ids of those that failed or were cancelled.
fn wait_all(client: &Client, ids: &[String]) -> anyhow::Result<Vec<String>> {
    let bar = indicatif::ProgressBar::new(1000 * ids.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {percent}% {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let t0 = Instant::now();
    let mut failed = Vec::new();
    loop {
        let mut total = 0.0;
        let mut finished = 0;
        failed.clear();
        for id in ids {
            let v = client.get_json(&format!("/v1/jobs/{id}"))?;
            let status = v["status"].as_str().unwrap_or("");
            match status {
                "done" => {
                    total += 1.0;
                    finished += 1;
                }
                "failed" | "cancelled" => {
                    total += 1.0;
                    finished += 1;
                    let why = v["error"]["message"].as_str().unwrap_or(status);
                    bar.suspend(|| eprintln!("{id}: {status}: {why}"));
                    failed.push(id.clone());
                }
                _ => total += v["progress"].as_f64().unwrap_or(0.0),
            }
        }
        bar.set_position((total * 1000.0) as u64);
        bar.set_message(format!("{finished}/{} job(s) finished", ids.len()));
        if finished == ids.len() {
            bar.finish_and_clear();
            eprintln!("{finished} job(s) finished in {:.1} s", t0.elapsed().as_secs_f64());
            return Ok(failed);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
