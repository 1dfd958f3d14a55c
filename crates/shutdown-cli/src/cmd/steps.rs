//! `shutdownctl steps`: every registered step kind with its options (text, JSON, or the Markdown of
//! docs/config.md).

use shutdown_core::Registry;

use crate::output::{fail, out, outln, print_json, wrap};

pub(crate) fn run(json: bool, markdown: bool) -> i32 {
    let registry = match Registry::global() {
        Ok(r) => r,
        Err(e) => {
            return fail(json, 1, &e);
        }
    };
    if markdown {
        out!("{}", steps_markdown(registry));
        return 0;
    }
    if json {
        let kinds: Vec<_> = registry
            .registrations()
            .map(|r| serde_json::json!({
                "kind": r.kind, "summary": r.summary, "critical": r.defaults.critical,
                "default_timeout_secs": r.defaults.timeout.as_secs_f64(), "requires": r.requires, "options": (r.options)(),
            }))
            .collect();
        print_json(&kinds);
        return 0;
    }
    for r in registry.registrations() {
        outln!("{}", r.kind);
        for line in wrap(r.summary, 74) {
            outln!("    {line}");
        }
        outln!(
            "    default timeout {}s, {}",
            r.defaults.timeout.as_secs_f64(),
            if r.defaults.critical {
                "critical"
            } else {
                "not critical"
            }
        );
        for o in (r.options)() {
            for (i, line) in wrap(&format!("{} ({}, default {})", o.name, o.ty, o.default), 74)
                .iter()
                .enumerate()
            {
                outln!("    {}{line}", if i == 0 { "" } else { "  " });
            }
            for line in wrap(&o.doc, 70) {
                outln!("        {line}");
            }
        }
        outln!();
    }
    0
}

/// The per-kind reference of docs/config.md, generated from the registry so the two cannot drift.
fn steps_markdown(registry: &Registry) -> String {
    let mut md = String::new();
    for r in registry.registrations() {
        let roles: Vec<String> = r.requires.iter().map(ToString::to_string).collect();
        md.push_str(&format!("### `{}`\n\n{}\n\n", r.kind, r.summary));
        md.push_str(&format!(
            "Default timeout {}s; {}; needs the node roles: {}.\n\n",
            r.defaults.timeout.as_secs_f64(),
            if r.defaults.critical {
                "critical"
            } else {
                "not critical"
            },
            if roles.is_empty() {
                "none".to_owned()
            } else {
                roles.join(", ")
            }
        ));
        md.push_str("| option | type | default | meaning |\n|---|---|---|---|\n");
        for o in (r.options)() {
            md.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                o.name,
                o.ty.replace('|', "\\|"),
                o.default,
                o.doc.replace('|', "\\|")
            ));
        }
        md.push('\n');
    }
    md
}
