//! Whether a pipeline fits the venue it will shut down on: the warnings `shutdownctl validate` and
//! `plan` print with `--scenario`, and the time the venue's documented limits need to clear a book.
//!
//! The venue is described by what its node says ([`CancelRules`], [`ConnectionInfo`]) and by the
//! book it holds, so the same checks serve the paper venue's profiles and a real node.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use shutdown_core::PipelineConfig;
use shutdown_core::domain::{ConnectionInfo, LogoutEffect, Order, Residence};
use shutdown_core::node::CancelRules;

use crate::cancel::CancelConfig;
use crate::close::CloseConfig;
use crate::words;

/// A venue as a pipeline will meet it.
#[derive(Debug, Clone)]
pub struct Venue {
    /// Its name in messages (a profile's, say).
    pub name: String,
    /// How it cancels.
    pub rules: CancelRules,
    /// The working orders that are not protective stops, counted by instrument.
    pub working: BTreeMap<String, usize>,
    /// Its connections.
    pub connections: Vec<ConnectionInfo>,
}

impl Venue {
    /// A venue holding `orders`; the working ones that are not protective stops are counted.
    pub fn new(
        name: impl Into<String>,
        rules: CancelRules,
        orders: &[Order],
        connections: Vec<ConnectionInfo>,
    ) -> Self {
        let mut working: BTreeMap<String, usize> = BTreeMap::new();
        let risky = orders.iter().filter(|o| {
            o.status.is_live() && o.residence == Residence::Venue && !o.is_protective()
        });
        for o in risky {
            *working.entry(o.instrument.clone()).or_default() += 1;
        }
        Self {
            name: name.into(),
            rules,
            working,
            connections,
        }
    }

    fn orders(&self) -> usize {
        self.working.values().sum()
    }
}

/// How a book is cleared, and what it costs at the venue's documented rate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Clearing {
    /// `one by one`, `batches of N`, `mass cancel`.
    pub method: String,
    /// Cancel requests.
    pub requests: usize,
    /// Seconds at the documented rate; `None` when the venue documents none.
    pub secs: Option<f64>,
}

/// The requests that clear `venue`'s book, one by one, in batches (where it has them), or with
/// its mass cancel (where it has one that may be used: one that spares stops, or any when stops
/// may go), and their time at its documented rate. The fastest is the floor.
pub fn clearings(venue: &Venue, stops_may_go: bool) -> Vec<Clearing> {
    let rules = &venue.rules;
    let at_rate = |requests: usize| {
        rules
            .requests_per_sec
            .filter(|r| *r > 0.0)
            .map(|r| requests as f64 / r)
    };
    let mut out = vec![Clearing {
        method: "one by one".into(),
        requests: venue.orders(),
        secs: at_rate(venue.orders()),
    }];
    if rules.batch_size > 1 {
        let requests = venue
            .working
            .values()
            .map(|n| n.div_ceil(rules.batch_size))
            .sum();
        out.push(Clearing {
            method: format!("batches of {}", rules.batch_size),
            requests,
            secs: at_rate(requests),
        });
    }
    if let Some(m) = rules
        .mass_cancel
        .as_ref()
        .filter(|m| m.spares_stops || stops_may_go)
    {
        let calls = |n: usize| m.max_orders.map_or(1, |max| n.div_ceil(max.max(1)));
        let requests = match m.per_instrument {
            true => venue.working.values().map(|n| calls(*n)).sum(),
            false => calls(venue.orders()),
        };
        out.push(Clearing {
            method: "mass cancel".into(),
            requests: requests.min(venue.orders()),
            secs: at_rate(requests),
        });
    }
    out
}

/// The fastest way to clear the book.
pub fn floor(venue: &Venue, stops_may_go: bool) -> Clearing {
    let all = clearings(venue, stops_may_go);
    let fastest = all.iter().min_by_key(|c| c.requests).cloned();
    fastest.unwrap_or(Clearing {
        method: "one by one".into(),
        requests: 0,
        secs: Some(0.0),
    })
}

fn per_sec(r: f64) -> String {
    format!("{} requests a second", (r * 100.0).round() / 100.0)
}

/// Each way `config` does not fit `venue`, in words naming the step, the key and the value.
pub fn warnings(config: &PipelineConfig, venue: &Venue) -> Vec<String> {
    let mut out = Vec::new();
    for spec in config.steps.iter().filter(|s| s.enabled) {
        let options: &dyn std::any::Any = &*spec.config;
        let name = &spec.settings.name;
        if let Some(c) = options.downcast_ref::<CancelConfig>() {
            out.extend(cancel(name, c, spec.settings.timeout, venue));
        }
        if let Some(c) = options.downcast_ref::<CloseConfig>() {
            out.extend(close(name, c, venue));
        }
    }
    out
}

fn cancel(name: &str, c: &CancelConfig, timeout: Duration, venue: &Venue) -> Vec<String> {
    let mut out = Vec::new();
    let v = &venue.name;
    let rules = &venue.rules;
    if let Some(limit) = rules.requests_per_sec
        && c.rate_per_sec > limit
    {
        out.push(format!(
            "steps.{name}.rate_per_sec = {} is above the {} {v} documents: the steps keep to the venue's limit{}",
            c.rate_per_sec,
            per_sec(limit),
            match rules.limit_ends_session {
                true => " (a request over it ends the session there, and fires an armed cancel-on-disconnect)",
                false => "",
            }
        ));
    }
    let stops_may_go = !c.keep_protective_stops;
    // What the step will use, at the rate it will keep.
    let used = clearings(venue, stops_may_go)
        .into_iter()
        .filter(|m| c.use_mass_cancel || m.method != "mass cancel")
        .min_by_key(|m| m.requests);
    let rate = match c.rate_per_sec {
        r if r > 0.0 => Some(rules.requests_per_sec.map_or(r, |l| l.min(r))),
        _ => rules.requests_per_sec,
    };
    let best = floor(venue, stops_may_go);
    if let (Some(used), Some(rate)) = (used, rate) {
        let needs = used.requests as f64 / rate;
        if needs > timeout.as_secs_f64() {
            let faster = match (&best.secs, best.method != used.method) {
                (Some(s), true) => format!(
                    " ({} with use_mass_cancel = true)",
                    shutdown_core::secs(Duration::from_secs_f64(*s))
                ),
                _ => String::new(),
            };
            out.push(format!(
                "steps.{name}.timeout_secs = {} cannot clear the {} working on {v}: {} ({}) at {} need {}{faster}",
                timeout.as_secs_f64(),
                words::count(venue.orders(), "order"),
                words::count(used.requests, "request"),
                used.method,
                per_sec(rate),
                shutdown_core::secs(Duration::from_secs_f64(needs)),
            ));
        }
    }
    out
}

fn close(name: &str, c: &CloseConfig, venue: &Venue) -> Vec<String> {
    let mut out = Vec::new();
    let v = &venue.name;
    for conn in venue.connections.iter().filter(|c| c.dead_man_armed) {
        let id = &conn.id;
        if c.logout && conn.logout == LogoutEffect::Fires {
            out.push(format!(
                "steps.{name}.logout = true: on {v} a logout of {id} fires its armed dead-man's switch: every resting order goes, stops included"
            ));
        }
        let logout_disarms = c.logout && conn.logout == LogoutEffect::Disarms;
        if !c.disarm_dead_man && !logout_disarms {
            out.push(format!(
                "steps.{name}.disarm_dead_man = false leaves the switch of {id} armed: on {v} it cancels every resting order, stops included, once the process exits"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use shutdown_core::EnvOverrides;
    use shutdown_core::node::MassCancelRules;

    use super::*;

    fn venue(rules: CancelRules, working: &[(&str, usize)]) -> Venue {
        Venue {
            name: "v".into(),
            rules,
            working: working.iter().map(|(i, n)| (i.to_string(), *n)).collect(),
            connections: Vec::new(),
        }
    }

    fn capped(spares_stops: bool) -> CancelRules {
        CancelRules {
            batch_size: 20,
            mass_cancel: Some(MassCancelRules {
                spares_stops,
                per_instrument: true,
                max_orders: Some(500),
            }),
            requests_per_sec: Some(10.0),
            limit_ends_session: false,
        }
    }

    #[test]
    fn each_way_to_clear_counts_its_requests_and_the_floor_is_the_fewest() {
        let v = venue(capped(true), &[("A", 1200), ("B", 10)]);
        let all: Vec<(String, usize)> = (clearings(&v, false).into_iter())
            .map(|c| (c.method, c.requests))
            .collect();
        assert_eq!(
            all,
            [
                ("one by one".to_owned(), 1210),
                ("batches of 20".to_owned(), 61),
                ("mass cancel".to_owned(), 4)
            ]
        );
        let f = floor(&v, false);
        assert_eq!(
            (f.method.as_str(), f.requests, f.secs),
            ("mass cancel", 4, Some(0.4))
        );
    }

    #[test]
    fn a_mass_cancel_that_takes_stops_counts_only_when_stops_may_go() {
        let v = venue(capped(false), &[("A", 100)]);
        assert_eq!(floor(&v, false).method, "batches of 20");
        assert_eq!(floor(&v, true).method, "mass cancel");
        // A venue that documents no rate: requests, no time.
        let v = venue(CancelRules::default(), &[("A", 3)]);
        assert_eq!(floor(&v, false).secs, None);
        assert_eq!(floor(&v, false).requests, 3);
    }

    #[test]
    fn a_config_that_fits_has_no_warning_and_each_misfit_names_its_key() {
        let connections = vec![ConnectionInfo {
            id: "c1".into(),
            venue: "v".into(),
            connected: true,
            dead_man_armed: true,
            logged_in: true,
            logout: LogoutEffect::Fires,
        }];
        let v = Venue {
            connections,
            ..venue(capped(true), &[("A", 1200)])
        };
        let config = |toml: &str| {
            PipelineConfig::from_toml(toml, "p.toml", EnvOverrides::None).expect("valid config")
        };
        let fits = config(
            "[[steps]]\nkind = \"cancel\"\nuse_mass_cancel = true\n[[steps]]\nkind = \"close\"\nlogout = false\n",
        );
        assert_eq!(warnings(&fits, &v), Vec::<String>::new());
        let misfit = config(
            "[[steps]]\nkind = \"cancel\"\ntimeout_secs = 1\nrate_per_sec = 20\n[[steps]]\nkind = \"close\"\ndisarm_dead_man = false\n",
        );
        let found = warnings(&misfit, &v);
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(found[0].starts_with(
            "steps.cancel.rate_per_sec = 20 is above the 10 requests a second v documents"
        ));
        assert!(found[1].starts_with("steps.cancel.timeout_secs = 1 cannot clear the 1200 orders working on v: 60 requests (batches of 20) at 10 requests a second need 6s (0.3s with use_mass_cancel = true)"), "{}", found[1]);
        assert!(found[2].starts_with("steps.close.logout = true: on v a logout of c1 fires"));
        assert!(
            found[3]
                .starts_with("steps.close.disarm_dead_man = false leaves the switch of c1 armed")
        );
    }
}
