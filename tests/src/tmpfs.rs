//! A small tmpfs that a test can fill up: a real full disk, without filling the machine's.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

/// A tmpfs mounted on a fresh temporary directory; unmounted on drop.
#[derive(Debug)]
pub struct Tmpfs {
    dir: TempDir,
}

/// Runs a mount command as root: directly when the tests run as root, else through
/// `sudo -n` (as `tests/run` installs packages).
fn as_root(args: &[&str]) -> std::process::Output {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root {
        Command::new(args[0])
    } else {
        let mut c = Command::new("sudo");
        c.arg("-n").arg(args[0]);
        c
    };
    cmd.args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

impl Tmpfs {
    /// Mounts a tmpfs of `kib` KiB.
    pub fn mount(kib: u64) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap().to_owned();
        let size = format!("size={kib}k");
        let out = as_root(&["mount", "-t", "tmpfs", "-o", &size, "tmpfs", &path]);
        assert!(
            out.status.success(),
            "cannot mount a tmpfs (needs root or passwordless sudo): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills every free byte with the file `name`; returns its path (remove it to free the disk).
    pub fn fill(&self, name: &str) -> PathBuf {
        let path = self.path().join(name);
        let mut file = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 4096];
        let mut written = 0usize;
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(n) => written += n,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        assert!(written > 0, "the tmpfs was full already");
        // The tail of a block may still fit a few bytes at a time.
        while let Ok(n) = file.write(&block[..64]) {
            if n == 0 {
                break;
            }
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let path = self.dir.path().to_str().unwrap_or_default().to_owned();
        // Lazily, so that a gateway still holding a file open cannot keep it mounted.
        let _ = as_root(&["umount", "-l", &path]);
    }
}
