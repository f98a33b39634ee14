//! Backup jobs: a TOML file of named jobs (`config`), snapshot names (`template`), the
//! commented examples `cairn config example` prints (`presets`), running a job step by
//! step (`run`), and what monitoring reads (`metrics`, pings).

pub mod config;
pub mod metrics;
pub mod ping;
pub mod presets;
pub mod run;
pub mod template;
