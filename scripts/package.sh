#!/usr/bin/env bash
# Build the Debian package: target/debian/cairn_VERSION-1_ARCH.deb.
# The man pages, shell completions and the example job file are made by the release
# binary itself (cairn man, cairn completion, cairn config example), so nobody edits them.
# Needs cargo-deb (cargo install cargo-deb --locked).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin cairn
out=target/package
rm -rf "$out"
mkdir -p "$out/man" "$out/completions"
cairn=target/release/cairn
"$cairn" man "$out/man" >/dev/null
"$cairn" completion bash >"$out/completions/cairn.bash"
"$cairn" completion zsh >"$out/completions/_cairn"
"$cairn" completion fish >"$out/completions/cairn.fish"
"$cairn" config example >"$out/cairn.toml"
cargo deb --no-build --quiet
ls target/debian/cairn_*.deb
