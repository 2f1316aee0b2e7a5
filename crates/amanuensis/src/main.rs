//! The `amanuensis` command line.
fn main() {}
