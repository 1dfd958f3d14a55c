//! `shutdownctl plan`: the ordered steps, what each would do, and the budget against the
//! orchestrator's grace period.

use std::path::Path;

use serde::Serialize;
use shutdown_core::exit_code;
use shutdown_paper::PaperNode;

use super::{empty_scenario, load};
use crate::output::{fail, outln, outln_wrapped, print_env_overrides, print_json, wrap};

#[derive(Serialize)]
struct PlanStep {
    index: usize,
    name: String,
    kind: &'static str,
    enabled: bool,
    timeout_secs: f64,
    critical: bool,
    on_error: shutdown_core::OnError,
    actions: Vec<String>,
}

/// What `plan` was asked.
pub(crate) struct Options {
    /// A scenario whose venue and book the config is checked against.
    pub scenario: Option<std::path::PathBuf>,
    /// The orchestrator's grace period.
    pub grace_period: Option<f64>,
    /// With `--k8s`: the preStop seconds.
    pub k8s: Option<u64>,
    pub json: bool,
    pub deny_warnings: bool,
}

pub(crate) fn run(path: &Path, options: Options) -> i32 {
    let Options {
        scenario,
        grace_period: grace,
        k8s,
        json,
        deny_warnings,
    } = options;
    let config = match load(path, json) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // The scenario's venue, when given: each step plans for what it offers.
    let scenario = match scenario
        .as_deref()
        .map(shutdown_paper::Scenario::load)
        .transpose()
    {
        Ok(s) => s,
        Err(e) => return fail(json, exit_code::INVALID_CONFIG, &e),
    };
    let node = PaperNode::new(scenario.as_ref().unwrap_or(&empty_scenario())).node();
    let pipeline = match config.build(&node) {
        Ok(p) => p,
        Err(e) => {
            return fail(json, exit_code::INVALID_CONFIG, &e);
        }
    };
    let grace = match grace
        .map(std::time::Duration::try_from_secs_f64)
        .transpose()
    {
        Ok(g) => g,
        Err(e) => {
            return fail(json, 2, format!("--grace-period: {e}"));
        }
    };
    let mut budget = config.budget(grace);
    budget.warnings.extend(pipeline.disabled_safety_steps());
    if let Some(scenario) = &scenario {
        let venue = super::venue_of(scenario);
        budget
            .warnings
            .extend(shutdown_steps::fit::warnings(&config, &venue));
    }
    let k8s = k8s.map(|pre_stop| super::k8s::plan(&config, &path.display().to_string(), pre_stop));
    if let (Some(k), Some(g)) = (&k8s, budget.grace_period_secs)
        && g < k.termination_grace_period_seconds as f64
    {
        budget.warnings.push(format!(
            "terminationGracePeriodSeconds {g} is too short: the pod needs {} (preStop {}s + timeout {}s + headroom {}s); the kubelet kills the node before its shutdown ends",
            k.termination_grace_period_seconds,
            k.pre_stop_secs,
            budget.timeout_secs,
            budget.headroom_secs
        ));
    }
    if let Some(k) = &k8s
        && !json
    {
        // The manifest alone on stdout (redirect it to a file); the warnings on stderr.
        outln!("{}", k.manifest.trim_end());
        for w in &budget.warnings {
            eprintln!("warning: {w}");
        }
        return if deny_warnings && !budget.warnings.is_empty() {
            1
        } else {
            0
        };
    }
    let steps: Vec<PlanStep> = config
        .steps
        .iter()
        .zip(&pipeline.steps)
        .map(|(spec, built)| PlanStep {
            index: spec.index,
            name: spec.settings.name.clone(),
            kind: spec.registration.kind,
            enabled: spec.enabled,
            timeout_secs: spec.settings.timeout.as_secs_f64(),
            critical: spec.settings.critical,
            on_error: spec.settings.on_error,
            actions: built.step.as_ref().map(|s| s.plan()).unwrap_or_default(),
        })
        .collect();
    if json {
        let mut plan = serde_json::to_value(&budget).unwrap_or_default();
        plan["steps"] = serde_json::to_value(&steps).unwrap_or_default();
        plan["env_overrides"] = serde_json::to_value(&config.env_overrides).unwrap_or_default();
        if let Some(k) = &k8s {
            plan["kubernetes"] = serde_json::to_value(k).unwrap_or_default();
        }
        print_json(&plan);
    } else {
        outln!(
            "{:<3} {:<16} {:<8} {:>8} {:<8} {:<8}",
            "#",
            "step",
            "kind",
            "timeout",
            "critical",
            "on_error"
        );
        for s in &steps {
            outln!(
                "{:<3} {:<16} {:<8} {:>7}s {:<8} {:<8}{}",
                s.index,
                s.name,
                s.kind,
                s.timeout_secs,
                if s.critical { "yes" } else { "no" },
                match s.on_error {
                    shutdown_core::OnError::Abort => "abort",
                    shutdown_core::OnError::Continue => "continue",
                },
                if s.enabled { "" } else { " (disabled)" }
            );
            for a in &s.actions {
                for (i, line) in wrap(a, 72).iter().enumerate() {
                    outln!("      {} {line}", if i == 0 { "-" } else { " " });
                }
            }
        }
        outln!();
        outln!(
            "budget: steps {}s, critical {}s, global {}s{}",
            budget.step_timeouts_sum_secs,
            budget.critical_timeouts_sum_secs,
            budget.timeout_secs,
            (budget.grace_period_secs)
                .map(|g| format!(", grace period {g}s"))
                .unwrap_or_default()
        );
        outln_wrapped(&exits_by(&budget));
        print_env_overrides(&config.env_overrides);
        for w in &budget.warnings {
            outln_wrapped(&format!("warning: {w}"));
        }
    }
    if deny_warnings && !budget.warnings.is_empty() {
        1
    } else {
        0
    }
}

/// When the process exits at worst, and what the grace period leaves of it.
fn exits_by(budget: &shutdown_core::Budget) -> String {
    let head = format!(
        "exits by {:.1}s at worst ({}s + {:.1}s after the deadline for the report's sinks and the exit flushes)",
        budget.exits_by_secs, budget.timeout_secs, budget.headroom_secs
    );
    match budget.grace_period_secs {
        Some(g) if g >= budget.exits_by_secs => {
            format!(
                "{head}; grace period {g}s leaves {:.1}s",
                g - budget.exits_by_secs
            )
        }
        Some(g) => format!(
            "{head}; grace period {g}s is {:.1}s short",
            budget.exits_by_secs - g
        ),
        None => head,
    }
}
