//! A picture of a shutdown: each step as a bar (what it took) inside a frame (the budget it was
//! given), against the global deadline. In the terminal (`report --timeline`), or as an SVG a person
//! opens in a browser (`report --svg FILE`).

use std::fmt::Write as _;

use shutdown_core::{Level, Report, StepOutcome};

/// Columns of the time axis in the terminal.
const AXIS: usize = 56;

/// The time axis ends at the global deadline, or later when the run went past it.
fn span(report: &Report) -> f64 {
    let last = (report.steps.iter())
        .map(|s| (s.offset + s.duration).max(s.offset + s.budget))
        .fold(report.duration, f64::max);
    report.timeout_secs.max(last).max(0.001)
}

fn failed(outcome: StepOutcome) -> bool {
    matches!(
        outcome,
        StepOutcome::Failed | StepOutcome::TimedOut | StepOutcome::Panicked
    )
}

/// The timeline in at most 80 columns.
pub fn text(report: &Report) -> String {
    let span = span(report);
    let col = |t: f64| ((t / span) * AXIS as f64).round().clamp(0.0, AXIS as f64) as usize;
    let deadline = col(report.timeout_secs);
    let mut out = format!(
        "timeline: 0 to {:.1}s; the global deadline ({:.1}s) is marked |\n",
        span, report.timeout_secs
    );
    for (i, s) in report.steps.iter().enumerate() {
        let mut axis = vec![' '; AXIS + 1];
        let (start, budget_end) = (col(s.offset), col(s.offset + s.budget));
        for c in axis.iter_mut().take(budget_end).skip(start) {
            *c = '-';
        }
        let mark = match s.outcome {
            StepOutcome::Succeeded => '=',
            o if failed(o) => '!',
            StepOutcome::Skipped => 's',
            _ => '.',
        };
        let end = col(s.offset + s.duration).max(start + 1).min(AXIS + 1);
        for c in axis.iter_mut().take(end).skip(start) {
            *c = mark;
        }
        if axis[deadline] == ' ' {
            axis[deadline] = '|';
        }
        let name: String = s.name.chars().take(13).collect();
        let axis: String = axis.into_iter().collect();
        let _ = writeln!(out, "  {:<3}{name:<13} {}", i + 1, axis.trim_end());
    }
    // The second signal (hurry) and the force, where they came.
    let later: Vec<_> = (report.escalations.iter())
        .filter(|e| e.level > Level::Graceful)
        .collect();
    if !later.is_empty() {
        let mut axis = vec![' '; AXIS + 1];
        for e in &later {
            axis[col(e.offset)] = if e.level == Level::Force { 'F' } else { 'H' };
        }
        let axis: String = axis.into_iter().collect();
        let _ = writeln!(out, "  {:<16} {}", "escalations", axis.trim_end());
    }
    out.push_str("  = ran  ! failed or cut short  s skipped  . not run  - budget  | deadline\n");
    if !later.is_empty() {
        out.push_str("  H second signal (non-critical steps skipped)  F forced\n");
    }
    out
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Running => "running",
        Level::Graceful => "request",
        Level::Hurry => "hurry",
        Level::Force => "force",
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn colour(outcome: StepOutcome) -> &'static str {
    match outcome {
        StepOutcome::Succeeded => "#2e7d32",
        o if failed(o) => "#c62828",
        StepOutcome::Skipped => "#9e9e9e",
        _ => "#e0e0e0",
    }
}

/// The SVG's layout: the time axis runs from x = LEFT (time 0) over WIDTH units; a row per step.
const LEFT: f64 = 170.0;
const WIDTH: f64 = 600.0;
const ROW: f64 = 28.0;
const TOP: f64 = 40.0;

/// The x of time `t` seconds on the SVG's axis.
fn x_of(report: &Report, t: f64) -> f64 {
    LEFT + (t / span(report)).clamp(0.0, 1.0) * WIDTH
}

/// The timeline as an SVG document.
pub fn svg(report: &Report) -> String {
    let height = TOP + ROW * report.steps.len() as f64 + 72.0;
    let x = |t: f64| x_of(report, t);
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="800" height="{height}" viewBox="0 0 800 {height}" font-family="sans-serif" font-size="12">
<title>{} {} (exit {}) after {:.3}s: reason {}</title>
<text x="10" y="20" font-size="14">{} {} (exit {}) after {:.3}s, reason {}</text>
"#,
        escape(&report.trader_id),
        report.outcome,
        report.exit_code,
        report.duration,
        report.reason,
        escape(&report.trader_id),
        report.outcome,
        report.exit_code,
        report.duration,
        report.reason,
    );
    for (i, s) in report.steps.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let name = escape(&s.name);
        let _ = writeln!(
            out,
            r#"<text x="10" y="{:.1}">{} {name} ({})</text>"#,
            y + 17.0,
            i + 1,
            escape(&s.kind)
        );
        let _ = writeln!(
            out,
            r##"<rect class="budget" data-step="{name}" x="{:.3}" y="{:.1}" width="{:.3}" height="{:.1}" fill="none" stroke="#616161" stroke-dasharray="4 2"/>"##,
            x(s.offset),
            y + 4.0,
            x(s.offset + s.budget) - x(s.offset),
            ROW - 8.0
        );
        let _ = writeln!(
            out,
            r#"<rect class="bar" data-step="{name}" data-outcome="{}" x="{:.3}" y="{:.1}" width="{:.3}" height="{:.1}" fill="{}"><title>{name}: {} in {:.3}s of {:.3}s</title></rect>"#,
            s.outcome,
            x(s.offset),
            y + 8.0,
            x(s.offset + s.duration) - x(s.offset),
            ROW - 16.0,
            colour(s.outcome),
            s.outcome,
            s.duration,
            s.budget
        );
    }
    let bottom = TOP + ROW * report.steps.len() as f64;
    let d = x(report.timeout_secs);
    let _ = writeln!(
        out,
        r##"<line class="deadline" x1="{d:.3}" y1="{TOP}" x2="{d:.3}" y2="{bottom}" stroke="#000" stroke-width="2"/>
<text x="{d:.3}" y="{:.1}" text-anchor="end">global deadline {:.1}s</text>"##,
        TOP - 4.0,
        report.timeout_secs
    );
    for e in report
        .escalations
        .iter()
        .filter(|e| e.level > Level::Graceful)
    {
        let ex = x(e.offset);
        let _ = writeln!(
            out,
            r##"<line class="escalation" data-level="{}" x1="{ex:.3}" y1="{TOP}" x2="{ex:.3}" y2="{bottom}" stroke="#e65100" stroke-width="2" stroke-dasharray="6 3"/>
<text x="{ex:.3}" y="{:.1}" fill="#e65100">{} ({}) at {:.3}s</text>"##,
            level_name(e.level),
            bottom + 12.0,
            level_name(e.level),
            e.reason,
            e.offset
        );
    }
    let legend = [
        ("succeeded", StepOutcome::Succeeded),
        ("failed or cut short", StepOutcome::Failed),
        ("skipped", StepOutcome::Skipped),
        ("not run", StepOutcome::NotRun),
    ];
    for (i, (label, outcome)) in legend.iter().enumerate() {
        let lx = 10.0 + 150.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<rect class="legend" x="{lx}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{:.1}">{label}</text>"#,
            bottom + 22.0,
            colour(*outcome),
            lx + 16.0,
            bottom + 32.0
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="10" y="{:.1}">bars: time taken; dashed frames: the budget each step was given; orange: signals</text>"#,
        bottom + 52.0
    );
    out.push_str("</svg>\n");
    out
}
