//! `msgr`: ping a ceph-mon (or an msgr server), serve, and benchmark, over msgr v1.
//!
//! Every `ms_*` option is a flag (`--ms-inject-socket-failures 30`); `--log LEVEL` or RUST_LOG
//! set the log level.

mod auth;
mod bench;
mod common;
mod ping;
mod serve;

use clap::{Arg, CommandFactory, FromArgMatches, Parser, Subcommand};
use msgr_actors::msgr::Config;

#[derive(Parser)]
#[command(
    name = "msgr",
    version,
    about = "Ceph msgr v1 messenger: ping, serve, bench"
)]
struct Cli {
    /// Log level (error, warn, info, debug, trace); RUST_LOG takes precedence.
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send MPing to a monitor (or msgr server) and print its status.
    Ping(ping::Args),
    /// Accept connections, answer pings and bench messages, log everything else.
    Serve(serve::Args),
    /// Load generator: stamped messages over C connections, with verification.
    Bench(bench::Args),
}

fn main() {
    let defaults = Config::default();
    let mut command = Cli::command();
    for name in Config::OPTION_NAMES {
        let help = format!(
            "{} (default {})",
            Config::describe(name).unwrap_or_default(),
            defaults.get(name).unwrap_or_default()
        );
        command = command.arg(
            Arg::new(*name)
                .long(name.replace('_', "-"))
                .global(true)
                .value_name("VALUE")
                .help(help),
        );
    }
    let matches = command.get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let sub = matches.subcommand().map(|(_, m)| m);
    let mut config = defaults;
    for name in Config::OPTION_NAMES {
        let value = sub
            .and_then(|m| m.get_one::<String>(name))
            .or_else(|| matches.get_one::<String>(name));
        if let Some(v) = value {
            if let Err(e) = config.set(name, v) {
                eprintln!("msgr: {e}");
                std::process::exit(2);
            }
        }
    }
    if let Err(e) = config.validate() {
        eprintln!("msgr: {e}");
        std::process::exit(2);
    }
    init_logging(&cli.log, &config);

    let result = actix::System::new().block_on(async move {
        match cli.cmd {
            Cmd::Ping(a) => ping::run(a, config).await,
            Cmd::Serve(a) => serve::run(a, config).await,
            Cmd::Bench(a) => bench::run(a, config).await,
        }
    });
    if let Err(e) = result {
        eprintln!("msgr: {e}");
        std::process::exit(1);
    }
}

/// Logs to stderr at `--log` (or RUST_LOG), through a reload layer whose handle becomes the
/// messenger's log level hook, so `debug_ms` (given as an option, or set later through the
/// admin socket) changes the messenger's level. A `debug_ms` other than the default applies
/// at once.
fn init_logging(level: &str, config: &Config) {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{fmt, reload, EnvFilter};
    let base = std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_string());
    let filter = EnvFilter::try_new(&base).unwrap_or_else(|_| EnvFilter::new("warn"));
    let (filter, handle) = reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(filter)
        .with(
            fmt::layer()
                .with_writer(std::io::stderr)
                // Colour codes only for a person at a terminal, not in files and pipes.
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .init();
    msgr_actors::set_log_level_hook(move |directive| {
        // The messenger's crates at the new level, everything else as started.
        let filter =
            EnvFilter::try_new(format!("{base},{directive}")).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())
    });
    if config.debug_ms != Config::default().debug_ms {
        if let Some(level) = config.debug_ms_level() {
            let _ = msgr_actors::apply_debug_ms(level);
        }
    }
}
