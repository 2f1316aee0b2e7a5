//! The `amanuensis` app as a library: the command line (`src/main.rs`) is a thin dispatcher
//! over these modules. A library so that the fuzz targets (`fuzz/`, cargo-fuzz) can call the
//! server's parsers (`server::fuzzing`); nothing here is a stable API.

pub mod cli;
pub mod jobs_cmd;
pub mod server;
/// The model store (crates/store), shared with the Python package.
pub use store;

// ---- engine subcommands (mel, transcribe): modules ----------------------------------------
pub mod engine;
pub mod live_cmd;
pub mod mic;
pub mod output;
pub mod tools_cmd;
pub mod transcribe_cmd;
pub mod vad_args;
// ---- end engine subcommands ----------------------------------------------------------------
