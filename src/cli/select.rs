//! The snapshot filter options every command that picks snapshots shares (`--host`,
//! `--tag`, `--label`, `--path`); what they mean lives in `cairn::repo::select`.

use cairn::repo::select::SnapshotFilter;

/// Narrows which snapshots count, and so which one `latest` is.
#[derive(clap::Args, Clone, Debug, Default)]
#[command(next_help_heading = "Snapshot filter (also what 'latest' means)")]
pub struct FilterArgs {
    /// Only snapshots of this host (repeatable: any)
    #[arg(id = "filter_host", long = "host", value_name = "HOST")]
    hosts: Vec<String>,
    /// Only snapshots with this tag (repeatable: any)
    #[arg(id = "filter_tag", long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Only snapshots with this label KEY=VALUE (repeatable: all must match)
    #[arg(id = "filter_label", long = "label", value_name = "KEY=VALUE", value_parser = super::backup::parse_label)]
    labels: Vec<(String, String)>,
    /// Only snapshots of this backed-up path, exactly as backed up (repeatable: any)
    #[arg(id = "filter_path", long = "path", value_name = "PATH")]
    paths: Vec<String>,
}

impl FilterArgs {
    pub fn filter(&self) -> SnapshotFilter {
        SnapshotFilter {
            hosts: self.hosts.clone(),
            tags: self.tags.clone(),
            labels: self.labels.clone(),
            paths: self.paths.clone(),
        }
    }
}
