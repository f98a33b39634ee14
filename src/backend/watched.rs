//! A local store that tells a test of every request it answers: the operation and the
//! object type (the pack cache's tests count requests, the list-ahead tests see which
//! thread lists, the prefetch test sees how many pack reads are in flight). Unit tests only.

use super::local::LocalBackend;
use super::{Backend, FileType};
use crate::error::Result;

/// What a request was, for the hook of [`Watched`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    ReadRange,
    Write,
    List,
    Size,
    Remove,
}

type Hook = Box<dyn Fn(Op, FileType) + Send + Sync>;

pub struct Watched {
    store: LocalBackend,
    hook: Hook,
    remote: bool,
}

impl Watched {
    /// `store`, calling `hook` before it answers each request.
    pub fn new(store: LocalBackend, hook: impl Fn(Op, FileType) + Send + Sync + 'static) -> Self {
        Watched { store, hook: Box::new(hook), remote: false }
    }

    /// Say it is a remote store, as a store across a network does: readers then keep
    /// several reads in flight (with a hook that waits, a store with a long round trip).
    pub fn remote(self) -> Self {
        Watched { remote: true, ..self }
    }
}

impl Backend for Watched {
    fn location(&self) -> String {
        self.store.location()
    }
    fn create(&self) -> Result<()> {
        self.store.create()
    }
    fn read(&self, ft: FileType, name: &str, max: u64) -> Result<Vec<u8>> {
        (self.hook)(Op::Read, ft);
        self.store.read(ft, name, max)
    }
    fn read_range(&self, ft: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        (self.hook)(Op::ReadRange, ft);
        self.store.read_range(ft, name, offset, len)
    }
    fn write(&self, ft: FileType, name: &str, bytes: &[u8]) -> Result<()> {
        (self.hook)(Op::Write, ft);
        self.store.write(ft, name, bytes)
    }
    fn list(&self, ft: FileType) -> Result<Vec<String>> {
        (self.hook)(Op::List, ft);
        self.store.list(ft)
    }
    fn size(&self, ft: FileType, name: &str) -> Result<u64> {
        (self.hook)(Op::Size, ft);
        self.store.size(ft, name)
    }
    fn remove(&self, ft: FileType, name: &str) -> Result<()> {
        (self.hook)(Op::Remove, ft);
        self.store.remove(ft, name)
    }
    fn is_remote(&self) -> bool {
        self.remote
    }
    fn read_parallelism(&self) -> usize {
        if self.remote {
            8
        } else {
            1
        }
    }
}
