//! Command-line interface: the subcommands and their flags, and dispatch to the library.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::parse::Format;
use crate::parse::syslog::SyslogOptions;
use crate::replay::{Outputs, ReplayError, ReplayOptions, replay};

/// logwarden: collect, normalize and alert on security logs.
#[derive(Debug, Parser)]
#[command(name = "logwarden", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run log files through the pipeline offline and report what they contain.
    Replay(ReplayArgs),
    /// Write synthetic auth-log traffic (sshd-heavy RFC 3164) for load tests and demos.
    Generate(GenerateArgs),
    /// Validate rule files: every YAML, field, modifier, regex and condition error with its
    /// file:line:column, duplicate ids, and lint findings (unused selections, conditions that
    /// are always or never true). Exit status 1 when anything is found.
    Check(CheckArgs),
}

/// Flags of `logwarden check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Directory of rule files (`*.yml`, `*.yaml`; several documents per file).
    #[arg(long, default_value = "rules", value_name = "DIR")]
    pub rules: PathBuf,
}

/// Flags of `logwarden generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// How many lines to write.
    #[arg(long, default_value_t = 1_000_000)]
    pub lines: u64,
    /// Seed: the same seed writes the same log.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Input format choices for `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Detect per file: gzip, a JSON object or array, else syslog.
    Auto,
    /// RFC 3164 / RFC 5424 syslog lines.
    Syslog,
    /// AWS CloudTrail: `{"Records":[...]}`, a JSON array, or one record per line.
    Cloudtrail,
    /// ECS JSON events, one per line.
    Json,
}

/// Flags of `logwarden replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Print every normalized event as one ECS JSON line on standard output.
    #[arg(long)]
    pub events: bool,
    /// Input format.
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    pub format: FormatArg,
    /// IANA time zone of RFC 3164 timestamps, which carry none (e.g. Europe/Berlin).
    #[arg(long, default_value = "UTC", value_parser = parse_tz)]
    pub timezone: chrono_tz::Tz,
    /// Year of RFC 3164 timestamps, which carry none; default: from the clock, with December
    /// lines read in January taken as last year's.
    #[arg(long)]
    pub year: Option<i32>,
    /// Longest accepted line in bytes; longer lines are quarantined.
    #[arg(long, default_value_t = crate::parse::frame::DEFAULT_MAX_RECORD_BYTES)]
    pub max_line_bytes: usize,
    /// Write every quarantined record as a JSON line to this file.
    #[arg(long, value_name = "FILE")]
    pub dead_letter: Option<PathBuf>,
    /// Files to read (`-` for standard input); gzip is detected.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

fn parse_tz(s: &str) -> Result<chrono_tz::Tz, String> {
    s.parse()
        .map_err(|_| format!("unknown time zone `{s}` (use an IANA name such as Europe/Berlin)"))
}

/// Runs a parsed command line; the exit code says whether it worked.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Replay(args) => run_replay(args),
        Command::Check(args) => Ok(run_check(&args)),
        Command::Generate(args) => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            match crate::generate::write_syslog(&mut out, args.lines, args.seed)
                .and_then(|()| out.flush())
            {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(ExitCode::SUCCESS),
            }
        }
    }
}

fn run_check(args: &CheckArgs) -> ExitCode {
    let dir = args.rules.display();
    match crate::rule::load::load_dir(&args.rules) {
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("{}: {} error{}", dir, errors.len(), plural(errors.len()));
            ExitCode::FAILURE
        }
        Ok(rules) => {
            let mut findings = 0;
            for rule in &rules {
                for finding in crate::rule::load::lint(rule) {
                    eprintln!("{}: {finding}", rule.origin);
                    findings += 1;
                }
            }
            println!(
                "{dir}: {} rule{} loaded, {findings} lint finding{}",
                rules.len(),
                plural(rules.len()),
                plural(findings)
            );
            if findings > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn run_replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let opts = ReplayOptions {
        format: match args.format {
            FormatArg::Auto => None,
            FormatArg::Syslog => Some(Format::Syslog),
            FormatArg::Cloudtrail => Some(Format::CloudTrail),
            FormatArg::Json => Some(Format::Json),
        },
        syslog: SyslogOptions {
            timezone: args.timezone,
            year: args.year,
            now: Some(crate::event::Timestamp::now()),
        },
        max_record_bytes: args.max_line_bytes.max(1),
        progress: std::io::stderr().is_terminal() && std::io::stdout().is_terminal(),
        parallel: true,
    };
    // Stdout (not its lock) because the writer runs on another thread; writes are 256 KiB
    // chunks, so the per-write lock costs nothing.
    let mut stdout = std::io::stdout();
    let mut dead_file = match &args.dead_letter {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        )),
        None => None,
    };
    let mut outputs = Outputs {
        events: if args.events { Some(&mut stdout) } else { None },
        dead_letter: dead_file.as_mut().map(|f| f as &mut (dyn Write + Send)),
    };
    let result = replay(&args.files, &opts, &mut outputs);
    match result {
        Ok(ledgers) => {
            let mut err = std::io::stderr().lock();
            for l in &ledgers {
                let _ = writeln!(err, "{l}");
            }
            Ok(ExitCode::SUCCESS)
        }
        // `replay --events | head` closes the pipe early: that is the reader's choice, not a
        // failure.
        Err(ReplayError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e.into()),
    }
}
