//! `completions SHELL` and `man`: the command line described for shells and for `man`.

use clap::CommandFactory;

use crate::Cli;
use crate::output::fail;

/// The name the program was called by (`shutdownctl`, or a node binary that offers the commands).
fn bin_name() -> String {
    std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "shutdownctl".to_owned())
}

pub(crate) fn completions(shell: clap_complete::Shell) -> i32 {
    let name = bin_name();
    let mut command = Cli::command().name(name.clone()).bin_name(name.clone());
    clap_complete::generate(shell, &mut command, name, &mut std::io::stdout());
    0
}

pub(crate) fn man() -> i32 {
    let name = bin_name();
    let command = Cli::command().name(name.clone()).bin_name(name);
    match clap_mangen::Man::new(command).render(&mut std::io::stdout()) {
        Ok(()) => 0,
        Err(e) => fail(false, 1, format!("cannot write the manual page: {e}")),
    }
}
