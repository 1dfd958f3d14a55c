//! The budget of a pipeline, weighed before deploy: the steps' timeouts against the global one, and
//! the global one against the orchestrator's grace period (Kubernetes `terminationGracePeriodSeconds`,
//! `docker stop --time`, systemd `TimeoutStopSec`).

use std::time::Duration;

use serde::Serialize;

use crate::after_deadline::AfterDeadline;
use crate::config::PipelineConfig;

/// What the timeouts of a pipeline add up to, and what does not fit.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Budget {
    /// The global budget.
    pub timeout_secs: f64,
    /// The enabled steps' timeouts, added up.
    pub step_timeouts_sum_secs: f64,
    /// The enabled critical steps' timeouts, added up: what a shutdown needs after a second signal.
    pub critical_timeouts_sum_secs: f64,
    /// The orchestrator's grace period, when given.
    pub grace_period_secs: Option<f64>,
    /// What the runner may spend after the global deadline ([`AfterDeadline::worst_case`]): the
    /// least headroom between the global timeout and the grace period.
    pub headroom_secs: f64,
    /// The latest the process exits, in seconds from the request: the global timeout plus the
    /// headroom.
    pub exits_by_secs: f64,
    /// What does not fit, in words: the config's own warnings first.
    pub warnings: Vec<String>,
}

impl PipelineConfig {
    /// Weigh the budget, against `grace_period` when given.
    pub fn budget(&self, grace_period: Option<Duration>) -> Budget {
        let global = self.settings.timeout.as_secs_f64();
        let enabled = || self.steps.iter().filter(|s| s.enabled);
        let sum: f64 = enabled().map(|s| s.settings.timeout.as_secs_f64()).sum();
        let critical: f64 = (enabled().filter(|s| s.settings.critical))
            .map(|s| s.settings.timeout.as_secs_f64())
            .sum();
        let headroom = AfterDeadline::DEFAULT.worst_case().as_secs_f64();
        let exits_by = global + headroom;
        let mut warnings: Vec<String> = self.warnings.iter().map(ToString::to_string).collect();
        if sum > global {
            warnings.push(format!(
                "the step timeouts add up to {sum}s, more than the global {global}s: late steps may not run"
            ));
        }
        if critical > global {
            warnings.push(format!(
                "the critical steps need up to {critical}s, more than the global {global}s: after a second signal they cannot all fit"
            ));
        }
        let metrics = &self.settings.metrics;
        let push = metrics.push_timeout.as_secs_f64();
        if metrics.pushgateway_url.is_some() && sum.min(global) + push > global {
            warnings.push(format!(
                "metrics.push_timeout_secs ({push}s) does not fit in what the steps leave of the global {global}s: the push gets what is left after the steps, {}s at worst, and a push cut short is named in the report's sink_errors",
                (global - sum).max(0.0)
            ));
        }
        let grace = grace_period.map(|g| g.as_secs_f64());
        if let Some(g) = grace.filter(|g| exits_by > *g) {
            warnings.push(format!(
                "exits by {exits_by:.1}s at worst (timeout_secs {global}s + {headroom:.1}s after the deadline for the report's sinks and the exit flushes), later than the {g}s grace period: the process would be killed before its report and flushes are out; raise the grace period to {} or lower timeout_secs",
                exits_by.ceil()
            ));
        }
        Budget {
            timeout_secs: global,
            step_timeouts_sum_secs: sum,
            critical_timeouts_sum_secs: critical,
            grace_period_secs: grace,
            headroom_secs: headroom,
            exits_by_secs: exits_by,
            warnings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EnvOverrides;

    fn config(toml: &str) -> PipelineConfig {
        PipelineConfig::from_toml_in(
            toml,
            "node.toml",
            EnvOverrides::None,
            crate::testing::registry(),
        )
        .unwrap()
    }

    #[test]
    fn the_budget_adds_up_enabled_steps_and_weighs_the_grace_period() {
        let cfg = config(
            "timeout_secs = 20\n[[steps]]\nkind = \"cancel\"\ntimeout_secs = 12\n[[steps]]\nkind = \"flush\"\ntimeout_secs = 10\n[[steps]]\nkind = \"close\"\nenabled = false\n",
        );
        let b = cfg.budget(Some(Duration::from_secs(21)));
        assert_eq!(b.step_timeouts_sum_secs, 22.0);
        assert_eq!(b.critical_timeouts_sum_secs, 22.0);
        assert_eq!(b.warnings.len(), 3, "{:#?}", b.warnings);
        assert!(
            b.warnings[2]
                .starts_with("exits by 22.4s at worst (timeout_secs 20s + 2.4s after the deadline"),
            "{}",
            b.warnings[2]
        );
        assert!(b.warnings[2].contains("later than the 21s grace period"));
        assert_eq!(b.exits_by_secs, 22.4);
        let b = config("timeout_secs = 30\n").budget(Some(Duration::from_secs(40)));
        assert!(b.warnings.is_empty(), "{:#?}", b.warnings);
        let b = config("timeout_secs = 28\n[metrics]\npushgateway_url = \"http://pgw:9091\"\n")
            .budget(None);
        assert_eq!(b.warnings.len(), 1, "{:#?}", b.warnings);
        assert!(b.warnings[0].starts_with("metrics.push_timeout_secs (2s) does not fit"));
    }
}
