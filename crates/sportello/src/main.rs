//! `sportello`: the case desk's single binary (CONTRACT §4).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod app;
mod backup;
mod citizen;
mod daily_register;
mod demo;
mod duties;
mod import_redmine;
mod ingest;
mod outbound;
mod retention;
mod scan_watch;
mod serve;
mod startup;
mod users;
mod ztl;

/// Exit status for bad usage or configuration (CONTRACT §4).
const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "sportello",
    version,
    about = "Case desk for a city permit office (ZTL permits, CUDE)"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
struct GlobalArgs {
    /// Configuration file (default: none; every key has a default).
    #[arg(long, global = true, env = "SPORTELLO_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data folder, overriding `data_dir`.
    #[arg(long = "data", global = true, value_name = "DIR")]
    data: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// HTTP server (API) plus background workers.
    Serve {
        /// Seed a believable demo office and print two logins.
        #[arg(long)]
        demo: bool,
        /// Address to listen on, overriding `listen`.
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Ingests .eml files and maildir folders, in the order given, as if from a mailbox.
    Ingest {
        /// The configured [[mailbox]] they count as coming from (default: e-mail, ztl_permit).
        #[arg(long, value_name = "NAME")]
        mailbox: Option<String>,
        /// Files and folders.
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Users of the back office and the API.
    #[command(subcommand)]
    User(users::UserCommand),
    /// API tokens.
    #[command(subcommand)]
    Token(users::TokenCommand),
    /// The protocol register.
    #[command(subcommand)]
    Register(RegisterCommand),
    /// Stored documents.
    #[command(subcommand)]
    Documents(DocumentsCommand),
    /// The audit of reads.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The ZTL policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The permit register.
    #[command(subcommand)]
    Permits(PermitsCommand),
    /// The whitelist of the gate cameras.
    #[command(subcommand)]
    Whitelist(WhitelistCommand),
    /// Gate transits.
    #[command(subcommand)]
    Transits(TransitsCommand),
    /// Messages to citizens.
    #[command(subcommand)]
    Outbound(OutboundCommand),
    /// Consistent online backup of the database and every document, with a SHA-256 manifest.
    Backup {
        /// A new or empty folder.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Restores a backup into an empty data folder and database (checked against its manifest first).
    Restore {
        /// The backup folder.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// The citizen's data rights: export and anonymisation (GDPR art. 15, 17).
    #[command(subcommand)]
    Citizen(citizen::CitizenCommand),
    /// Retention of closed cases' documents and personal data (`[retention]`).
    #[command(subcommand)]
    Retention(retention::RetentionCommand),
    /// Takes over another system's records (Redmine).
    #[command(subcommand)]
    Import(import_redmine::ImportCommand),
}

#[derive(Debug, Subcommand)]
enum OutboundCommand {
    /// Sends the queued messages (progress, then a summary); a kill loses nothing.
    Send {
        /// Keep running and send what gets queued, until SIGINT/SIGTERM (for `outbound.sender = false`).
        #[arg(long)]
        watch: bool,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validates a policy draft (exit 2 naming line and field) and says what it would change.
    Check {
        /// The draft (TOML, CONTRACT §6.1).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum PermitsCommand {
    /// Loads an existing permit register (CSV, CONTRACT §6.2); idempotent; exit 3 listing refused lines.
    Import {
        /// The register.
        #[arg(value_name = "FILE.csv")]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum WhitelistCommand {
    /// The plates allowed at an instant (CONTRACT §6.3).
    Export {
        /// The instant (RFC 3339, or a date meaning its local midnight); default now.
        #[arg(long, value_name = "T")]
        at: Option<String>,
        /// Only what changed since this instant: rows `added` and `removed` (first column `change`).
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// csv or json.
        #[arg(long, default_value = "csv")]
        format: String,
        /// Output file; standard output when absent.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum TransitsCommand {
    /// Reads gate transits (CONTRACT §6.4) and writes the violations (§6.5); exit 3 listing refused lines.
    Check {
        /// The transits.
        #[arg(value_name = "FILE.csv")]
        file: PathBuf,
        /// Output file; standard output when absent.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum RegisterCommand {
    /// Re-checks the hash chain of the whole register; exit 1 and the first bad entry if broken.
    Verify,
    /// Writes the daily register of a day (CSV or PDF by the file's extension) with its SHA-256.
    Daily {
        /// The day, YYYY-MM-DD (Europe/Rome).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: String,
        /// Output file (.csv or .pdf); CSV on standard output when absent.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Re-checks the hash chain of the audit of reads; exit 1 and the first bad entry if broken.
    Verify,
}

#[derive(Debug, Subcommand)]
enum DocumentsCommand {
    /// Re-hashes every stored document; exit 1 listing any missing or altered.
    Verify,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Prints a commented example configuration.
    Example,
    /// Validates the configuration and prints the effective values (secrets hidden).
    Check,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    app::init_tracing();
    startup::private_files();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    if let Command::Config(ConfigCommand::Example) = cli.command {
        print!("{}", sportello_config::EXAMPLE);
        return ExitCode::SUCCESS;
    }
    let config = match app::load_config(&cli.global.config, &cli.global.data) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let result = match cli.command {
        Command::Serve { demo, listen } => serve::run(config, demo, listen).await,
        Command::Ingest { mailbox, paths } => {
            ingest::run(&config, mailbox.as_deref(), &paths).await
        }
        Command::User(command) => users::user(&config, command).await,
        Command::Token(command) => users::token(&config, command).await,
        Command::Register(RegisterCommand::Verify) => app::register_verify(&config).await,
        Command::Register(RegisterCommand::Daily { date, output }) => {
            daily_register::run(&config, &date, output.as_deref()).await
        }
        Command::Documents(DocumentsCommand::Verify) => app::documents_verify(&config).await,
        Command::Audit(AuditCommand::Verify) => app::audit_verify(&config).await,
        Command::Config(ConfigCommand::Check) => config
            .effective_toml()
            .map(|printed| {
                print!("{printed}");
                ExitCode::SUCCESS
            })
            .map_err(anyhow::Error::from),
        Command::Config(ConfigCommand::Example) => Ok(ExitCode::SUCCESS),
        Command::Policy(PolicyCommand::Check { file }) => ztl::policy_check(&config, &file).await,
        Command::Permits(PermitsCommand::Import { file }) => {
            ztl::permits_import(&config, &file).await
        }
        Command::Whitelist(WhitelistCommand::Export {
            at,
            since,
            format,
            output,
        }) => {
            ztl::whitelist_export(
                &config,
                (at.as_deref(), since.as_deref()),
                &format,
                output.as_deref(),
            )
            .await
        }
        Command::Transits(TransitsCommand::Check { file, output }) => {
            ztl::transits_check(&config, &file, output.as_deref()).await
        }
        Command::Outbound(OutboundCommand::Send { watch }) => outbound::send(&config, watch).await,
        Command::Backup { dir } => backup::backup(&config, &dir).await,
        Command::Restore { dir } => backup::restore(&config, &dir).await,
        Command::Citizen(command) => citizen::run(&config, command).await,
        Command::Retention(command) => retention::run(&config, command).await,
        Command::Import(command) => import_redmine::run(&config, command).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if let Some(usage) = e.downcast_ref::<app::UsageError>() {
                eprintln!("error: {usage}");
                return ExitCode::from(EXIT_USAGE);
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
