//! Reading the config file and the secret files it names, bounded: a size cap on each, and
//! secret files must be regular files (a directory is named as such, a FIFO or device is
//! never opened). The deadline that bounds a read which hangs is the caller's
//! ([`super::load_all_within`], [`super::load_all_on`]).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::ConfigError;

/// A configuration is a few KiB; more than this is not one (`/dev/zero` must not exhaust
/// memory).
pub const MAX_CONFIG_LEN: u64 = 1 << 20;
/// A password or key is one short line.
pub const MAX_SECRET_LEN: u64 = 64 << 10;

/// Reads at most `cap` bytes; more is an error naming the cap.
fn read_capped(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    File::open(path)?.take(cap + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {} KiB", cap / 1024),
        ));
    }
    Ok(buf)
}

/// The config file's text, at most [`MAX_CONFIG_LEN`] bytes of UTF-8.
pub(super) fn config_text(path: &Path) -> Result<String, ConfigError> {
    let error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let bytes = read_capped(path, MAX_CONFIG_LEN).map_err(error)?;
    String::from_utf8(bytes)
        .map_err(|_| error(io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text")))
}

fn refuse(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why)
}

/// The first line of a secret file (secrets live in files, not in the config or on command
/// lines). `private`: refuse a file that group or others can access, naming its mode.
pub(crate) fn secret_first_line(path: &Path, private: bool) -> io::Result<String> {
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        return Err(refuse("is a directory, not a file".into()));
    }
    if !meta.is_file() {
        return Err(refuse("is not a regular file".into()));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if private && mode & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("mode {mode:04o} gives group or others access (chmod 600 it)"),
        ));
    }
    let bytes = read_capped(path, MAX_SECRET_LEN)?;
    let text = String::from_utf8(bytes).map_err(|_| refuse("is not UTF-8 text".into()))?;
    Ok(text.lines().next().unwrap_or("").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_must_be_regular_files_of_bounded_size() {
        let dir = tempfile::tempdir().unwrap();
        let e = secret_first_line(dir.path(), true).unwrap_err();
        assert_eq!(e.to_string(), "is a directory, not a file");
        let e = secret_first_line(Path::new("/dev/zero"), false).unwrap_err();
        assert_eq!(e.to_string(), "is not a regular file");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; MAX_SECRET_LEN as usize + 1]).unwrap();
        let e = secret_first_line(&big, false).unwrap_err();
        assert_eq!(e.to_string(), "larger than 64 KiB");
        let ok = dir.path().join("ok");
        std::fs::write(&ok, "key\nrest\n").unwrap();
        assert_eq!(secret_first_line(&ok, false).unwrap(), "key");
    }

    #[test]
    fn config_text_is_capped() {
        let e = config_text(Path::new("/dev/zero")).unwrap_err().to_string();
        assert_eq!(e, "/dev/zero: cannot read: larger than 1024 KiB");
    }
}
