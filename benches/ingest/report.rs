//! The report: one table row per measured figure, each with its ratio to the bare `/healthz`
//! rate of the same run and, where an issue sets one, its goal and whether it was met; then
//! notes, and any errors (which make the run's numbers invalid and the bench fail).

use crate::load::PhaseResult;

/// One line of the table.
pub struct Row {
    pub phase: String,
    /// Per second (requests, or deliveries where the phase says so); NaN: not applicable.
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Show the rate's ratio to the baseline.
    pub vs_base: bool,
    pub errors: u64,
    pub goal: String,
    pub met: Option<bool>,
}

impl Row {
    /// A row of figures without a ratio or goal.
    pub fn new(phase: impl Into<String>, rate: f64, p50_ms: f64, p99_ms: f64) -> Row {
        Row {
            phase: phase.into(),
            rate,
            p50_ms,
            p99_ms,
            vs_base: false,
            errors: 0,
            goal: String::new(),
            met: None,
        }
    }

    /// The row of a closed-loop phase: its rate (with the ratio), p50, p99 and errors.
    pub fn of(result: &PhaseResult) -> Row {
        Row {
            vs_base: true,
            errors: result.errors,
            ..Row::new(
                result.label.clone(),
                result.rate(),
                result.percentile_ms(0.50),
                result.percentile_ms(0.99),
            )
        }
    }

    pub fn goal(mut self, goal: impl Into<String>, met: bool) -> Row {
        self.goal = goal.into();
        self.met = Some(met);
        self
    }
}

#[derive(Default)]
pub struct Report {
    /// Bare `/healthz` requests per second.
    pub baseline: f64,
    rows: Vec<Row>,
    notes: Vec<String>,
    problems: Vec<String>,
}

impl Report {
    pub fn row(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// The row of a closed-loop phase; its errors, if any, are listed as problems.
    pub fn phase(&mut self, result: &PhaseResult) {
        self.check(result);
        self.rows.push(Row::of(result));
    }

    /// Lists `result`'s errors as problems.
    pub fn check(&mut self, result: &PhaseResult) {
        if result.errors > 0 {
            self.problems.push(result.error_summary());
        }
    }

    /// A line printed under the table.
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Something that makes this run's numbers invalid.
    pub fn problem(&mut self, problem: impl Into<String>) {
        self.problems.push(problem.into());
    }

    /// Prints the table, the notes and the problems; whether the run was free of problems.
    pub fn print(&self) -> bool {
        println!();
        const HEAD: [&str; 8] = [
            "phase", "per s", "p50 ms", "p99 ms", "vs base", "errors", "goal", "verdict",
        ];
        let [phase, rate, p50, p99, ratio, errors, goal, met] = HEAD;
        println!(
            "{phase:<30} {rate:>10} {p50:>8} {p99:>8} {ratio:>7} {errors:>7}  {goal:<34} {met}"
        );
        for r in &self.rows {
            let ratio = if r.vs_base && self.baseline > 0.0 && !r.rate.is_nan() {
                format!("{:.2}", r.rate / self.baseline)
            } else {
                "-".into()
            };
            let rate = if r.rate.is_nan() {
                "-".into()
            } else {
                format!("{:.0}", r.rate)
            };
            println!(
                "{:<30} {:>10} {:>8} {:>8} {:>7} {:>7}  {:<34} {}",
                r.phase,
                rate,
                ms(r.p50_ms),
                ms(r.p99_ms),
                ratio,
                r.errors,
                r.goal,
                r.met.map_or("", verdict)
            );
        }
        println!(
            "(per s: 200 responses per second of the measured window, or what the row names; \
             p50, p99: latency of the 200s; vs base: ratio to bare /healthz of this run; \
             errors: non-200 and failed exchanges, warm-up included)"
        );
        if !self.notes.is_empty() {
            println!();
            for note in &self.notes {
                println!("{note}");
            }
        }
        if self.problems.is_empty() {
            println!("\nall responses were 200 and every check passed");
            return true;
        }
        eprintln!();
        eprintln!(
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        );
        eprintln!("!!! THIS RUN HAD ERRORS: its numbers are not valid");
        for p in &self.problems {
            eprintln!("!!! {p}");
        }
        eprintln!(
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        );
        false
    }
}

/// Milliseconds with two decimals, or `-` when there was no sample.
pub fn ms(value: f64) -> String {
    if value.is_nan() {
        "-".to_string()
    } else {
        format!("{value:.2}")
    }
}

pub fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}
