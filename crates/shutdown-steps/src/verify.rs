//! `verify`: every open position must be covered by resting stops; report, place a stop, flatten or fail.

use shutdown_core::StepDefaults;
use std::sync::Arc;

use async_trait::async_trait;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use shutdown_core::domain::{Order, Position, Side};
use shutdown_core::errors::{MissingRole, OptionError};
use shutdown_core::node::{OrderGateway, PositionBook};
use shutdown_core::{Counter, Node, ShutdownStep, StepConfig, StepContext, StepError, StepOutput};
use tokio::time::Instant;

use crate::coverage::{Coverage, CoverageRules, Rejected, judge_book, orphan_stops};
use crate::venue::{self, Action, Pacer, Remedy, read_book};
use crate::words;
use shutdown_core::retry::work_deadline;

/// What to do about an unprotected position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUnprotected {
    /// Report it; the shutdown ends degraded.
    Report,
    /// Place a reduce-only stop for the missing quantity, then check again.
    PlaceStop,
    /// Exit the position with a reduce-only market order, then check again.
    Flatten,
    /// Fail the step.
    Fail,
}

impl shutdown_core::OptionType for OnUnprotected {
    const NAME: &'static str = "\"report\" | \"place_stop\" | \"flatten\" | \"fail\"";
}

shutdown_core::step_options! {
    /// Options of `verify`.
    pub struct VerifyConfig {
        /// What to do about an unprotected position: report it (degraded), place a reduce-only stop
        /// for the missing quantity, exit it with a reduce-only market order, or fail the step.
        pub on_unprotected: OnUnprotected = OnUnprotected::Report,
        /// Distance of a placed stop from the mark price, in percent, on the loss side.
        pub stop_distance_pct: f64 = 1.0,
        /// Covered quantity may fall short of the position by this much (one lot step); it forgives
        /// a shortfall of cover, never the absence of a stop.
        pub quantity_tolerance: Decimal = Decimal::ZERO,
    }
}

impl StepConfig for VerifyConfig {
    fn validate(&self) -> Vec<OptionError> {
        let mut problems = Vec::new();
        // A stop 0% away is already crossed; 100% away is a trigger at or below zero.
        let pct = self.stop_distance_pct;
        if !(pct > 0.0 && pct < 100.0) {
            problems.push(OptionError {
                key: Some("stop_distance_pct".into()),
                message: format!("must be above 0 and below 100, found {pct:?}"),
            });
        }
        if self.quantity_tolerance < Decimal::ZERO {
            problems.push(OptionError {
                key: Some("quantity_tolerance".into()),
                message: format!("must not be negative, found {}", self.quantity_tolerance),
            });
        }
        problems
    }

    fn build(&self, node: &Node) -> Result<Box<dyn ShutdownStep>, MissingRole> {
        Ok(Box::new(Verify {
            config: self.clone(),
            orders: node.orders()?,
            positions: node.positions()?,
        }))
    }
}

/// One position in the report.
#[derive(Debug, Clone, Serialize)]
struct PositionStatus {
    id: String,
    instrument: String,
    side: Side,
    quantity: Decimal,
    mark_price: Decimal,
    covered: Decimal,
    protected: bool,
    stops: Vec<String>,
    rejected: Vec<Rejected>,
    action: Option<String>,
    /// The order the remedy sent, if one went out.
    remedy_order: Option<String>,
}

/// What `verify` hands to later steps (metrics).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VerifySummary {
    /// Positions checked.
    pub positions: usize,
    /// Positions left unprotected.
    pub unprotected: usize,
}

/// The `verify` step.
pub struct Verify {
    config: VerifyConfig,
    orders: Arc<dyn OrderGateway>,
    positions: Arc<dyn PositionBook>,
}

impl Verify {
    fn rules(&self) -> CoverageRules {
        CoverageRules {
            quantity_tolerance: self.config.quantity_tolerance,
        }
    }

    /// Positions and open orders, freshly read (fills may have landed meanwhile).
    async fn read(&self, deadline: Instant) -> Result<(Vec<Position>, Vec<Order>), StepError> {
        read_book(&*self.positions, &*self.orders, deadline).await
    }

    fn judge(&self, positions: &[Position], orders: &[Order]) -> Vec<(Position, Coverage)> {
        positions
            .iter()
            .cloned()
            .zip(judge_book(positions, orders, &self.rules()))
            .collect()
    }

    async fn remedy(
        &self,
        p: &Position,
        c: &Coverage,
        prefix: &str,
        pacer: &Pacer,
        deadline: Instant,
    ) -> Remedy {
        let action = match self.config.on_unprotected {
            OnUnprotected::PlaceStop => Action::PlaceStop {
                distance_pct: self.config.stop_distance_pct,
                trigger: None,
            },
            OnUnprotected::Flatten => Action::Flatten,
            OnUnprotected::Report | OnUnprotected::Fail => return Remedy::failed("none".into()),
        };
        venue::send(
            &*self.orders,
            pacer,
            action,
            p,
            p.quantity - c.covered,
            prefix,
            deadline,
        )
        .await
    }
}

/// Remedies sent at once.
const REMEDIES_IN_FLIGHT: usize = 8;

/// Publish the verdicts so far, kept in the report if the step is cut short.
fn publish(
    ctx: &StepContext,
    verdicts: &[(Position, Coverage)],
    actions: &std::collections::HashMap<String, Remedy>,
) {
    let report: Vec<PositionStatus> = (verdicts.iter())
        .map(|(p, c)| status(p, c, actions.get(&p.id).cloned()))
        .collect();
    let unprotected = report.iter().filter(|s| !s.protected).count();
    ctx.partial.detail("positions", &report);
    ctx.partial.detail("unprotected", unprotected);
}

fn status(p: &Position, c: &Coverage, remedy: Option<Remedy>) -> PositionStatus {
    let (action, remedy_order) = match remedy {
        Some(r) => (Some(r.text), r.order),
        None => (None, None),
    };
    PositionStatus {
        id: p.id.clone(),
        instrument: p.instrument.clone(),
        side: p.side,
        quantity: p.quantity,
        mark_price: p.mark_price,
        covered: c.covered,
        protected: c.protected,
        stops: c.stops.clone(),
        rejected: c.rejected.clone(),
        action,
        remedy_order,
    }
}

#[async_trait]
impl ShutdownStep for Verify {
    fn kind(&self) -> &'static str {
        "verify"
    }

    fn defaults(&self) -> StepDefaults {
        DEFAULTS
    }

    fn counts(&self) -> &'static [Counter] {
        &[Counter::PositionsUnprotected]
    }

    fn if_not_done(&self) -> Option<String> {
        Some("open positions were not checked for protective stops".into())
    }

    fn plan(&self) -> Vec<String> {
        vec![
            "re-read positions and open orders (conditional orders included)".into(),
            "check each position: opposite-side reduce-only stop, resting at the venue, trigger on the loss side, remaining quantity covers it".into(),
            format!("on an unprotected position: {}", match self.config.on_unprotected {
                OnUnprotected::Report => "report it".to_owned(),
                OnUnprotected::PlaceStop => format!("place a reduce-only stop {}% from the mark, then check again", self.config.stop_distance_pct),
                OnUnprotected::Flatten => "exit it with a reduce-only market order, then check again".to_owned(),
                OnUnprotected::Fail => "fail the step".to_owned(),
            }),
        ]
    }

    async fn run(&self, ctx: StepContext) -> Result<StepOutput, StepError> {
        let deadline = work_deadline(ctx.deadline);
        let start = Instant::now();
        let (positions, mut orders) = self.read(deadline).await?;
        let mut verdicts = self.judge(&positions, &orders);
        publish(&ctx, &verdicts, &Default::default());
        let mut actions: std::collections::HashMap<String, Remedy> = Default::default();
        let remedies = matches!(
            self.config.on_unprotected,
            OnUnprotected::PlaceStop | OnUnprotected::Flatten
        );
        if remedies && verdicts.iter().any(|(_, c)| !c.protected) {
            // Remedies together, bounded, at the venue's documented rate; the last third of the
            // time is kept to read back.
            let remedy_deadline = start + deadline.saturating_duration_since(start) * 2 / 3;
            let pacer = Pacer::new(self.orders.cancel_rules().requests_per_sec);
            let wanted: Vec<(&Position, &Coverage)> = (verdicts.iter())
                .filter(|(_, c)| !c.protected)
                .map(|(p, c)| (p, c))
                .collect();
            for batch in wanted.chunks(REMEDIES_IN_FLIGHT) {
                let done = futures_util::future::join_all(batch.iter().map(|(p, c)| {
                    self.remedy(p, c, venue::id_prefix(&ctx), &pacer, remedy_deadline)
                }))
                .await;
                for ((p, _), action) in batch.iter().zip(done) {
                    actions.insert(p.id.clone(), action);
                }
            }
            publish(&ctx, &verdicts, &actions);
            // Check again from the venue's state, not from what we asked for.
            let (positions, now) = match self.read(deadline).await {
                Ok(read) => read,
                Err(e) => {
                    // The remedies' effect is unknown: keep the first verdicts, give no count.
                    let report: Vec<PositionStatus> = (verdicts.iter())
                        .map(|(p, c)| status(p, c, actions.remove(&p.id)))
                        .collect();
                    return Err(StepError::new(format!(
                        "{}; the verdicts below are from before the remedies, whose effect is unknown",
                        e.message
                    ))
                    .detail("positions", &report));
                }
            };
            orders = now;
            verdicts = self.judge(&positions, &orders);
            for id in actions
                .keys()
                .filter(|id| !positions.iter().any(|p| &p.id == *id))
                .cloned()
                .collect::<Vec<_>>()
            {
                if let Some(a) = actions.get_mut(&id) {
                    a.text.push_str("; position closed");
                }
            }
        }
        let final_positions: Vec<Position> = verdicts.iter().map(|(p, _)| p.clone()).collect();
        let orphan_stops: Vec<String> = orphan_stops(&final_positions, &orders)
            .into_iter()
            .map(|o| o.client_id.clone())
            .collect();
        let report: Vec<PositionStatus> = verdicts
            .iter()
            .map(|(p, c)| status(p, c, actions.remove(&p.id)))
            .collect();
        let closed: Vec<(String, Remedy)> = actions.into_iter().collect();
        let unprotected: Vec<&PositionStatus> = report.iter().filter(|s| !s.protected).collect();
        ctx.results.insert(VerifySummary {
            positions: report.len(),
            unprotected: unprotected.len(),
        });
        let sent: Vec<&str> = (report.iter())
            .filter(|s| s.remedy_order.is_some())
            .filter_map(|s| s.action.as_deref())
            .chain(closed.iter().map(|(_, r)| r.text.as_str()))
            .collect();
        let remedies = match sent.len() {
            0 => String::new(),
            1 | 2 => format!("; {}", sent.join("; ")),
            n => format!("; {n} remedies sent"),
        };
        let summary = format!(
            "{}: {} protected, {} unprotected{remedies}",
            words::count(report.len(), "position"),
            report.len() - unprotected.len(),
            unprotected.len()
        );
        let mut out = StepOutput::new()
            .summary(summary)
            .detail("positions", &report)
            .detail("unprotected", unprotected.len())
            .detail("orphan_stops", &orphan_stops)
            .detail("closed_by_remedy", &closed)
            .count(Counter::PositionsUnprotected, unprotected.len() as u64);
        if unprotected.is_empty() {
            for id in &orphan_stops {
                out = out.problem(format!("stop {id} has no position to protect"));
            }
            return Ok(out);
        }
        let names: Vec<String> = unprotected
            .iter()
            .take(10)
            .map(|s| {
                format!(
                    "{} ({} {}, covered {})",
                    s.id, s.instrument, s.quantity, s.covered
                )
            })
            .collect();
        let message = format!(
            "{} position{} unprotected: {}",
            unprotected.len(),
            if unprotected.len() == 1 { "" } else { "s" },
            names.join(", ")
        );
        match self.config.on_unprotected {
            OnUnprotected::Report => Ok(out.problem(message)),
            _ => Err(StepError::new(message).with_output(out)),
        }
    }
}

/// Its timeout and criticality, for its registration and for a step built in code alike.
const DEFAULTS: StepDefaults = StepDefaults::new(5.0, true);

shutdown_core::register_step! {
    kind: "verify",
    summary: "Check that every open position is covered by resting reduce-only stops; report, place a stop, flatten or fail.",
    config: VerifyConfig,
    requires: [OrderGateway, PositionBook],
    defaults: DEFAULTS,
}
