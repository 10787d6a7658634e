//! Everything a command emits: text and JSON on stdout, and sets of files that land in an
//! output directory all together or not at all.

use crate::exit::{CmdResult, Failure};
use serde::Serialize;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// Writes `text` to stdout. A reader that closed the pipe early ends the command quietly.
pub fn print(text: &str) -> CmdResult {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            io::ErrorKind::BrokenPipe => Failure::StdoutClosed,
            _ => Failure::new(format!("cannot write to stdout: {e}")),
        })
}

/// Human-readable text of a command that may be running with `--json`: on stdout normally,
/// on stderr with `--json` (stdout then holds exactly one JSON document).
pub fn human(json: bool, text: &str) -> CmdResult {
    if json {
        let mut err = io::stderr().lock();
        // A closed stderr is not a reason to fail the command.
        let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
        Ok(())
    } else {
        print(text)
    }
}

/// The end of a command: its human-readable summary `text`, and with `json` the `value` as
/// the one JSON document on stdout (the text then goes to stderr).
pub fn finish<T: Serialize>(json: bool, text: &str, value: &T) -> CmdResult {
    human(json, text)?;
    if json {
        print_json(value)?;
    }
    Ok(())
}

/// Prints `value` as one JSON object on one line.
pub fn print_json<T: Serialize>(value: &T) -> CmdResult {
    let mut text = serde_json::to_string(value)
        .map_err(|e| Failure::new(format!("cannot encode the JSON output: {e}")))?;
    text.push('\n');
    print(&text)
}

/// Files staged in a hidden directory inside the output directory, then moved into place by
/// [`StagedDir::commit`]. Until the commit nothing is visible in the output directory; a failed
/// commit puts back what it replaced; dropping an uncommitted set removes the staged files and
/// any output directories this set created.
pub struct StagedDir {
    dir: PathBuf,
    /// Directories created for the output, deepest first (removed again if nothing lands).
    created: Vec<PathBuf>,
    staging: Option<TempDir>,
    names: Vec<String>,
    committed: bool,
}

/// A file moved into place by a commit, and where the file it replaced was kept meanwhile.
struct Placed {
    target: PathBuf,
    previous: Option<PathBuf>,
}

impl StagedDir {
    /// Prepares to write files into `dir`, creating it (and missing parents) if needed.
    pub fn new(dir: &Path) -> Result<Self, Failure> {
        let shown = dir.display();
        let mut created = Vec::new();
        let mut probe = Some(dir);
        while let Some(p) = probe {
            if p.as_os_str().is_empty() || p.exists() {
                break;
            }
            created.push(p.to_path_buf());
            probe = p.parent();
        }
        if dir.exists() && !dir.is_dir() {
            return Err(Failure::new(format!(
                "{shown}: exists and is not a directory; choose another output directory"
            )));
        }
        let mut set = StagedDir {
            dir: dir.to_path_buf(),
            created,
            staging: None,
            names: Vec::new(),
            committed: false,
        };
        fs::create_dir_all(dir).map_err(|e| {
            Failure::new(format!("{shown}: cannot create the output directory: {e}"))
        })?;
        let staging = tempfile::Builder::new()
            .prefix(".nuq-staging-")
            .tempdir_in(dir)
            .map_err(|e| {
                Failure::new(format!(
                    "{shown}: cannot write in the output directory: {e}; check its permissions and free space"
                ))
            })?;
        set.staging = Some(staging);
        Ok(set)
    }

    fn staging_path(&self) -> &Path {
        // `staging` is set by `new` and only taken by `drop`.
        self.staging.as_ref().map_or(&self.dir, |s| s.path())
    }

    /// Stages the file `name` (a plain file name) with `contents`.
    pub fn add(&mut self, name: &str, contents: &[u8]) -> CmdResult {
        let plain = !name.is_empty()
            && !name.starts_with('.')
            && !name.contains(['/', '\\'])
            && Path::new(name).file_name() == Some(name.as_ref());
        if !plain || self.names.iter().any(|n| n == name) {
            return Err(Failure::new(format!(
                "internal error: output file name {name:?} is not a new plain file name"
            )));
        }
        let target = self.dir.join(name);
        if let Ok(meta) = fs::symlink_metadata(&target) {
            if !meta.is_file() && !meta.file_type().is_symlink() {
                return Err(Failure::new(format!(
                    "{}: exists and is not a file; remove it or choose another output directory",
                    target.display()
                )));
            }
        }
        let path = self.staging_path().join(name);
        let write = || -> io::Result<()> {
            let mut f = fs::File::create(&path)?;
            f.write_all(contents)?;
            f.sync_all()
        };
        write().map_err(|e| {
            Failure::new(format!(
                "{}: cannot write: {e}; check free space and permissions",
                target.display()
            ))
        })?;
        self.names.push(name.to_string());
        Ok(())
    }

    /// Moves every staged file into the output directory, replacing files of the same name.
    /// If a move fails, the files already moved are removed and the replaced ones restored.
    /// Returns the paths of the files, in the order they were added.
    pub fn commit(mut self) -> Result<Vec<PathBuf>, Failure> {
        let staging = self.staging_path().to_path_buf();
        let previous_dir = staging.join(".previous");
        let mut placed: Vec<Placed> = Vec::new();
        let mut result = Ok(());
        for name in &self.names {
            let target = self.dir.join(name);
            let step = || -> io::Result<Placed> {
                let previous = match fs::symlink_metadata(&target) {
                    // Never move a directory aside: the staging area is deleted afterwards.
                    Ok(meta) if meta.is_dir() => {
                        return Err(io::Error::other("a directory is in the way"));
                    }
                    Ok(_) => {
                        fs::create_dir_all(&previous_dir)?;
                        let keep = previous_dir.join(name);
                        fs::rename(&target, &keep)?;
                        Some(keep)
                    }
                    Err(_) => None,
                };
                let moved = fs::rename(staging.join(name), &target);
                if let Err(e) = moved {
                    if let Some(keep) = &previous {
                        let _ = fs::rename(keep, &target);
                    }
                    return Err(e);
                }
                Ok(Placed {
                    target: target.clone(),
                    previous,
                })
            };
            match step() {
                Ok(p) => placed.push(p),
                Err(e) => {
                    result = Err(Failure::new(format!(
                        "{}: cannot move the new file into place: {e}; nothing was changed",
                        target.display()
                    )));
                    break;
                }
            }
        }
        if let Err(failure) = result {
            for p in placed.iter().rev() {
                let _ = fs::remove_file(&p.target);
                if let Some(keep) = &p.previous {
                    let _ = fs::rename(keep, &p.target);
                }
            }
            return Err(failure);
        }
        // Make the renames durable; a failure here leaves complete files, so it is not fatal.
        if let Ok(d) = fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        self.committed = true;
        Ok(placed.into_iter().map(|p| p.target).collect())
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if let Some(staging) = self.staging.take() {
            let _ = staging.close();
        }
        if !self.committed {
            // `remove_dir` only removes empty directories: nothing of the user's is lost.
            for d in &self.created {
                let _ = fs::remove_dir(d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .expect("readable dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn files_appear_only_on_commit() {
        let root = tempfile::tempdir().expect("temp dir");
        let out = root.path().join("a/b");
        let mut set = StagedDir::new(&out).expect("staging");
        set.add("x.txt", b"one").expect("add");
        set.add("y.txt", b"two").expect("add");
        assert_eq!(
            listing(&out).len(),
            1,
            "only the staging directory before the commit"
        );
        let paths = set.commit().expect("commit");
        assert_eq!(paths, vec![out.join("x.txt"), out.join("y.txt")]);
        assert_eq!(listing(&out), vec!["x.txt", "y.txt"]);
        assert_eq!(fs::read(out.join("y.txt")).expect("read"), b"two");
    }

    #[test]
    fn dropping_an_uncommitted_set_leaves_nothing() {
        let root = tempfile::tempdir().expect("temp dir");
        let out = root.path().join("new/deeper");
        {
            let mut set = StagedDir::new(&out).expect("staging");
            set.add("x.txt", b"one").expect("add");
        }
        assert!(
            listing(root.path()).is_empty(),
            "created directories are removed"
        );
        let existing = root.path().join("kept");
        fs::create_dir(&existing).expect("mkdir");
        fs::write(existing.join("old.txt"), b"old").expect("write");
        {
            let mut set = StagedDir::new(&existing).expect("staging");
            set.add("old.txt", b"new").expect("add");
        }
        assert_eq!(listing(&existing), vec!["old.txt"]);
        assert_eq!(fs::read(existing.join("old.txt")).expect("read"), b"old");
    }

    #[test]
    fn commit_replaces_existing_files() {
        let root = tempfile::tempdir().expect("temp dir");
        fs::write(root.path().join("x.txt"), b"old").expect("write");
        let mut set = StagedDir::new(root.path()).expect("staging");
        set.add("x.txt", b"new").expect("add");
        set.commit().expect("commit");
        assert_eq!(listing(root.path()), vec!["x.txt"]);
        assert_eq!(fs::read(root.path().join("x.txt")).expect("read"), b"new");
    }

    #[test]
    fn a_failed_commit_restores_what_it_replaced() {
        let root = tempfile::tempdir().expect("temp dir");
        fs::write(root.path().join("a.txt"), b"old a").expect("write");
        let mut set = StagedDir::new(root.path()).expect("staging");
        set.add("a.txt", b"new a").expect("add");
        set.add("b.txt", b"new b").expect("add");
        set.add("c.txt", b"new c").expect("add");
        // Appears after staging, so only the commit can notice it.
        fs::create_dir(root.path().join("c.txt")).expect("mkdir");
        fs::write(root.path().join("c.txt").join("inside"), b"mine").expect("write");
        let e = set.commit().expect_err("commit fails").to_string();
        assert!(
            e.contains("c.txt") && e.contains("nothing was changed"),
            "{e}"
        );
        assert_eq!(listing(root.path()), vec!["a.txt", "c.txt"]);
        assert_eq!(fs::read(root.path().join("a.txt")).expect("read"), b"old a");
        let inside = root.path().join("c.txt").join("inside");
        assert_eq!(fs::read(inside).expect("read"), b"mine");
    }

    #[test]
    fn refuses_bad_names_and_directories_in_the_way() {
        let root = tempfile::tempdir().expect("temp dir");
        fs::create_dir(root.path().join("taken")).expect("mkdir");
        let mut set = StagedDir::new(root.path()).expect("staging");
        for bad in ["", "../x", "a/b", ".hidden"] {
            assert!(set.add(bad, b"").is_err(), "{bad:?} must be refused");
        }
        set.add("ok", b"").expect("add");
        assert!(set.add("ok", b"").is_err(), "duplicate names are refused");
        let e = set.add("taken", b"").unwrap_err().to_string();
        assert!(e.contains("exists and is not a file"), "{e}");
    }

    #[test]
    fn a_file_in_place_of_the_directory_is_refused() {
        let root = tempfile::tempdir().expect("temp dir");
        let file = root.path().join("f");
        fs::write(&file, b"").expect("write");
        let e = StagedDir::new(&file).err().expect("refused").to_string();
        assert!(e.contains("exists and is not a directory"), "{e}");
    }
}
