//! Writing to the terminal: `out!`/`outln!` that stop quietly on a closed pipe, JSON, wrapped lines.

use serde::Serialize;

/// `print!` that exits quietly (like a program killed by SIGPIPE) when stdout is closed (`| head`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if write!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(141);
        }
    }};
}

/// `println!` that exits quietly when stdout is closed.
macro_rules! outln {
    () => { $crate::output::out!("\n") };
    ($($arg:tt)*) => {{
        $crate::output::out!($($arg)*);
        $crate::output::out!("\n");
    }};
}

pub(crate) use {out, outln};

/// Print `value` as pretty JSON.
pub(crate) fn print_json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => outln!("{s}"),
        Err(e) => eprintln!("error: cannot encode JSON: {e}"),
    }
}

/// Split `text` into lines of at most `width` characters, at spaces where possible.
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let lines: Vec<String> =
        (textwrap::wrap(text, textwrap::Options::new(width).break_words(true)))
            .into_iter()
            .map(|l| l.into_owned())
            .collect();
    if lines.is_empty() {
        vec![String::new()]
    } else {
        lines
    }
}

/// Print `text` wrapped to 78 columns, the lines after the first indented by two.
pub(crate) fn outln_wrapped(text: &str) {
    for (i, line) in wrap(text, 78).iter().enumerate() {
        outln!("{}{line}", if i == 0 { "" } else { "  " });
    }
}

/// The environment variables that change what the file says (names only: a value may be a secret).
pub(crate) fn print_env_overrides(names: &[String]) {
    if !names.is_empty() {
        outln_wrapped(&format!("from the environment: {}", names.join(", ")));
    }
}

/// Say why a command failed, and return its exit code: `error: ...` on stderr, and with `--json` also
/// `{"ok": false, "error": "...", "exit_code": N}` on stdout, so a script reading the JSON sees it.
pub(crate) fn fail(json: bool, code: i32, message: impl std::fmt::Display) -> i32 {
    let message = message.to_string();
    eprintln!("error: {message}");
    if json {
        print_json(&serde_json::json!({ "ok": false, "error": message, "exit_code": code }));
    }
    code
}
