//! `msgr`: ping a ceph-mon (or an msgr server), serve, and benchmark, over msgr v1.
//!
//! Every `ms_*` option is a flag (`--ms-inject-socket-failures 30`); `--log LEVEL` or RUST_LOG
//! set the log level.

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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in files and pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

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
