//! The compact form: a config with no `[[steps]]` builds `halt -> cancel -> verify -> flush -> close`,
//! each with its kind's defaults, with `cancel_orders`, `verify_stop_losses` and `flush_cache`
//! switching steps off.

use super::parse::{Parser, TopLevel};
use super::{ConfigProblem, DEFAULT_PIPELINE, StepRef, StepSpec};
use crate::fields::Flag;
use crate::pipeline::StepSettings;
use crate::registry::StepOptions;

impl Parser<'_> {
    /// The steps of the compact form, with the switches of `top` (when it parsed).
    pub(super) fn compact_steps(&mut self, top: Option<&TopLevel>) -> Vec<StepSpec> {
        let parser = self;
        let switch = |kind: &str| {
            let value = top.and_then(|t| match kind {
                "cancel" => t.cancel_orders,
                "verify" => t.verify_stop_losses,
                "flush" => t.flush_cache,
                _ => None,
            });
            value.is_none_or(|Flag(on)| on)
        };
        let mut steps = Vec::new();
        for (i, kind) in DEFAULT_PIPELINE.iter().enumerate() {
            let at = StepRef {
                index: i + 1,
                name: Some((*kind).to_owned()),
            };
            let Ok(registration) = parser.registry.get(kind) else {
                let message = format!(
                    "the compact form builds {}, but step kind `{kind}` is not registered in this program (registered: {})",
                    DEFAULT_PIPELINE.join(" -> "),
                    parser.registry.kind_names().join(", ")
                );
                parser
                    .problems
                    .push(ConfigProblem::new(parser.origin, message).at_step(Some(&at)));
                continue;
            };
            match (registration.parse)(&StepOptions::default()) {
                Ok(config) => steps.push(StepSpec {
                    index: i + 1,
                    settings: StepSettings::new(registration.kind, registration.defaults),
                    enabled: switch(kind),
                    registration,
                    config,
                }),
                Err(errors) => {
                    for e in errors {
                        parser.problem(Some(&at), e.key.as_deref().unwrap_or(""), e.message);
                    }
                }
            }
        }
        steps
    }
}
