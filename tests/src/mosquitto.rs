//! A private mosquitto on a free port, with its config and data in a temporary directory.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running mosquitto; killed on drop.
#[derive(Debug)]
pub struct Mosquitto {
    pub port: u16,
    /// The TLS listener's port, when started with [`Mosquitto::start_tls`].
    pub tls_port: Option<u16>,
    child: Option<Child>,
    dir: tempfile::TempDir,
    extra: String,
}

fn binary() -> PathBuf {
    for p in [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ] {
        if std::path::Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("mosquitto is not installed: run the README's test command, which installs it");
}

impl Mosquitto {
    /// Starts a broker on a free port and waits until it accepts connections.
    pub fn start() -> Mosquitto {
        Self::start_with("")
    }

    /// A broker tuned for latency: `set_tcp_nodelay true`, so that small messages to its
    /// subscribers are not held back by Nagle's algorithm (up to 40 ms with delayed ACKs).
    pub fn start_low_latency() -> Mosquitto {
        Self::start_with("set_tcp_nodelay true\n")
    }

    /// A broker with `extra` lines added to its configuration (later lines win).
    pub fn start_with(extra: &str) -> Mosquitto {
        Self::launch(tempfile::tempdir().unwrap(), None, extra.into())
    }

    /// A broker that keeps its sessions and retained messages in its directory across a
    /// [`Mosquitto::stop_gracefully`] and [`Mosquitto::restart`], as an installed one does.
    pub fn start_persistent() -> Mosquitto {
        Self::start_persistent_with("")
    }

    /// As [`Mosquitto::start_persistent`], with `extra` configuration lines.
    pub fn start_persistent_with(extra: &str) -> Mosquitto {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // mosquitto started as root writes its state after dropping to its own user.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let extra = format!(
            "persistence true\npersistence_location {}/\n{extra}",
            dir.path().display()
        );
        Self::launch(dir, None, extra)
    }

    /// The file a persistent broker saves its state to.
    pub fn persistence_file(&self) -> PathBuf {
        self.dir.path().join("mosquitto.db")
    }

    /// A broker with an anonymous plain listener on `port` and a TLS listener on `tls_port`
    /// that requires a client certificate signed by `pki`'s CA and the password `password` for
    /// user `user`.
    pub fn start_tls(pki: &crate::pki::Pki, user: &str, password: &str) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        // mosquitto started as root reads its files after dropping to its own user.
        crate::pki::readable_by_all(dir.path());
        let passwd = dir.path().join("passwd");
        let status = Command::new("mosquitto_passwd")
            .args(["-b", "-c"])
            .arg(&passwd)
            .args([user, password])
            .status()
            .expect("mosquitto_passwd missing");
        assert!(status.success());
        crate::pki::readable_by_all(&passwd);
        let tls_port = crate::free_port();
        let extra = format!(
            "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\
             require_certificate true\nallow_anonymous false\npassword_file {}\n",
            pki.ca.display(),
            pki.server_cert.display(),
            pki.server_key.display(),
            passwd.display()
        );
        Self::launch(dir, Some(tls_port), extra)
    }

    /// A broker on a free port with its files in `dir`, started and ready.
    fn launch(dir: tempfile::TempDir, tls_port: Option<u16>, extra: String) -> Mosquitto {
        let mut m = Mosquitto {
            port: crate::free_port(),
            tls_port,
            child: None,
            dir,
            extra,
        };
        m.spawn();
        m
    }

    /// The broker URL for configs.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let conf = self.dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "per_listener_settings true\npersistence false\nmax_queued_messages 100000\n\
                 log_dest stderr\nlistener {} 127.0.0.1\nallow_anonymous true\n{}",
                self.port, self.extra
            ),
        )
        .unwrap();
        let log = std::fs::File::create(self.dir.path().join("mosquitto.log")).unwrap();
        let child = Command::new(binary())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start mosquitto");
        self.child = Some(child);
        // Ready when *this* broker says so: something else answering on the port proves nothing.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("mosquitto exited ({status}): {}", self.log());
            }
            let log = self.log();
            if log.contains(" running") {
                break;
            }
            if Instant::now() > deadline {
                panic!("mosquitto did not start: {log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for port in std::iter::once(self.port).chain(self.tls_port) {
            assert!(
                TcpStream::connect(("127.0.0.1", port)).is_ok(),
                "mosquitto runs but does not answer on {port}: {}",
                self.log()
            );
        }
    }

    /// What the broker logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Stops the broker (its sessions and retained messages are gone: no persistence).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the broker the way a service manager does (SIGTERM): a persistent one saves its
    /// state first.
    pub fn stop_gracefully(&mut self) {
        if let Some(mut c) = self.child.take() {
            if let Ok(pid) = i32::try_from(c.id()) {
                // SAFETY: kill(2) with a pid of our own child and a valid signal number.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}
