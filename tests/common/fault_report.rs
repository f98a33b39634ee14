//! The table the fault tests report (command × failpoint or fault × outcome) and their
//! closing numbers: kills survived, faults injected, snapshots verified. Printed when a
//! test ends (shown with `--no-capture`) and, when `CAIRN_FAULT_REPORT` names a file,
//! appended to it as tab-separated lines, which `scripts/fault-report.sh` turns into
//! benches/FAULTS.md.

use std::io::Write;

pub struct FaultReport {
    /// What the middle column holds: "failpoint" or "fault".
    kind: &'static str,
    rows: Vec<[String; 3]>,
    pub kills: usize,
    pub faults: usize,
    pub verified: usize,
}

impl FaultReport {
    pub fn new(kind: &'static str) -> FaultReport {
        FaultReport { kind, rows: Vec::new(), kills: 0, faults: 0, verified: 0 }
    }

    pub fn row(&mut self, command: &str, what: &str, outcome: impl Into<String>) {
        let outcome = outcome.into();
        eprintln!("{command} | {what} | {outcome}");
        self.rows.push([command.into(), what.into(), outcome]);
    }

    /// Print the table and the numbers, and append them to `CAIRN_FAULT_REPORT` if set.
    pub fn finish(self) {
        let mut text = String::new();
        for [c, w, o] in &self.rows {
            text.push_str(&format!("row\t{}\t{c}\t{w}\t{o}\n", self.kind));
        }
        text.push_str(&format!(
            "totals\t{}\t{}\t{}\t{}\t{}\n",
            self.kind,
            self.rows.len(),
            self.kills,
            self.faults,
            self.verified
        ));
        println!("| command | {} | outcome |\n|---|---|---|", self.kind);
        for [c, w, o] in &self.rows {
            println!("| {c} | {w} | {o} |");
        }
        println!(
            "{} rows, {} kills survived, {} faults injected, {} snapshot restores verified",
            self.rows.len(),
            self.kills,
            self.faults,
            self.verified
        );
        if let Some(path) = std::env::var_os("CAIRN_FAULT_REPORT") {
            // One append per test: lines of tests running at once do not interleave.
            let mut f =
                std::fs::OpenOptions::new().create(true).append(true).open(path).expect("report file");
            f.write_all(text.as_bytes()).expect("write the report");
        }
    }
}
