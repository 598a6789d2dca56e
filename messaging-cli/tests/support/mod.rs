//! What the CLI tests share: running the `messaging` binary and reading its output.

use std::process::{Command, Output};

/// Run the `messaging` binary with `args`, to completion.
pub(crate) fn messaging(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_messaging"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Output bytes as text.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
