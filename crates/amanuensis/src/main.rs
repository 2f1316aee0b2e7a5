//! The `amanuensis` command line: a small clap dispatcher; subcommand bodies live in modules.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// The modules live in the library (src/lib.rs), so that the fuzz targets (fuzz/) reach the
// server's parsers; this file is the command line only.
use amanuensis::{cli, engine, jobs_cmd, mic, server, store, tools_cmd, transcribe_cmd};

/// Local speech-to-text with OpenAI Whisper models (CTranslate2 / faster-whisper weights).
#[derive(Debug, Parser)]
#[command(name = "amanuensis", version, about, propagate_version = true)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Where the encoder's matrix products run: `auto` (the NPU when a device and matching
    /// xclbins exist, else the CPU, logging why), `cpu`, or `npu` (an error if unusable). The
    /// NPU runs int8 only: with `--compute-type f32` or `bf16`, `auto` keeps that type on the
    /// CPU (a warning says so when an NPU was usable) and `npu` is an error asking for
    /// `--compute-type int8`.
    #[arg(long, global = true, default_value = "auto", env = "AMANUENSIS_DEVICE")]
    device: npu::DeviceChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install and list models.
    #[command(subcommand)]
    Models(cli::ModelsCommand),
    /// Show a model's hyper-parameters and tensors.
    Inspect(cli::InspectArgs),
    /// Serve transcription over HTTP: OpenAI-compatible API, web page, metrics.
    Serve(server::ServeArgs),
    /// Durable jobs on a server (`/v1/jobs`): submit files, wait, status, results, list.
    Jobs(jobs_cmd::JobsArgs),
    /// Run the jobs of `serve --broker` from a NATS JetStream server (any number of workers).
    Worker(server::WorkerArgs),
    /// CPU features, XRT, NPU devices, kernels (xclbins) and whether the NPU would be used.
    Doctor,

    // ---- engine subcommands (mel, transcribe): variants ------------------------------------
    /// Transcribe (or translate) audio files.
    Transcribe(transcribe_cmd::TranscribeArgs),
    /// Live transcription of the default microphone (needs the `mic` build feature).
    Listen(mic::ListenArgs),
    /// Compute a file's log-mel spectrogram into a .npy file.
    Mel(tools_cmd::MelArgs),
    /// Word error rate of a hypothesis text file against a reference (our normalizer).
    #[command(hide = true)]
    Wer(tools_cmd::WerArgs),
    // ---- end engine subcommands ------------------------------------------------------------
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Logs go to stderr: stdout carries only results, so it can be piped.
    // AMANUENSIS_TRACE_SPANS=1 logs every span's busy/idle time when it closes (profiling).
    let spans = if std::env::var_os("AMANUENSIS_TRACE_SPANS").is_some() {
        tracing_subscriber::fmt::format::FmtSpan::CLOSE
    } else {
        tracing_subscriber::fmt::format::FmtSpan::NONE
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(spans)
        .with_writer(std::io::stderr)
        .try_init();
}

fn run(cli: Cli) -> anyhow::Result<()> {
    engine::set_device(cli.device);
    match cli.command {
        Command::Doctor => {
            print!("{}", npu::doctor_report());
            print!("{}", store::vad_doctor_report());
            Ok(())
        }
        Command::Models(cmd) => cli::models(cmd),
        Command::Inspect(args) => cli::inspect(args),
        Command::Serve(args) => server::run(args),
        Command::Jobs(args) => jobs_cmd::run(args),
        Command::Worker(args) => server::run_worker(args),

        // ---- engine subcommands (mel, transcribe): dispatch ---------------------------------
        Command::Transcribe(args) => transcribe_cmd::run(args),
        Command::Listen(args) => mic::run(args),
        Command::Mel(args) => tools_cmd::mel(args),
        Command::Wer(args) => tools_cmd::wer(args),
        // ---- end engine subcommands ---------------------------------------------------------
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = run(cli);
    report_peak_rss();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole context chain on one line: what failed and why.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// With `AMANUENSIS_REPORT_PEAK_RSS=1`, prints the process's peak resident memory (Linux's
/// VmHWM) to stderr at exit: the memory tests compare runs with it.
fn report_peak_rss() {
    if std::env::var_os("AMANUENSIS_REPORT_PEAK_RSS").is_some_and(|v| v == "1") {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
            let kb: String = line.chars().filter(char::is_ascii_digit).collect();
            eprintln!("peak_rss_kb {kb}");
        }
    }
}
