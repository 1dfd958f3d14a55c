//! The operator's terminal: help, completions, the man page and colour.

use super::*;

#[test]
fn completions_for_each_shell_and_a_man_page_cover_every_command() {
    let commands = [
        "validate",
        "plan",
        "dry-run",
        "reconcile",
        "report",
        "restore",
    ];
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = ctl(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = text(&out.stdout);
        for c in commands {
            assert!(script.contains(c), "{shell} completion lacks {c}");
        }
    }
    let out = ctl(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    let out = ctl(&["man"]);
    assert_eq!(out.status.code(), Some(0));
    let page = text(&out.stdout);
    assert!(page.contains(".TH shutdownctl 1"), "{page}");
    for c in commands {
        assert!(
            page.contains(&c.replace('-', "\\-")),
            "the man page lacks {c}"
        );
    }
}

#[test]
fn color_is_chosen_by_flag_and_no_color_turns_it_off() {
    let run = |args: &[&str], no_color: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shutdownctl"));
        cmd.args(args).current_dir(root());
        if no_color {
            cmd.env("NO_COLOR", "1");
        } else {
            cmd.env_remove("NO_COLOR");
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(10));
        let err = text(&out.stderr);
        assert!(err.contains("step failed"), "{err}");
        err.contains('\u{1b}')
    };
    let hostile = [
        "dry-run",
        PIPELINE,
        "--scenario",
        "examples/scenarios/hostile.toml",
    ];
    // The log shows with -v (without, a dry-run's output is its report alone).
    let with = |color: &'static str| {
        let mut a = vec!["-v", "--color", color];
        a.extend(hostile);
        a
    };
    assert!(
        run(&with("always"), false),
        "--color always colours the log"
    );
    assert!(!run(&with("never"), false), "--color never does not");
    // stderr is a pipe here, so auto means no colour; NO_COLOR wins over auto too.
    assert!(!run(&[&["-v"][..], &hostile[..]].concat(), false));
    assert!(!run(&with("auto"), true));
}

#[test]
fn every_command_has_help_with_an_example() {
    for cmd in [
        "steps",
        "validate",
        "plan",
        "dry-run",
        "reconcile",
        "report",
        "restore",
        "fleet",
        "fleet halt",
        "fleet resume",
        "fleet shutdown",
        "fleet status",
        "completions",
        "man",
    ] {
        let mut args: Vec<&str> = cmd.split(' ').collect();
        args.push("--help");
        let out = ctl(&args);
        assert_eq!(out.status.code(), Some(0));
        assert!(text(&out.stdout).contains("Example"), "{cmd}");
    }
}

#[test]
fn every_help_fits_80_columns() {
    let commands: &[&[&str]] = &[
        &[],
        &["steps"],
        &["validate"],
        &["plan"],
        &["dry-run"],
        &["reconcile"],
        &["report"],
        &["restore"],
        &["fleet"],
        &["fleet", "halt"],
        &["fleet", "resume"],
        &["fleet", "shutdown"],
        &["fleet", "status"],
        &["completions"],
        &["man"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let out = ctl(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let help = text(&out.stdout);
        let widest = help.lines().map(|l| l.chars().count()).max().unwrap_or(0);
        assert!(
            widest <= 80,
            "`shutdownctl {}` is {widest} columns wide:\n{help}",
            args.join(" ")
        );
    }
}
