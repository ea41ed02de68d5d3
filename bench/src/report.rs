//! Results as a markdown table (stdout), a JSON file and an SVG chart of
//! throughput and p99 against concurrency.
use plotters::prelude::*;
use serde::Serialize;
use std::path::Path;

use crate::baselines::{Around, Baselines};
use crate::cpu::CpuUse;
use crate::load::Stats;

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub scenario: String,
    pub concurrency: usize,
    pub stats: Stats,
    /// Which baseline the throughput is compared with, and the ratio.
    pub baseline: Option<String>,
    pub ratio: Option<f64>,
    /// For logins and refreshes: their bound (raw Argon2id; min(sign/s,
    /// refresh transaction/s)) measured just before and after the run,
    /// whose mean `ratio` is taken against.
    pub baseline_around: Option<Around>,
    /// Where the CPU went while it ran (for the mixed load: all of it, on
    /// its login row).
    pub cpu: Option<CpuUse>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Overload {
    pub clients: usize,
    pub admitted: Stats,
    pub all: Stats,
    pub rejected_503: u64,
    pub rejected_with_retry_after: bool,
    pub queue_bound_ms: u64,
}

/// Logins from many clients that never back off.
#[derive(Debug, Clone, Serialize)]
pub struct Flood {
    pub clients: usize,
    /// The logins that succeeded (200).
    pub admitted: Stats,
    /// `admitted` against raw Argon2id measured around the flood.
    pub admitted_ratio: f64,
    pub argon2_around: Around,
    /// Every answer other than 200 (the refusals).
    pub refused: Stats,
    /// Peak resident memory of the server during the flood.
    pub server_rss_mib: f64,
    pub cpu: Option<CpuUse>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub date: String,
    pub parameters: serde_json::Value,
    pub baselines: Baselines,
    pub scenarios: Vec<ScenarioResult>,
    pub mixed: Vec<ScenarioResult>,
    pub mfa: Vec<ScenarioResult>,
    pub overload: Overload,
    pub flood: Flood,
    /// Peak resident memory of the server over the whole run.
    pub max_rss_mib: f64,
    /// Whether the server ran in this process (then its memory and CPU
    /// include the load generator's).
    pub in_process: bool,
}

fn errors(stats: &Stats) -> String {
    if stats.errors.is_empty() {
        return "-".into();
    }
    stats
        .errors
        .iter()
        .map(|(k, v)| format!("{k}×{v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn row(r: &ScenarioResult) -> String {
    let s = &r.stats;
    let ratio = match (&r.baseline, r.ratio) {
        (Some(name), Some(ratio)) => format!("{:.0} % of {name}", ratio * 100.0),
        _ => "-".into(),
    };
    let ratio = match r.baseline_around {
        Some(around) => format!("{ratio} ({})", around_text(around)),
        None => ratio,
    };
    format!(
        "| {} | {} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
        r.scenario,
        r.concurrency,
        s.throughput,
        s.p50_ms,
        s.p95_ms,
        s.p99_ms,
        s.max_ms,
        errors(s),
        ratio
    )
}

fn around_text(around: Around) -> String {
    format!("{:.1} → {:.1}/s around it", around.before, around.after)
}

pub fn markdown(report: &Report) -> String {
    let b = &report.baselines;
    let mut out = vec![
        format!("# authd benchmark, {}", report.date),
        String::new(),
        format!("Parameters: `{}`", report.parameters),
        String::new(),
        "## Physical baselines (same run, same machine)".into(),
        String::new(),
        "| baseline | per second |".into(),
        "| --- | --- |".into(),
        format!(
            "| Argon2id verify, all {} cores (at the start; logins are compared with it measured around each run) | {:.1} |",
            b.cores, b.argon2_verify_per_sec
        ),
        format!(
            "| {} sign (the service's key), all cores (at the start; refreshes are compared with their bound measured around each run) | {:.0} |",
            b.signing_alg, b.jwt_sign_per_sec
        ),
        format!(
            "| {} verify, all cores | {:.0} |",
            b.signing_alg, b.jwt_verify_per_sec
        ),
        format!(
            "| refresh transaction (sqlx, no HTTP) | {:.0} |",
            b.refresh_tx_per_sec
        ),
        String::new(),
        "## Scenarios".into(),
        String::new(),
    ];
    let header = [
        "| scenario | concurrency | ok/s | p50 ms | p95 ms | p99 ms | max ms | errors | vs baseline |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ];
    out.extend(header.iter().map(|s| s.to_string()));
    out.extend(report.scenarios.iter().map(row));
    out.extend([
        String::new(),
        "## Mixed (open loop): logins saturating the pool while refresh and /v1/me arrive at fixed rates (latency from when each call was due)".into(),
        String::new(),
    ]);
    out.extend(header.iter().map(|s| s.to_string()));
    out.extend(report.mixed.iter().map(row));
    out.extend([
        String::new(),
        "## Login with TOTP MFA: password step, then the code (each account once)".into(),
        String::new(),
    ]);
    out.extend(header.iter().map(|s| s.to_string()));
    out.extend(report.mfa.iter().map(row));
    let o = &report.overload;
    out.extend([
        String::new(),
        format!("## Overload: {} concurrent logins", o.clients),
        String::new(),
        format!(
            "admitted: {} ok ({:.1}/s), p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (queue bound {} ms); refused: {} × 503 (Retry-After on all: {}); other errors: {}",
            o.admitted.ok, o.admitted.throughput, o.admitted.p50_ms, o.admitted.p99_ms, o.admitted.max_ms,
            o.queue_bound_ms, o.rejected_503, o.rejected_with_retry_after, errors(&o.all).replace(&format!("503×{}", o.rejected_503), "").trim()
        ),
    ]);
    let f = &report.flood;
    out.extend([
        String::new(),
        format!("## Flood: {} clients sending logins without back-off", f.clients),
        String::new(),
        format!(
            "admitted: {:.1} logins/s = {:.0} % of raw Argon2id ({}; p99 {:.1} ms); refused: {} ({:.0}/s), p50 {:.2} ms, p99 {:.2} ms ({}); server peak RSS during the flood {:.1} MiB",
            f.admitted.throughput,
            f.admitted_ratio * 100.0,
            around_text(f.argon2_around),
            f.admitted.p99_ms,
            f.refused.requests,
            f.refused.requests as f64 / f.refused.seconds.max(f64::EPSILON),
            f.refused.p50_ms,
            f.refused.p99_ms,
            errors(&f.refused),
            f.server_rss_mib,
        ),
        String::new(),
    ]);
    out.extend(cpu_table(report));
    out.extend([
        String::new(),
        format!(
            "Peak resident memory of the server over the run: {:.1} MiB{}",
            report.max_rss_mib,
            if report.in_process {
                " (in-process: includes the load generator)"
            } else {
                ""
            }
        ),
    ]);
    out.join("\n")
}

/// Average cores each group kept busy per scenario, and per successful
/// request the milliseconds of CPU that hashing, the server's other
/// threads and PostgreSQL spent.
fn cpu_table(report: &Report) -> Vec<String> {
    let generator = if report.in_process {
        "(in authd)"
    } else {
        "load generator"
    };
    let mut out = vec![
        String::new(),
        "## Where the CPU went (average cores busy; CPU ms per successful request)".into(),
        String::new(),
        format!(
            "| scenario | concurrency | hashing | authd other | PostgreSQL | {generator} | rest | idle | ms/ok: hashing | authd other | PostgreSQL |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |".into(),
    ];
    // (name, concurrency, ok/s to divide by, CPU). The mixed row's CPU is
    // the whole mixed load's: no per-request split.
    let per_request = |r: &ScenarioResult| {
        (
            r.scenario.clone(),
            r.concurrency,
            Some(r.stats.throughput),
            r.cpu,
        )
    };
    let mixed = report
        .mixed
        .first()
        .map(|r| ("mixed (all of it)".to_owned(), r.concurrency, None, r.cpu));
    let flood = (
        "flood (admitted logins)".to_owned(),
        report.flood.clients,
        Some(report.flood.admitted.throughput),
        report.flood.cpu,
    );
    let rows = report
        .scenarios
        .iter()
        .map(per_request)
        .chain(mixed)
        .chain(report.mfa.iter().map(per_request))
        .chain([flood]);
    for (name, concurrency, per_sec, cpu) in rows {
        let Some(c) = cpu else { continue };
        let per_ok = per_sec.filter(|t| *t > 0.0);
        let ms = |cores: f64| per_ok.map_or("-".into(), |t| format!("{:.3}", cores * 1000.0 / t));
        out.push(format!(
            "| {name} | {concurrency} | {:.2} | {:.2} | {:.2} | {} | {:.2} | {:.2} | {} | {} | {} |",
            c.hashing_cores,
            c.server_other_cores,
            c.postgres_cores,
            c.generator_cores.map_or("-".into(), |g| format!("{g:.2}")),
            c.rest_cores,
            c.idle_cores,
            ms(c.hashing_cores),
            ms(c.server_other_cores),
            ms(c.postgres_cores),
        ));
    }
    out
}

pub fn write_json(report: &Report, path: &Path) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(report)?)?;
    Ok(())
}

type Metric = fn(&Stats) -> f64;

/// Two panels: throughput (ok/s) and p99 latency against concurrency, one
/// line per scenario, on log y axes. The x axis is the index of the
/// concurrency level.
pub fn write_svg(report: &Report, path: &Path) -> anyhow::Result<()> {
    // In order of first appearance: results interleave scenarios by level.
    let mut names: Vec<&str> = Vec::new();
    for result in &report.scenarios {
        if !names.contains(&result.scenario.as_str()) {
            names.push(&result.scenario);
        }
    }
    let mut levels: Vec<usize> = report.scenarios.iter().map(|r| r.concurrency).collect();
    levels.sort_unstable();
    levels.dedup();
    let index = |c: usize| levels.iter().position(|l| *l == c).unwrap_or(0) as f64;
    let root = SVGBackend::new(path, (1100, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let panels = root.split_evenly((1, 2));
    let metrics: [(&str, Metric); 2] = [
        ("throughput (ok/s)", |s| s.throughput),
        ("p99 latency (ms)", |s| s.p99_ms),
    ];
    for (panel, (title, metric)) in panels.iter().zip(metrics) {
        // Log scale: JWKS runs at tens of thousands per second, logins at
        // tens; on a linear axis everything but JWKS would be a flat line.
        let values: Vec<f64> = report
            .scenarios
            .iter()
            .map(|r| metric(&r.stats))
            .filter(|v| *v > 0.0)
            .collect();
        let top = values.iter().copied().fold(1.0_f64, f64::max) * 2.0;
        let bottom = values.iter().copied().fold(top, f64::min).max(0.001) / 2.0;
        let x_max = (levels.len().max(2) - 1) as f64;
        let mut chart = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.2..x_max + 0.2, (bottom..top).log_scale())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let labels = levels.clone();
        chart
            .configure_mesh()
            .x_desc("concurrency")
            .x_labels(levels.len().max(2))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 0.05 && i >= 0.0 {
                    labels
                        .get(i as usize)
                        .map_or(String::new(), |l| l.to_string())
                } else {
                    String::new()
                }
            })
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for (n, name) in names.iter().enumerate() {
            let color = Palette99::pick(n).to_rgba();
            let points: Vec<(f64, f64)> = report
                .scenarios
                .iter()
                .filter(|r| r.scenario == *name)
                .map(|r| (index(r.concurrency), metric(&r.stats).max(bottom)))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 3, color.filled())),
                )
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
