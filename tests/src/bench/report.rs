//! The results of one run, as Markdown and JSON, with the targets of issues 8, 12 and 13 checked.

use std::time::Duration;

use serde_json::{Value, json};

use crate::stats::{Repeated, Summary, summarize};

/// One measured distribution.
pub struct Row {
    pub key: &'static str,
    pub label: String,
    pub summary: Summary,
    /// The key of the same decisions with every cache that can be turned off turned off.
    pub baseline: Option<&'static str>,
    /// The key of the seed-like decisions (every cache off, both IdP calls) this row replaces.
    pub seed: Option<&'static str>,
}

impl Row {
    pub fn new(key: &'static str, label: &str, samples: &[Duration]) -> Self {
        Row { key, label: label.to_string(), summary: summarize(samples), baseline: None, seed: None }
    }
    pub fn baseline(mut self, key: &'static str) -> Self {
        self.baseline = Some(key);
        self
    }
    pub fn seed(mut self, key: &'static str) -> Self {
        self.seed = Some(key);
        self
    }
}

pub struct IdpCount {
    pub key: &'static str,
    pub label: String,
    /// Decisions on a caller token: the only ones that can need an IdP.
    pub token_decisions: usize,
    /// Calls without any token (denied before any IdP could be asked), counted apart.
    pub no_token_calls: usize,
    pub requests: usize,
}

impl IdpCount {
    pub fn per_thousand(&self) -> f64 {
        self.requests as f64 * 1000.0 / self.token_decisions.max(1) as f64
    }
}

/// Peak resident memory of one process, and how many token decisions it had made.
pub struct Rss {
    pub key: &'static str,
    pub label: String,
    pub kib: Option<u64>,
    pub token_decisions: usize,
}

pub struct Machine {
    pub date: String,
    pub cpu: String,
    pub cores: usize,
    pub rustc: String,
    pub commit: String,
    pub load: String,
    pub runs: usize,
    pub warm: usize,
}

/// Where and when: the CPU, the compiler, the commit, the load average at the start.
pub fn machine(runs: usize, warm: usize) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".into(), |(_, v)| v.trim().to_string());
    let output = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    let date = time::OffsetDateTime::now_utc();
    Machine {
        date: format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}Z",
            date.year(),
            date.month() as u8,
            date.day(),
            date.hour(),
            date.minute()
        ),
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        rustc: output("rustc", &["--version"]),
        commit: std::env::var("BENCH_COMMIT").unwrap_or_else(|_| output("git", &["rev-parse", "--short", "HEAD"])),
        load: std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
        runs,
        warm,
    }
}

pub struct Results {
    pub machine: Machine,
    pub cold: Vec<Row>,
    pub warm: Vec<Row>,
    /// Decisions per second, per run.
    pub throughput: Vec<(&'static str, String, Repeated)>,
    pub rss: Vec<Rss>,
    pub idp: Vec<IdpCount>,
    pub sizes: Vec<(String, Option<u64>)>,
    /// From the decision log of the caches-off introspection process: the median time inside
    /// IdP calls and the median whole decision, µs, as tokenbridge measured them.
    pub logged_split: Option<(f64, f64)>,
    /// Issue 13: tokenbridge beside its peers, and the verify-alone baseline.
    pub peers: crate::peers::Peers,
    /// The serving-layer rows of issue 12 (old binary beside new).
    pub serving: Option<crate::serving::Serving>,
}

/// Which side of its limit a target wants the measured value on.
#[derive(Clone, Copy)]
pub enum Better {
    Less,
    More,
}

/// A target of issue 8 and how this run did against it.
pub struct Target {
    pub key: &'static str,
    pub what: &'static str,
    pub measured: String,
    pub goal: String,
    /// The measured value, in the unit of `limit`.
    pub value: Option<f64>,
    pub limit: f64,
    pub better: Better,
    /// Set when the run was smaller than the size the target is stated for: then it is not judged.
    pub undersized: Option<String>,
    /// For a missed target: what the run measured about where the time or space went.
    pub why: Option<String>,
}

impl Target {
    pub fn new(key: &'static str, what: &'static str, goal: &str, limit: f64, better: Better) -> Self {
        Target {
            key,
            what,
            measured: "n/a".into(),
            goal: goal.into(),
            value: None,
            limit,
            better,
            undersized: None,
            why: None,
        }
    }

    pub fn measured(mut self, value: Option<f64>, text: Option<String>) -> Self {
        self.value = value;
        self.measured = text.unwrap_or_else(|| "n/a".into());
        self
    }

    /// How far the value is on the wrong side of the limit, as a fraction of the limit
    /// (0 or less: met).
    /// A limit of 0 (a count that must be zero) has no fraction: the shortfall is the count.
    pub fn shortfall(&self) -> Option<f64> {
        let v = self.value?;
        if self.limit == 0.0 {
            return Some(v);
        }
        Some(match self.better {
            Better::Less => (v - self.limit) / self.limit,
            Better::More => (self.limit - v) / self.limit,
        })
    }

    /// `None` when not measured, or not at the target's size.
    pub fn met(&self) -> Option<bool> {
        if self.undersized.is_some() {
            return None;
        }
        self.shortfall().map(|x| x <= 0.0)
    }

    pub fn status(&self) -> String {
        if let Some(size) = &self.undersized {
            return format!("not measured at the target's size ({size})");
        }
        match (self.shortfall(), self.better) {
            (None, _) => "not measured".into(),
            (Some(x), _) if x <= 0.0 => "**met**".into(),
            (Some(x), _) if self.limit == 0.0 => format!("**missed**: {x:.0}, not 0"),
            (Some(x), Better::Less) => format!("**missed**: {:.1} % over", x * 100.0),
            (Some(x), Better::More) => format!("**missed**: {:.1} % short", x * 100.0),
        }
    }

    /// The reason line, only for a missed target.
    pub fn because(mut self, why: impl FnOnce() -> Option<String>) -> Self {
        if self.met() == Some(false) {
            self.why = why();
        }
        self
    }
}

/// The size the memory target is stated for.
const MEMORY_TARGET_DECISIONS: usize = 100_000;

const MIB: f64 = 1024.0 * 1024.0;

fn ms(us: f64) -> String {
    format!("{:.2}", us / 1000.0)
}
fn us(v: f64) -> String {
    if v >= 100.0 { format!("{v:.0}") } else { format!("{v:.1}") }
}

impl Results {
    pub fn new(machine: Machine) -> Self {
        Results {
            machine,
            cold: Vec::new(),
            warm: Vec::new(),
            throughput: Vec::new(),
            rss: Vec::new(),
            idp: Vec::new(),
            sizes: Vec::new(),
            logged_split: None,
            peers: Default::default(),
            serving: None,
        }
    }

    pub fn row(&self, key: &str) -> Option<&Summary> {
        self.cold.iter().chain(&self.warm).find(|row| row.key == key).map(|row| &row.summary)
    }

    fn p50_ratio(&self, key: &str, other: &str) -> Option<f64> {
        Some(self.row(key)?.p50 / self.row(other)?.p50)
    }

    fn throughput(&self, key: &str) -> Option<(&str, f64)> {
        self.throughput.iter().find(|(k, _, _)| *k == key).map(|(_, label, rates)| (label.as_str(), rates.median()))
    }

    fn load(&self) -> String {
        format!("load average at start {} on {} cores", self.machine.load, self.machine.cores)
    }

    pub fn targets(&self) -> Vec<Target> {
        let p50 = |k: &str| self.row(k).map(|s| s.p50);
        let mut t = Vec::new();
        let hit = self.row("oci_hit");
        t.push(
            Target::new(
                "oci_hit_us",
                "cache-hit decision over the OCI socket, end to end",
                "< 100 µs",
                100.0,
                Better::Less,
            )
            .measured(hit.map(|s| s.p50), hit.map(|s| format!("p50 {} µs, p99 {} µs", us(s.p50), us(s.p99))))
            .because(|| {
                Some(format!("an empty `/call` on the same socket takes {} µs; {}", us(p50("oci_empty")?), self.load()))
            }),
        );
        let ratio = self.p50_ratio("oci_hit", "oci_empty");
        t.push(
            Target::new(
                "oci_hit_vs_empty",
                "cache hit vs an empty `/call` on the same socket",
                "≤ 2×",
                2.0,
                Better::Less,
            )
            .measured(
                ratio,
                ratio.map(|x| {
                    format!(
                        "{x:.2}× ({} vs {} µs)",
                        us(p50("oci_hit").unwrap_or(0.0)),
                        us(p50("oci_empty").unwrap_or(0.0))
                    )
                }),
            )
            .because(|| {
                let (hit, empty) = (p50("oci_hit")?, p50("oci_empty")?);
                Some(format!("the token's decision adds {} µs to the socket's {} µs", us(hit - empty), us(empty)))
            }),
        );
        let ratio = self.p50_ratio("oci_miss", "floor_idp");
        t.push(
            Target::new(
                "introspection_vs_floor",
                "introspection path (new token) vs one IdP round trip",
                "≤ 1.2×",
                1.2,
                Better::Less,
            )
            .measured(
                ratio,
                ratio.map(|x| {
                    let (m, f) = (p50("oci_miss").unwrap_or(0.0), p50("floor_idp").unwrap_or(0.0));
                    format!("{x:.2}× ({} µs = round trip {} µs + {} µs)", us(m), us(f), us(m - f))
                }),
            )
            .because(|| {
                let logged = self.logged_split.zip(p50("oci_nocache_opaque")).map(|((i, d), e)| (e, i, d));
                Some(introspection_why(p50("oci_miss")?, p50("floor_idp")?, p50("oci_empty")?, logged))
            }),
        );
        let stdio = self.throughput("stdio_jwt");
        t.push(
            Target::new(
                "stdio_jwt_per_s",
                "stdio, cached JWT decisions per second on one core",
                "> 100,000 /s",
                100_000.0,
                Better::More,
            )
            .measured(
                stdio.map(|(_, m)| m),
                stdio.map(|(label, m)| format!("{:.0} /s ({})", m, label.rsplit(", ").next().unwrap_or_default())),
            )
            .because(|| {
                let (_, rate) = stdio?;
                let (_, empty) = self.throughput("stdio_empty")?;
                Some(format!("{}; {}", stdio_why(rate, empty), self.load()))
            }),
        );
        let ready = self.row("oci_ready");
        t.push(
            Target::new("oci_ready_ms", "OCI cold start: exec → socket ready", "< 10 ms", 10.0, Better::Less)
                .measured(ready.map(|s| s.p50 / 1000.0), ready.map(|s| format!("median {} ms", ms(s.p50))))
                .because(|| {
                    let s = self.row("oci_ready")?;
                    Some(format!("fastest of {} runs {} ms, p90 {} ms; {}", s.n, ms(s.min), ms(s.p90), self.load()))
                }),
        );
        let rss = self.rss.iter().find(|r| r.key == "oci").and_then(|r| Some((r, r.kib?)));
        let mut memory = Target::new(
            "oci_rss_mib",
            "peak resident memory after 100,000 decisions (OCI)",
            "< 16 MiB",
            16.0,
            Better::Less,
        )
        .measured(
            rss.map(|(_, kib)| kib as f64 / 1024.0),
            rss.map(|(r, kib)| format!("{:.1} MiB ({})", kib as f64 / 1024.0, r.label)),
        );
        memory.undersized = rss
            .filter(|(r, _)| r.token_decisions < MEMORY_TARGET_DECISIONS)
            .map(|(r, _)| format!("{} token decisions, fewer than 100,000", r.token_decisions));
        t.push(memory.because(|| {
            let base = self.rss.iter().find(|r| r.key == "stdio")?;
            Some(format!("{} peaks at {:.1} MiB", base.label, base.kib? as f64 / 1024.0))
        }));
        let size = self.sizes.first().and_then(|(_, b)| *b);
        t.push(
            Target::new("binary_mib", "release binary, every adapter", "< 10 MiB", 10.0, Better::Less)
                .measured(size.map(|b| b as f64 / MIB), size.map(|b| format!("{:.2} MiB", b as f64 / MIB)))
                .because(|| {
                    let one: Vec<String> = self
                        .sizes
                        .iter()
                        .skip(1)
                        .filter_map(|(l, b)| Some(format!("{l} {:.2} MiB", (*b)? as f64 / MIB)))
                        .collect();
                    (!one.is_empty()).then(|| format!("single-adapter builds: {}", one.join(", ")))
                }),
        );
        t.extend(self.peers.targets(self));
        t.extend(self.serving.iter().flat_map(|s| s.targets()));
        t
    }

    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut o = String::new();
        let mut line = |s: String| {
            o.push_str(&s);
            o.push('\n');
        };
        line("# tokenbridge benchmark".into());
        line(String::new());
        line(format!(
            "{}, commit `{}`, {} × {} (load average at start {}), {}; release build, fake IdPs on loopback. \
             Written by `scripts/bench` (`tests/src/bench/`); raw numbers in `latest.json`.",
            m.date, m.commit, m.cores, m.cpu, m.load, m.rustc
        ));
        line(String::new());
        line("## Targets (issues 8, 12 and 13)".into());
        line(String::new());
        line("| target | measured | goal | status |".into());
        line("|---|---|---|---|".into());
        for t in self.targets() {
            line(format!("| {} | {} | {} | {} |", t.what, t.measured, t.goal, t.status()));
        }
        line(String::new());
        let missed: Vec<Target> = self.targets().into_iter().filter(|t| t.why.is_some()).collect();
        if !missed.is_empty() {
            line("Where the missed targets' time or space went, as this run measured it:".into());
            line(String::new());
            for t in missed {
                line(format!("- {}: {}.", t.what, t.why.unwrap_or_default()));
            }
            line(String::new());
        }
        line(format!("## Cold start (ms, {} runs each)", m.runs));
        line(String::new());
        line("| mode | median | p10 – p90 | min | max |".into());
        line("|---|---|---|---|---|".into());
        for row in &self.cold {
            let s = &row.summary;
            line(format!(
                "| {} | {} | {} – {} | {} | {} |",
                row.label,
                ms(s.p50),
                ms(s.p10),
                ms(s.p90),
                ms(s.min),
                ms(s.max)
            ));
        }
        line(String::new());
        line("## Warm latency per path (µs, end to end from the client)".into());
        line(String::new());
        line(
            "Spread: the lowest and highest median of five consecutive blocks of the samples. \
              Ratios compare medians: to the same decisions with the validation cache off (the backend token \
              stays cached), to the seed-like decisions (no cache, both IdP calls every time; OCI rows, as the \
              seed is an OCI function), and to one IdP round trip. The loaded HTTP row has no caches-off \
              counterpart: that would take a second loaded run."
                .into(),
        );
        line(String::new());
        line("| path | n | p50 | p99 | p50 spread | × caches off | × seed-like | × one IdP round trip |".into());
        line("|---|---|---|---|---|---|---|---|".into());
        for row in &self.warm {
            let s = &row.summary;
            let ratio =
                |to: Option<&str>| to.and_then(|b| self.p50_ratio(row.key, b)).map_or("".into(), |x| format!("{x:.2}"));
            let (base, seed, floor) = (ratio(row.baseline), ratio(row.seed), ratio(Some("floor_idp")));
            line(format!(
                "| {} | {} | {} | {} | {} – {} | {} | {} | {} |",
                row.label,
                s.n,
                us(s.p50),
                us(s.p99),
                us(s.block_p50_min),
                us(s.block_p50_max),
                base,
                seed,
                floor
            ));
        }
        line(String::new());
        line("![latency per path](latency.svg)".into());
        line(String::new());
        line("## Throughput (decisions per second)".into());
        line(String::new());
        line("| what | median | min – max | runs |".into());
        line("|---|---|---|---|".into());
        for (_, label, rates) in &self.throughput {
            line(format!(
                "| {label} | {:.0} | {:.0} – {:.0} | {} |",
                rates.median(),
                rates.min(),
                rates.max(),
                rates.runs.len()
            ));
        }
        line(String::new());
        self.peers.markdown(&mut line);
        line("## Peak resident memory (VmHWM)".into());
        line(String::new());
        line("| mode | MiB |".into());
        line("|---|---|".into());
        for r in &self.rss {
            line(format!("| {} | {} |", r.label, r.kib.map_or("n/a".into(), |k| format!("{:.1}", k as f64 / 1024.0))));
        }
        line(String::new());
        line("## IdP requests per 1,000 token decisions".into());
        line(String::new());
        line("Calls without a token are denied before any IdP could be asked; they are counted apart.".into());
        line(String::new());
        line("| decisions | token decisions | no-token calls | IdP requests | per 1,000 token decisions |".into());
        line("|---|---|---|---|---|".into());
        for c in &self.idp {
            line(format!(
                "| {} | {} | {} | {} | {:.1} |",
                c.label,
                c.token_decisions,
                c.no_token_calls,
                c.requests,
                c.per_thousand()
            ));
        }
        line("| the seed (Python OCI function): introspection + client_credentials for every decision, by construction | | | | 2000 |".into());
        line(String::new());
        if let Some(serving) = &self.serving {
            o.push_str(&serving.markdown());
        }
        let mut line = |s: String| {
            o.push_str(&s);
            o.push('\n');
        };
        line("## Release binary size".into());
        line(String::new());
        line("| build | MiB |".into());
        line("|---|---|".into());
        for (label, bytes) in &self.sizes {
            line(format!("| {label} | {} |", bytes.map_or("n/a".into(), |b| format!("{:.2}", b as f64 / MIB))));
        }
        line(String::new());
        line("## How it was measured".into());
        line(String::new());
        for note in NOTES {
            line(format!("- {note}"));
        }
        o
    }

    pub fn json(&self) -> Value {
        let m = &self.machine;
        let rows = |rows: &[Row]| -> Value {
            rows.iter()
                .map(|row| {
                    let mut v = row.summary.json();
                    v["label"] = json!(row.label);
                    if let Some(b) = row.baseline {
                        v["baseline"] = json!(b);
                        v["ratio_to_baseline_p50"] =
                            self.p50_ratio(row.key, b).map_or(Value::Null, |x| json!((x * 100.0).round() / 100.0));
                    }
                    if let Some(b) = row.seed {
                        v["seed_like"] = json!(b);
                        v["ratio_to_seed_like_p50"] =
                            self.p50_ratio(row.key, b).map_or(Value::Null, |x| json!((x * 100.0).round() / 100.0));
                    }
                    v["ratio_to_floor_p50"] = self
                        .p50_ratio(row.key, "floor_idp")
                        .map_or(Value::Null, |x| json!((x * 100.0).round() / 100.0));
                    (row.key.to_string(), v)
                })
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        json!({
            "machine": {"date": m.date, "cpu": m.cpu, "cores": m.cores, "rustc": m.rustc, "commit": m.commit,
                        "load_average": m.load, "cold_runs": m.runs, "warm_samples": m.warm},
            "targets": self.targets().iter().map(|t| (t.key.to_string(), json!({
                "what": t.what, "measured": t.measured, "goal": t.goal,
                "value": t.value, "limit": t.limit, "status": t.status(), "met": t.met(),
                "shortfall_of_limit": t.shortfall().map(|x| (x * 1000.0).round() / 1000.0), "why": t.why
            }))).collect::<serde_json::Map<_, _>>(),
            "cold_start_us": rows(&self.cold),
            "warm_latency_us": rows(&self.warm),
            "throughput_per_s": self.throughput.iter().map(|(k, label, rates)| {
                let mut v = rates.json();
                v["label"] = json!(label);
                (k.to_string(), v)
            }).collect::<serde_json::Map<_, _>>(),
            "peak_rss_kib": self.rss.iter().map(|r| (r.key.to_string(), json!({
                "label": r.label, "kib": r.kib, "token_decisions": r.token_decisions
            }))).collect::<serde_json::Map<_, _>>(),
            "idp_requests": self.idp.iter().map(|c| (c.key.to_string(), json!({
                "label": c.label, "token_decisions": c.token_decisions, "no_token_calls": c.no_token_calls,
                "requests": c.requests,
                "per_1000": (c.per_thousand() * 10.0).round() / 10.0
            }))).collect::<serde_json::Map<_, _>>(),
            "peers": self.peers.json(),
            "binary_bytes": self.sizes.iter().map(|(label, b)| json!({"build": label, "bytes": b})).collect::<Vec<_>>(),
            "serving": self.serving.as_ref().map(|s| s.json()),
        })
    }
}

/// Where an uncached introspection decision's time went, from the medians of the same run: the
/// client's view, and (when there) the caches-off process's own decision log (p50 end to end,
/// median inside IdP calls, median whole decision).
fn introspection_why(miss: f64, round_trip: f64, empty: f64, logged: Option<(f64, f64, f64)>) -> String {
    let mut why = format!(
        "of its p50 {} µs, {} µs ({:.0} %) is one IdP round trip (the harness's own, kept alive) and {} µs \
         tokenbridge's, of which an empty `/call` on the same socket takes {} µs",
        us(miss),
        us(round_trip),
        100.0 * round_trip / miss,
        us(miss - round_trip),
        us(empty)
    );
    if let Some((end_to_end, idp, decision)) = logged {
        why.push_str(&format!(
            "; in the caches-off process (the same path without the cache, p50 {} µs) tokenbridge's decision log \
             puts the median time inside the IdP call at {} µs and the median decision at {} µs: about {} µs of \
             decision work around the call and {} µs outside what the log times (the OCI adapter, the socket \
             and the log line itself)",
            us(end_to_end),
            us(idp),
            us(decision),
            us(decision - idp),
            us(end_to_end - decision)
        ));
    }
    why
}

/// A decision's cost from its rate, next to a no-token line's on the same core.
fn stdio_why(rate: f64, empty_rate: f64) -> String {
    let (per, empty) = (1e6 / rate, 1e6 / empty_rate);
    format!(
        "{per:.1} µs per decision; a line without a token (denied without any IdP call) takes {empty:.1} µs \
         ({empty_rate:.0} /s) on the same pinned core, so reading a line, answering it and logging the \
         decision are {:.0} % of it",
        100.0 * empty / per
    )
}

const NOTES: &[&str] = &[
    "On a busy machine (see the load average above) waking a thread can wait for the next scheduler tick (4 ms \
     at 250 Hz): p99s of 4 and 8 ms and cold-start medians far above their minimum are that, not tokenbridge. \
     The minimum of a cold start is its cost on an idle core; warm medians are robust to it.",
    "Every process runs the release binary with its decision log (stderr) sent to /dev/null, except the caches-off \
     introspection process, whose log goes to a file so that its `idp_ms` and `duration_ms` can split the uncached \
     decision; clients, fake IdPs and the binary share the machine's cores unless a row says it is pinned.",
    "Cold start: exec of the binary → the event named, polled every 50 µs (OCI socket) or read from the process \
     (stdio answer, HTTP `listening` log line, Lambda answer posted to the fake Runtime API). Every first decision \
     is a new token: one introspection and one backend-token request.",
    "Warm latency over the OCI socket: one kept-alive connection, `Content-Length` framing, the time from writing \
     the request to reading the whole reply. Cache hits are interleaved with empty `/call`s (no token: a deny \
     without any IdP call), so both see the same conditions. They are counted apart from token decisions, in the \
     IdP requests per 1,000 token decisions and in the memory rows.",
    "Caches off: `TOKENBRIDGE_CACHE_MAX_TTL_SECONDS=0` and `TOKENBRIDGE_CACHE_INACTIVE_TTL_SECONDS=0` switch off \
     the validation cache (introspection every time, or JWT verification every time). The backend token cache \
     cannot be switched off by configuration (a backend token stays fresh for at least half its usable life, \
     whatever the settings), so the caches-off rows still reuse the backend token.",
    "Seed-like: what the seed does for every decision, introspection and then client_credentials with no cache. \
     Each sample is one decision of the caches-off OCI process (its introspection included) followed by the \
     client_credentials round trip to the same IdP B that tokenbridge would have made, sent by the harness \
     with the `ureq` client tokenbridge uses, timed together. The `× seed-like` column divides by its median.",
    "Floor: the harness's own `POST /introspect` to the same fake IdP with the same `ureq` client tokenbridge uses, \
     on a kept-alive connection, with no decision around it.",
    "The fake IdPs are `tiny_http` servers that spawn a thread per request; a real IdP's round trip is longer, \
     which makes tokenbridge's own share of the introspection path smaller than here.",
    "stdio throughput: n copies of one payload line written as fast as the pipe takes them; decisions per second \
     between the first and the last answer (process start excluded).",
    "HTTP under load: client threads in the harness, one kept-alive connection each, for a fixed time; server and \
     clients share the cores.",
    "Lambda rows include the fake Runtime API (a `tiny_http` server with a thread per request) on both sides of \
     every invocation: they bound the adapter's cost from above.",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn target(value: f64, limit: f64, better: Better) -> Target {
        Target::new("t", "t", "", limit, better).measured(Some(value), None)
    }

    #[test]
    fn a_throughput_short_of_its_target_is_missed_by_the_shortfall_relative_to_the_target() {
        let t = target(79_519.0, 100_000.0, Better::More);
        assert_eq!(t.met(), Some(false));
        assert_eq!(t.status(), "**missed**: 20.5 % short");
    }

    #[test]
    fn a_latency_over_its_target_is_missed_by_the_excess_relative_to_the_target() {
        let t = target(2.19, 1.2, Better::Less);
        assert_eq!(t.status(), "**missed**: 82.5 % over");
    }

    #[test]
    fn a_count_that_must_be_zero_is_missed_by_the_count_and_met_at_zero() {
        let t = target(3.0, 0.0, Better::Less);
        assert_eq!(t.met(), Some(false));
        assert_eq!(t.status(), "**missed**: 3, not 0");
        assert_eq!(target(0.0, 0.0, Better::Less).status(), "**met**");
    }

    #[test]
    fn a_value_on_the_right_side_of_the_limit_is_met() {
        assert_eq!(target(120_000.0, 100_000.0, Better::More).status(), "**met**");
        assert_eq!(target(18.0, 100.0, Better::Less).status(), "**met**");
        assert_eq!(target(100.0, 100.0, Better::Less).met(), Some(true));
    }

    fn results_with_oci_memory(token_decisions: usize) -> Results {
        let machine = Machine {
            date: String::new(),
            cpu: String::new(),
            cores: 2,
            rustc: String::new(),
            commit: String::new(),
            load: String::new(),
            runs: 0,
            warm: 0,
        };
        let mut r = Results::new(machine);
        r.rss.push(Rss { key: "oci", label: "OCI".into(), kib: Some(8 * 1024), token_decisions });
        r
    }

    fn memory_target(r: &Results) -> Target {
        r.targets().into_iter().find(|t| t.key == "oci_rss_mib").expect("the memory target")
    }

    #[test]
    fn memory_after_fewer_decisions_than_the_target_states_is_not_judged() {
        let t = memory_target(&results_with_oci_memory(600));
        assert_eq!(t.met(), None);
        assert!(t.status().starts_with("not measured at the target's size"), "{}", t.status());
    }

    #[test]
    fn memory_after_the_target_s_decisions_is_judged() {
        assert_eq!(memory_target(&results_with_oci_memory(100_000)).met(), Some(true));
    }

    #[test]
    fn a_missed_target_says_where_its_time_went_and_a_met_one_does_not() {
        let why = introspection_why(252.0, 115.0, 23.0, Some((229.0, 150.0, 190.0)));
        assert!(why.contains("115 µs (46 %) is one IdP round trip"), "{why}");
        assert!(why.contains("about 40.0 µs of decision work around the call and 39.0 µs outside"), "{why}");
        let mut r = results_with_oci_memory(100_000);
        r.warm.push(Row::new("oci_miss", "", &[Duration::from_micros(252)]));
        r.warm.push(Row::new("floor_idp", "", &[Duration::from_micros(115)]));
        r.warm.push(Row::new("oci_empty", "", &[Duration::from_micros(23)]));
        r.warm.push(Row::new("oci_hit", "", &[Duration::from_micros(18)]));
        let targets = r.targets();
        let by_key = |k: &str| targets.iter().find(|t| t.key == k).expect("target");
        assert!(by_key("introspection_vs_floor").why.is_some());
        assert!(by_key("oci_hit_us").why.is_none());
    }
}
