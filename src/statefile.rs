//! Small records in `[control] state_dir` that must survive a crash whole: written to a
//! temporary file, synced, renamed into place and the directory synced, so a crash leaves
//! either the old record or the new one.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Writes `text` to `dir/name` atomically, creating `dir` if needed.
pub fn write_atomic(dir: &Path, name: &str, text: &str) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Removes `dir/name` (absent already is fine).
pub fn remove(dir: &Path, name: &str) -> io::Result<()> {
    match fs::remove_file(dir.join(name)) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}
