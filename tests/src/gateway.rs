//! The `shopfloor` binary as a child process, with its config in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The binary of this workspace, built once per test run if it is not there yet.
pub fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // Another build to measure beside this one (a benchmark of the release before).
        if let Some(bin) = std::env::var_os("SHOPFLOOR_BIN") {
            return PathBuf::from(bin);
        }
        // Test executables live in target/<profile>/deps; the binary one level up.
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
        let bin = dir.join("shopfloor");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        // The same command as tests/run, so that this is a no-op there (same features).
        build.args(["build", "-q", "--workspace", "--bins"]);
        // Benchmarks run from target/release and measure the optimised gateway.
        if dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.status().expect("cannot run cargo build");
        assert!(status.success(), "building the shopfloor binary failed");
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    })
    .clone()
}

/// Polls `done` until it holds or `within` has passed; true when it held.
pub fn wait_until(within: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A running gateway; killed on drop.
#[derive(Debug)]
pub struct GatewayProcess {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
}

impl GatewayProcess {
    /// Writes `config` to a file and runs `shopfloor run -c` on it.
    pub fn start(config: &str) -> GatewayProcess {
        GatewayProcess::start_with_env(config, &[])
    }

    /// As [`GatewayProcess::start`], with extra environment variables.
    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> GatewayProcess {
        GatewayProcess::spawn(&["run"], config, env)
    }

    /// `shopfloor simulate -c CONFIG` with `extra` arguments.
    pub fn simulate(config: &str, extra: &[&str]) -> GatewayProcess {
        let mut args = vec!["simulate"];
        args.extend_from_slice(extra);
        GatewayProcess::spawn(&args, config, &[])
    }

    /// `shopfloor ARGS...` without a config file.
    pub fn bare(args: &[&str]) -> GatewayProcess {
        let dir = tempfile::tempdir().unwrap();
        GatewayProcess::launch(Command::new(binary()).args(args), dir)
    }

    /// What the process printed on stdout so far (for [`GatewayProcess::bare`]).
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default()
    }

    /// `shopfloor ARGS... -c CONFIG`, the config written to a temporary file.
    pub fn spawn(args: &[&str], config: &str, env: &[(&str, &str)]) -> GatewayProcess {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, config).unwrap();
        let mut command = Command::new(binary());
        command
            .args(args)
            .arg("-c")
            .arg(&path)
            .env("RUST_LOG", "debug")
            .envs(env.iter().copied());
        GatewayProcess::launch(&mut command, dir)
    }

    /// Starts `command` with its stdout and stderr in files of `dir`.
    fn launch(command: &mut Command, dir: tempfile::TempDir) -> GatewayProcess {
        let log = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
        let out = std::fs::File::create(dir.path().join("stdout.log")).unwrap();
        let child = command
            .stdout(out)
            .stderr(log)
            .spawn()
            .expect("cannot start shopfloor");
        GatewayProcess {
            child: Some(child),
            dir,
        }
    }

    /// Writes a new config file in place of the one it runs on.
    pub fn rewrite(&self, config: &str) {
        let path = self.dir.path().join("gateway.toml");
        // Written beside and renamed over it, as editors save: the reader never sees half.
        let new = self.dir.path().join("gateway.toml.new");
        std::fs::write(&new, config).unwrap();
        std::fs::rename(&new, &path).unwrap();
    }

    /// Sends SIGHUP: read the config file again.
    pub fn hangup(&self) {
        self.send(libc::SIGHUP);
    }

    /// Sends signal `number` to the running process.
    fn send(&self, number: libc::c_int) {
        let child = self.child.as_ref().expect("already stopped");
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) on our own child's pid; it has not been reaped, so the pid is its own.
        unsafe { libc::kill(pid, number) };
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What the gateway logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }

    /// Waits up to `within` for a log line containing `needle`.
    pub fn wait_for_log(&self, needle: &str, within: Duration) -> bool {
        wait_until(within, || self.log().contains(needle))
    }

    /// Waits up to `within` for a log line containing `needle`; fails the test with the log
    /// if none comes.
    pub fn expect_log(&self, needle: &str, within: Duration) {
        assert!(
            self.wait_for_log(needle, within),
            "no {needle:?} in the log within {within:?}:\n{}",
            self.log()
        );
    }

    /// Waits up to `within` for the structured log event `name` (a line with the field
    /// `event="name"`, which the gateway keeps stable whatever its message says); fails the
    /// test with the log if none comes.
    pub fn expect_event(&self, name: &str, within: Duration) {
        let field = format!("event=\"{name}\"");
        assert!(
            wait_until(within, || self.log().contains(&field)),
            "no event {name:?} in the log within {within:?}:\n{}",
            self.log()
        );
    }

    /// Waits until event `name` has been logged `times` times (a second reload, ...).
    pub fn expect_events(&self, name: &str, times: usize, within: Duration) {
        let field = format!("event=\"{name}\"");
        assert!(
            wait_until(within, || self.log().matches(&field).count() >= times),
            "event {name:?} not {times} times in the log within {within:?}:\n{}",
            self.log()
        );
    }

    /// As [`GatewayProcess::expect_event`], for the event of one sink (`sink="..."` follows
    /// `event` on the line).
    pub fn expect_sink_event(&self, name: &str, sink: &str, within: Duration) {
        let fields = format!("event=\"{name}\" sink=\"{sink}\"");
        assert!(
            wait_until(within, || self.log().contains(&fields)),
            "no event {name:?} of sink {sink} in the log within {within:?}:\n{}",
            self.log()
        );
    }

    /// `shopfloor demo` with `extra` arguments on free ports for its broker and HTTP server,
    /// once its banner is out: (the process, the broker's port, the HTTP address). Started
    /// again, three times at most, when a port picked for it was taken meanwhile (the demo's
    /// own simulated machines bind ports the system picks, and `free_port` can only say a
    /// port was free a moment ago).
    pub fn demo_on_free_ports(extra: &[&str], within: Duration) -> (GatewayProcess, u16, String) {
        for _ in 0..3 {
            let port = crate::free_port();
            let http = format!("127.0.0.1:{}", crate::free_port());
            let p = port.to_string();
            let mut args = vec!["demo", "--mqtt-port", &p, "--http", &http];
            args.extend_from_slice(extra);
            let mut demo = GatewayProcess::bare(&args);
            let ready = wait_until(within, || {
                demo.stdout().contains("Ctrl-C stops everything")
                    || demo.log().contains("Address already in use")
            });
            if ready && demo.stdout().contains("Ctrl-C stops everything") {
                return (demo, port, http);
            }
            assert!(
                demo.log().contains("Address already in use"),
                "the demo did not start within {within:?}:\n{}",
                demo.log()
            );
            demo.kill();
        }
        panic!("the demo found a port taken three times in a row");
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits up to `within` for stdout to contain `needle`.
    pub fn wait_for_stdout(&self, needle: &str, within: Duration) -> bool {
        wait_until(within, || self.stdout().contains(needle))
    }

    /// SIGKILL: the process gets no chance to flush anything, as in a crash or power cut.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits up to `within` for the exit status.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        self.signal("-TERM", within)
    }

    /// Sends SIGINT (Ctrl-C) and waits up to `within` for the exit status.
    pub fn interrupt(&mut self, within: Duration) -> ExitStatus {
        self.signal("-INT", within)
    }

    fn signal(&mut self, signal: &str, within: Duration) -> ExitStatus {
        let number = if signal == "-INT" {
            libc::SIGINT
        } else {
            libc::SIGTERM
        };
        self.send(number);
        let child = self.child.as_mut().expect("already stopped");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running {within:?} after {signal}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `shopfloor` with `args` to the end and returns (exit code, stdout, stderr).
pub fn run_to_end(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
