//! Showing a running backup: a one-line progress display on a terminal, JSON progress
//! events with `--json`, nothing otherwise (cron mails stay clean).

use super::{format, Ctx};
use cairn::ops::progress::Progress;
use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

enum Mode {
    Terminal,
    Json,
    Silent,
}

/// Run `work` while showing `progress` every so often.
pub fn show_while<T: Send>(ctx: &Ctx, progress: &Progress, work: impl FnOnce() -> T + Send) -> T {
    let mode = if ctx.json {
        Mode::Json
    } else if !ctx.quiet && std::io::stderr().is_terminal() {
        Mode::Terminal
    } else {
        Mode::Silent
    };
    if let Mode::Silent = mode {
        return work();
    }
    progress.want_totals.store(true, std::sync::atomic::Ordering::Relaxed);
    let done = (Mutex::new(false), Condvar::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            let tick = match mode {
                Mode::Json => Duration::from_secs(1),
                _ => Duration::from_millis(250),
            };
            let mut finished = done.0.lock().expect("progress lock");
            loop {
                let (guard, timeout) = done.1.wait_timeout(finished, tick).expect("progress lock");
                finished = guard;
                if *finished {
                    break;
                }
                if timeout.timed_out() {
                    match mode {
                        Mode::Json => println!("{}", json_event(progress, started.elapsed())),
                        _ => eprint!("\r\x1b[K{}", line(progress, started.elapsed(), width())),
                    }
                }
            }
            if let Mode::Terminal = mode {
                eprint!("\r\x1b[K");
                let _ = std::io::stderr().flush();
            }
        });
        let out = work();
        *done.0.lock().expect("progress lock") = true;
        done.1.notify_all();
        out
    })
}

fn json_event(p: &Progress, elapsed: Duration) -> serde_json::Value {
    serde_json::json!({
        "type": "progress",
        "seconds": elapsed.as_secs_f64(),
        "files_done": p.files.load(Ordering::Relaxed),
        "bytes_done": p.bytes.load(Ordering::Relaxed),
        "files_total": p.total_files.load(Ordering::Relaxed),
        "bytes_total": p.total_bytes.load(Ordering::Relaxed),
        "totals_complete": p.scanned.load(Ordering::Relaxed),
        "current": p.current().display().to_string(),
    })
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

/// The progress line, cut to `width` columns.
fn line(p: &Progress, elapsed: Duration, width: usize) -> String {
    let (files, bytes) = (p.files.load(Ordering::Relaxed), p.bytes.load(Ordering::Relaxed));
    let (tf, tb) = (p.total_files.load(Ordering::Relaxed), p.total_bytes.load(Ordering::Relaxed));
    let rate = bytes as f64 / elapsed.as_secs_f64().max(0.001);
    let mut s = format!("[{}] {files}", clock(elapsed));
    if p.scanned.load(Ordering::Relaxed) {
        s += &format!("/{tf} files {}/{}", format::size(bytes), format::size(tb));
        if rate > 0.0 && tb > bytes {
            s += &format!(" ETA {}", clock(Duration::from_secs_f64((tb - bytes) as f64 / rate)));
        }
    } else {
        s += &format!(" files {}", format::size(bytes));
    }
    s += &format!(" {}/s  {}", format::size(rate as u64), p.current().display());
    s.chars().take(width.saturating_sub(1)).collect()
}

fn width() -> usize {
    rustix::termios::tcgetwinsize(std::io::stderr())
        .map(|w| w.ws_col as usize)
        .ok()
        .filter(|w| *w > 0)
        .unwrap_or(80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_counts_eta_and_fits_the_width() {
        let p = Progress::default();
        p.files.store(10, Ordering::Relaxed);
        p.bytes.store(50 << 20, Ordering::Relaxed);
        p.total_files.store(100, Ordering::Relaxed);
        p.total_bytes.store(100 << 20, Ordering::Relaxed);
        p.scanned.store(true, Ordering::Relaxed);
        p.set_current(std::path::Path::new("/opt/gw/conf/a-very-long-name.xml"));
        let l = line(&p, Duration::from_secs(5), 200);
        assert!(l.starts_with("[0:05] 10/100 files 50.0 MiB/100.0 MiB ETA 0:05"), "{l}");
        assert!(l.ends_with("a-very-long-name.xml"));
        assert_eq!(line(&p, Duration::from_secs(5), 30).chars().count(), 29);
    }
}
