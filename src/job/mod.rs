//! Backup jobs: a TOML file of named jobs (`config`), snapshot names (`template`), the
//! commented examples `cairn config example` prints (`presets`), running a job step by
//! step (`run`, with the command lines in `steps`), and what monitoring reads (`metrics`,
//! `ping`).

pub mod config;
pub mod deep;
pub mod metrics;
pub mod ping;
pub mod presets;
mod rules;
pub mod run;
pub mod schedule;
mod steps;
pub mod template;
