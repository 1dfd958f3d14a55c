//! `shutdownctl reconcile`: a start gate against a scenario's `[downtime]` on the paper venue,
//! simulated; nothing leaves the process.

use shutdown_core::{Shutdown, exit_code};
use shutdown_paper::PaperNode;

use super::dry_run::{inputs, simulated_runtime};
use crate::PaperRun;
use crate::output::{fail, out, outln, print_json};

pub(crate) fn run(run: &PaperRun) -> i32 {
    let (json, seed) = (run.json, run.seed);
    let (config, scenario) = match inputs(&run.config, &run.scenario, json) {
        Ok(inputs) => inputs,
        Err(code) => return code,
    };
    // The scenario's book is what the node knew when it stopped; the venue is what the downtime
    // left, with the gate halted until the start gate opens it.
    let (paper, last, changes) = PaperNode::restarted(&scenario, seed.unwrap_or(scenario.seed));
    let node = paper.node();
    let mut pipeline = match config.build(&node) {
        Ok(p) => p,
        Err(e) => return fail(json, exit_code::INVALID_CONFIG, &e),
    };
    pipeline.settings.report_path = None;
    let runtime = match simulated_runtime(json) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let gate = Shutdown::new(pipeline, node)
        .dry_run(true)
        .poll_in_place(true)
        .with_extension(last);
    let report = runtime.block_on(gate.run_start_gate());
    // The paper venue knows what the downtime changed: check the gate found all of it.
    let audit = paper.audit_start(&report, &changes);
    let open = !paper.halted();
    if json {
        let mut out = serde_json::to_value(&report).unwrap_or_default();
        out["audit"] = serde_json::json!({ "ok": audit.ok, "discrepancies": audit.discrepancies });
        out["downtime_changes"] = serde_json::json!(changes);
        out["gate_open"] = serde_json::json!(open);
        print_json(&out);
    } else {
        out!("{report}");
        let diffs = (report.steps.iter())
            .find(|s| s.kind == "reconcile")
            .and_then(|s| s.details.get("differences"))
            .and_then(|d| d.as_array());
        for d in diffs.into_iter().flatten() {
            let field = |k: &str| d[k].as_str().unwrap_or("").to_owned();
            let mark = if d["handled"].as_bool() == Some(true) {
                " "
            } else {
                "!"
            };
            outln!(
                "{mark} {} {} ({})",
                field("kind"),
                field("id"),
                field("instrument")
            );
            outln!("    was {}; now {}", field("was"), field("now"));
            let action = d["action"]
                .as_str()
                .map(|a| format!(": {a}"))
                .unwrap_or_default();
            outln!("    {}{action}", field("policy"));
        }
        outln!(
            "gate: {}; the downtime made {} change{}",
            if open { "open" } else { "halted" },
            changes.len(),
            if changes.len() == 1 { "" } else { "s" }
        );
        outln!("{audit}");
    }
    match audit.ok {
        true => report.exit_code,
        // A report the venue contradicts is a bug, not an outcome.
        false => 1,
    }
}
