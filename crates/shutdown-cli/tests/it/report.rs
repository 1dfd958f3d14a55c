//! `report`: a report file read back, as a table, a timeline and an exit code.

use super::*;

#[test]
fn report_prints_a_report_file_and_human_output_fits_80_columns() {
    let (_, v) = dry_run("examples/scenarios/basic.toml", "1");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.json");
    std::fs::write(&file, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = ctl(&["report", "--file", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let s = text(&out.stdout);
    assert!(s.starts_with("shutdown clean (exit 0)"), "{s}");
    assert!(s.lines().all(|l| l.chars().count() <= 80), "{s}");
    let out = ctl(&["report", "--file", "missing.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("missing.json"));
}

#[test]
fn every_shipped_scenario_reads_in_80_columns_saying_what_each_step_did_and_every_problem_in_full()
{
    for scenario in ["basic", "busy", "hostile", "adversarial"] {
        let path = format!("examples/scenarios/{scenario}.toml");
        let out = ctl(&["dry-run", PIPELINE, "--scenario", &path, "--seed", "1"]);
        let s = text(&out.stdout);
        assert!(
            s.lines().all(|l| l.chars().count() <= 80),
            "{scenario}:\n{s}"
        );
        let (_, v) = dry_run(&path, "1");
        for step in v["steps"].as_array().unwrap() {
            let name = step["name"].as_str().unwrap();
            if step["outcome"] == "succeeded" {
                let did = step["summary"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name}: no summary"));
                let first = did.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
                assert!(
                    s.contains(&first),
                    "{scenario}: {name}'s summary {did:?} not shown:\n{s}"
                );
            }
            // Every problem, whole (its words in order, whatever the wrapping).
            let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
            for p in step["problems"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(step["error"].as_str().map(|_| &step["error"]))
            {
                let p = p
                    .as_str()
                    .unwrap()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                assert!(
                    flat.contains(&p),
                    "{scenario}: {name}: {p:?} not in full:\n{s}"
                );
            }
        }
    }
}

#[test]
fn report_draws_the_timeline_in_80_columns_and_as_an_svg_whose_bars_are_the_report() {
    let (_, v) = dry_run("examples/scenarios/adversarial.toml", "1");
    let dir = tempfile::tempdir().unwrap();
    let (file, svg) = (dir.path().join("report.json"), dir.path().join("t.svg"));
    std::fs::write(&file, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = ctl(&[
        "report",
        "--file",
        file.to_str().unwrap(),
        "--timeline",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    let timeline: Vec<&str> = s
        .lines()
        .skip_while(|l| !l.starts_with("timeline:"))
        .collect();
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(timeline.len(), steps.len() + 2, "{s}");
    assert!(timeline.iter().all(|l| l.chars().count() <= 80), "{s}");
    // The cancel step failed: its bar says so.
    assert!(
        timeline[2].contains("cancel") && timeline[2].contains('!'),
        "{s}"
    );

    // The SVG: every step's bar and budget frame where the report puts them, on an axis from
    // x = 170 (time 0) to 770 (the global deadline, which this run stayed inside).
    let doc = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&doc).expect("well-formed SVG");
    let timeout = v["timeout_secs"].as_f64().unwrap();
    let x = |t: f64| 170.0 + t / timeout * 600.0;
    let attr = |n: roxmltree::Node, a: &str| n.attribute(a).unwrap().parse::<f64>().unwrap();
    let find = |class: &str, step: &str| {
        doc.descendants()
            .find(|n| n.attribute("class") == Some(class) && n.attribute("data-step") == Some(step))
            .unwrap_or_else(|| panic!("no {class} for {step}"))
    };
    for step in steps {
        let name = step["name"].as_str().unwrap();
        let (offset, duration, budget) = (
            step["offset"].as_f64().unwrap(),
            step["duration"].as_f64().unwrap(),
            step["budget"].as_f64().unwrap(),
        );
        let bar = find("bar", name);
        assert!((attr(bar, "x") - x(offset)).abs() < 0.01, "{name}");
        assert!(
            (attr(bar, "width") - (x(offset + duration) - x(offset))).abs() < 0.01,
            "{name}"
        );
        assert_eq!(bar.attribute("data-outcome"), step["outcome"].as_str());
        let frame = find("budget", name);
        assert!(
            (attr(frame, "width") - (x(offset + budget) - x(offset))).abs() < 0.01,
            "{name}"
        );
        assert!(budget > 0.0 && offset >= 0.0, "{name}: {step}");
    }
    let deadline = doc
        .descendants()
        .find(|n| n.attribute("class") == Some("deadline"))
        .unwrap();
    assert!((attr(deadline, "x1") - 770.0).abs() < 0.01);
    // Steps follow one another: each starts after the one before it started.
    let offsets: Vec<f64> = steps
        .iter()
        .map(|s| s["offset"].as_f64().unwrap())
        .collect();
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{offsets:?}");

    // Signals: a second one at 1 s and a force at 2.5 s are marked in both pictures.
    let mut v = v.clone();
    v["escalations"] = serde_json::json!([
        {"level": "graceful", "reason": "SIGTERM", "offset": 0.0},
        {"level": "hurry", "reason": "SIGINT", "offset": 1.0},
        {"level": "force", "reason": "SIGINT", "offset": 2.5}
    ]);
    std::fs::write(&file, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = ctl(&[
        "report",
        "--file",
        file.to_str().unwrap(),
        "--timeline",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    let s = text(&out.stdout);
    let row = s
        .lines()
        .find(|l| l.starts_with("  escalations"))
        .expect(&s);
    // Columns: 19 before the axis, 56 for the 20 s to the deadline.
    let col = |t: f64| 19 + (t / timeout * 56.0).round() as usize;
    assert_eq!(row.chars().nth(col(1.0)), Some('H'), "{row}");
    assert_eq!(row.chars().nth(col(2.5)), Some('F'), "{row}");
    let doc = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&doc).unwrap();
    let lines: Vec<(Option<&str>, f64)> = (doc.descendants())
        .filter(|n| n.attribute("class") == Some("escalation"))
        .map(|n| (n.attribute("data-level"), attr(n, "x1")))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0].0, Some("hurry"));
    assert!((lines[0].1 - x(1.0)).abs() < 0.01 && (lines[1].1 - x(2.5)).abs() < 0.01);
}

#[test]
fn report_exit_code_hands_on_the_exit_code_the_report_records() {
    let (code, v) = dry_run("examples/scenarios/hostile.toml", "3");
    assert_eq!(code, 10);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.json");
    std::fs::write(&file, serde_json::to_vec(&v).unwrap()).unwrap();
    let path = file.to_str().unwrap();
    // Without the flag, printing a degraded report succeeded: exit 0.
    assert_eq!(ctl(&["report", "--file", path]).status.code(), Some(0));
    let out = ctl(&["report", "--file", path, "--exit-code"]);
    assert_eq!(out.status.code(), Some(10), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("shutdown degraded (exit 10)"));
}
