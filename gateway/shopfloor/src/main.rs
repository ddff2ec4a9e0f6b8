//! The `shopfloor` binary: parses the command line, sets up logging, and maps outcomes to the
//! exit codes of the contract (0 ok, 1 failure at run time, 2 bad usage or bad config).

use anyhow::Context as _;
use clap::Parser;
use shopfloor::cli::{Cli, Command, check_report};
use shopfloor::config::Config;
use shopfloor::runtime::Gateway;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn init_logging(verbose: u8) {
    // The embedded broker of `demo` logs routine disconnects as errors, and the OPC UA library
    // every retry the driver already reports in its own words: quiet unless asked.
    let default = match verbose {
        0 => "info,rumqttd=off,opcua_client=off,opcua_server=off,opcua_core=off,opcua_crypto=off",
        1 => {
            "debug,rumqttd=warn,opcua_client=warn,opcua_server=warn,opcua_core=warn,opcua_crypto=warn"
        }
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|errors| {
        eprintln!("{errors}");
        ExitCode::from(2)
    })
}

async fn wait_for_stop() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}

async fn simulate(config: Config, seed: u64, speedup: f64) -> anyhow::Result<()> {
    let sim = shopfloor::simulate::Simulation::start(
        &config,
        seed,
        speedup,
        shopfloor::simulate::Ports::AsConfigured,
    )
    .await?;
    for m in &sim.machines {
        println!("simulating {} ({}) on {}", m.id, m.kind, m.url());
    }
    println!("seed {seed}, speed-up {speedup}x; Ctrl-C stops");
    wait_for_stop().await?;
    sim.stop().await;
    Ok(())
}

async fn demo(options: shopfloor::demo::DemoOptions) -> anyhow::Result<()> {
    let mut demo = shopfloor::demo::Demo::start(&options).await?;
    print!("{}", demo.banner());
    let failed = tokio::select! {
        r = wait_for_stop() => { r?; None }
        p = demo.failed() => Some(p),
    };
    tracing::info!("stopping");
    demo.stop().await;
    crashed(failed)
}

/// Hands the memory that parsing a large config took (the TOML tree with its spans) back to
/// the system: glibc keeps freed heap for reuse, which would stay in the gateway's RSS for good.
fn release_startup_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap pages; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

async fn run(config: Config, watch: bool) -> anyhow::Result<()> {
    let mut requests = shopfloor::reload::Requests::start(&config.path, watch)?;
    let mut gateway = Gateway::start(&config).context("starting the gateway")?;
    // The parsed file's tree is not needed any more (the config itself is kept, to compare
    // the next file with).
    release_startup_memory();
    if watch {
        tracing::info!(file = %config.path.display(), "watching the config file");
    }
    let mut running = config;
    let failed = loop {
        tokio::select! {
            r = wait_for_stop() => { r?; break None }
            p = gateway.failed() => break Some(p),
            () = requests.next() => gateway = reload(gateway, &mut running).await?,
        }
    };
    tracing::info!("stopping");
    gateway.stop().await;
    crashed(failed)
}

/// Reads the config file again and takes it, or says why not; the gateway that runs after.
async fn reload(mut gateway: Gateway, running: &mut Config) -> anyhow::Result<Gateway> {
    use shopfloor::reload::{RELOADS, in_place, plan};
    use std::sync::atomic::Ordering::Relaxed;
    let new = match Config::load(&running.path) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                tracing::warn!(event = "config_invalid", "config not reloaded: {e}");
            }
            RELOADS.invalid.fetch_add(1, Relaxed);
            return Ok(gateway);
        }
    };
    let p = plan(running, &new);
    if !p.restart_needed.is_empty() {
        tracing::error!(
            event = "config_restart_needed",
            "config not reloaded: {} change only with a restart of shopfloor \
             (systemctl restart shopfloor); nothing changed",
            p.restart_needed.join(" and ")
        );
        RELOADS.restart_needed.fetch_add(1, Relaxed);
        return Ok(gateway);
    }
    if p.is_empty() {
        reloaded("nothing changed", running, new);
        return Ok(gateway);
    }
    if in_place(running, &new, &p) {
        match gateway.apply(running, &new, &p).await {
            Ok(()) => reloaded(&p.summary(), running, new),
            // What could start runs on the new file; a sink that could not runs on its
            // section before.
            Err(e) => not_started(&e, "the new config could not start in full"),
        }
        return Ok(gateway);
    }
    gateway.stop().await;
    match Gateway::start(&new) {
        Ok(g) => {
            reloaded(&p.summary(), running, new);
            Ok(g)
        }
        Err(e) => {
            not_started(
                &e,
                "the new config could not start; running the one before again",
            );
            Gateway::start(running).context("starting the gateway again on the config before")
        }
    }
}

/// A reload was taken: counted, the one line logged, `new` the file running now.
fn reloaded(summary: &str, running: &mut Config, new: Config) {
    shopfloor::reload::RELOADS
        .applied
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(event = "config_reloaded", "config reloaded: {summary}");
    *running = new;
}

/// A valid file could not start (in full): counted and logged with why.
fn not_started(e: &shopfloor::runtime::StartError, what: &str) {
    shopfloor::reload::RELOADS
        .not_started
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::error!(event = "config_not_started", error = %e, "{what}");
}

/// A part of the gateway that panicked is exit code 1, after the rest stopped cleanly (the
/// spool keeps what was not delivered), so that a supervisor restarts the whole.
fn crashed(failed: Option<shopfloor::tasks::TaskPanic>) -> anyhow::Result<()> {
    match failed {
        None => Ok(()),
        Some(p) => Err(anyhow::anyhow!(
            "{p}; this is a bug in shopfloor, please report it with the log above"
        )),
    }
}

/// Runs `job` on a multi-threaded runtime; a failure is exit code 1 with its message.
fn block_on(job: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(job) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match cli.command {
        Command::Demo {
            mqtt_port,
            seed,
            speedup,
            http,
            influx,
        } => block_on(demo(shopfloor::demo::DemoOptions {
            mqtt_port,
            seed,
            speedup,
            http,
            influx,
        })),
        Command::Scan {
            target,
            unit,
            units,
            area,
            range,
            timeout_ms,
        } => {
            use shopfloor::scan::{
                ScanRequest, parse_range, parse_target, parse_units, scan, scan_units,
            };
            let area = match area.as_str() {
                "holding" => shopfloor_modbus::Area::Holding,
                "input" => shopfloor_modbus::Area::Input,
                "coil" => shopfloor_modbus::Area::Coil,
                "discrete" => shopfloor_modbus::Area::Discrete,
                other => {
                    eprintln!("error: --area {other:?}: use holding, input, coil or discrete");
                    return ExitCode::from(2);
                }
            };
            let parsed = parse_target(&target).and_then(|l| {
                let units = units.as_deref().map(parse_units).transpose()?;
                Ok((l, parse_range(&range)?, units))
            });
            let (link, (start, count), units) = match parsed {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let default_ms = if units.is_some() { 200 } else { 1000 };
            let timeout = std::time::Duration::from_millis(timeout_ms.unwrap_or(default_ms));
            if let Some(units) = units {
                return block_on(async move {
                    print!("{}", scan_units(&link, units, area, start, timeout).await?);
                    Ok(())
                });
            }
            let req = ScanRequest {
                link,
                unit,
                area,
                start,
                count,
            };
            block_on(async move {
                print!("{}", scan(&req, timeout).await?);
                Ok(())
            })
        }
        Command::Browse {
            endpoint,
            depth,
            root,
            toml,
            timeout_ms,
        } => {
            use shopfloor_opcua::browse::{BrowseRequest, browse, render_toml, render_tree};
            if !endpoint.starts_with("opc.tcp://") {
                eprintln!("error: {endpoint:?}: write opc.tcp://HOST:PORT");
                return ExitCode::from(2);
            }
            let root = match root
                .as_deref()
                .map(shopfloor_opcua::NodeRef::parse)
                .transpose()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: --root {e}");
                    return ExitCode::from(2);
                }
            };
            let req = BrowseRequest {
                endpoint,
                root,
                depth,
                timeout: std::time::Duration::from_millis(timeout_ms),
            };
            block_on(async move {
                let (nodes, namespaces) = browse(&req).await?;
                if toml {
                    print!("{}", render_toml(&nodes, &namespaces));
                } else {
                    print!("{}", render_tree(&nodes));
                }
                Ok(())
            })
        }
        Command::Check { config, plan } => match load(&config) {
            Ok(c) => {
                print!("{}", check_report(&c, plan));
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run { config, watch } => match load(&config) {
            Ok(c) => block_on(run(c, watch)),
            Err(code) => code,
        },
        Command::Simulate {
            config,
            seed,
            speedup,
        } => match load(&config) {
            Ok(c) => block_on(simulate(c, seed, speedup)),
            Err(code) => code,
        },
    }
}
