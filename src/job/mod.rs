//! Backup jobs: a TOML file of named jobs (`config`), snapshot names (`template`), the
//! commented examples `cairn config example` prints (`presets`), running a job step by
//! step (`run`, with the command lines in `steps`), and what monitoring reads (`metrics`,
//! `ping`). `rules` holds the checks of values their TOML types cannot express, `deep`
//! what `config check --deep` tries on this machine, and `schedule` the systemd units and
//! cron lines `cairn schedule` writes.

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
