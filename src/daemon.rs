//! `logwarden run`: the live pipeline. Sources (async tasks) -> a bounded channel -> the
//! detection thread (parse, rules, router, outbox) -> sink tasks; the HTTP API beside them.
//!
//! Shutdown (SIGTERM, SIGINT) runs in order, so nothing held is lost: the sources stop and
//! drop their senders; the detection thread drains what is queued, sends the router's pending
//! groups to the outbox and returns; the sinks get a bounded time to deliver what is queued,
//! then finish the attempt in flight; what is left stays in the outbox for the next start.

pub mod api;
pub mod detect;
pub mod forward;
pub mod metrics;
pub mod parse;
pub mod scan;
pub mod silence;
pub mod token;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use self::detect::{Control, Detect, Msg, ReloadFrom, Stage};
use self::forward::ForwardLoop;
use self::metrics::Metrics;
use self::parse::ParseStage;
use crate::config::Config;
use crate::event::Sym;
use crate::parse::Format;
use crate::parse::auto::AutoParser;
use crate::parse::cloudtrail::CloudTrailParser;
use crate::parse::json::JsonParser;
use crate::parse::syslog::{SyslogOptions, SyslogParser};
use crate::route::dispatch::Dispatcher;
use crate::route::router::Router;
use crate::rule::Rule;
use crate::rule::behaviour::Services;
use crate::rule::engine::Engine;
use crate::rule::set::RuleSet;
use crate::sink::Sink;
use crate::sink::outbox::{Outbox, SystemClock, deliver};
use crate::source::syslog::{TcpOptions, run_tcp, run_udp};
use crate::source::tail::Tail;
use crate::source::{Batch, SourceConfig, SourceCounters};
use crate::state::checkpoint::Checkpoints;
use crate::state::silences::SilenceStore;

/// Batches queued between the sources and the detection thread: with up to 512 records a
/// batch this bounds the queue to a few tens of MiB, and a full queue slows TCP senders.
const QUEUE: usize = 64;
/// How long the sinks get, at shutdown, to deliver what is queued before they stop.
const DRAIN: Duration = Duration::from_secs(5);
/// Largest request body the API takes.
const API_MAX_BODY_BYTES: usize = 256 * 1024;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A listener could not bind.
    #[error("source `{source_name}`: cannot listen on {addr}")]
    Bind {
        /// The source.
        source_name: String,
        /// The address.
        addr: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A TLS listener's certificate or key could not be used.
    #[error("source `{source_name}`")]
    Tls {
        /// The source.
        source_name: String,
        /// What is wrong.
        #[source]
        source: crate::source::syslog::TlsError,
    },
    /// A file source's config is unusable.
    #[error("source `{source_name}`")]
    File {
        /// The source.
        source_name: String,
        /// What is wrong.
        #[source]
        source: crate::source::tail::TailError,
    },
    /// A `nats` source in a build without the `nats` feature.
    #[error("source `{source_name}`: this logwarden was built without the `nats` feature")]
    NoNats {
        /// The source.
        source_name: String,
    },
    /// The forwarder could not start (its buffer in the state database).
    #[error(transparent)]
    Forward(#[from] crate::forward::ForwardError),
    /// An event output could not be opened.
    #[error(transparent)]
    Output {
        /// What is wrong.
        source: crate::output::OutputError,
    },
    /// The API could not bind.
    #[error("api: cannot listen on {addr}")]
    Api {
        /// The address.
        addr: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The async runtime or a thread could not start.
    #[error("cannot start the runtime")]
    Runtime(#[source] std::io::Error),
    /// The state database could not be opened.
    #[error(transparent)]
    Outbox(#[from] crate::sink::outbox::OutboxError),
    /// A sink could not be built.
    #[error(transparent)]
    Sink(#[from] crate::sink::SinkError),
    /// The state database could not be opened or read.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// The daemon stopped while the state database could not be written.
    #[error("{0}")]
    Unsaved(String),
    /// The API's own token (no `api.token` configured) could not be made or read.
    #[error(transparent)]
    Token(#[from] token::TokenError),
}

/// Makes glibc's malloc give large blocks back to the system when they are freed. By default
/// its threshold for mapping a block on its own rises to the largest block freed (up to
/// 32 MiB), so after the first big state snapshot is written and freed, later ones come from
/// the heap and their pages stay with the process: a long-running daemon's RSS then counts
/// its largest snapshot for ever. A fixed threshold turns that adjustment off.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_frees_to_the_os() {
    // SAFETY: mallopt only sets allocator parameters; called before the runtime's threads
    // start, so no allocation races it.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_frees_to_the_os() {}

/// Returns the heap's free pages to the system (glibc keeps freed small blocks for reuse, and
/// a full state snapshot frees many: tens of MB at a million groups). Takes a few
/// milliseconds; called after rare, large writes only.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn give_back_free_memory() {
    // SAFETY: malloc_trim only releases memory the allocator holds free; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn give_back_free_memory() {}

/// Raises the soft limit of open files to the hard one, as Go's runtime does: the default
/// soft limit (1024) is below what the listeners' connection caps add up to, and running out
/// makes every listener's `accept` fail. Returns the limit in force.
fn raise_open_files_limit() -> Option<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    Some(lim.rlim_cur)
}

/// The connections `config`'s listeners may hold together at their caps.
fn connection_caps(config: &Config) -> u64 {
    let sources: usize = config
        .spec
        .sources
        .values()
        .map(|s| match &s.value {
            SourceConfig::SyslogTcp(t) => t.max_connections.unwrap_or(1024),
            SourceConfig::Http(h) => h.limits(None).max_connections,
            _ => 0,
        })
        .sum();
    let api = config.spec.api.as_ref().map_or(0, |a| a.limits().max_connections);
    (sources + api) as u64
}

/// Runs the daemon until SIGTERM or SIGINT; `rules` are loaded and checked already (from
/// `rules_dir` when given, else the config's `rules:`; a reload reads the same place).
pub fn run(
    config: &Config,
    rules: Vec<Rule>,
    services: Services,
    rules_dir: Option<std::path::PathBuf>,
) -> Result<(), DaemonError> {
    return_large_frees_to_the_os();
    // Room for the state file, outputs, sinks' sockets and the runtime beside the listeners.
    let wanted = connection_caps(config) + 256;
    if let Some(limit) = raise_open_files_limit()
        && limit < wanted
    {
        eprintln!(
            "logwarden: the open-file limit is {limit}, below the {wanted} the listeners' \
             max_connections need: a flood can exhaust it (raise LimitNOFILE or lower the caps)"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("logwarden")
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
    let mut router_config = config.router.clone();
    for r in &rules {
        if let Some(d) = r.dedup {
            router_config.dedup.insert(r.id.clone(), d);
        }
    }
    let (db, opened) = crate::state::StateDb::open_checked(&config.state)?;
    match opened {
        crate::state::db::Opened::Created => eprintln!(
            "logwarden: state database {} did not exist: created it; file sources start as \
             their `read_from` says",
            config.state.display()
        ),
        crate::state::db::Opened::Repaired => eprintln!(
            "logwarden: state database {} failed its integrity check and was repaired to its \
             last consistent commit; what came after it is read and routed again",
            config.state.display()
        ),
        crate::state::db::Opened::Existing => {}
    }
    let outbox = Arc::new(Outbox::with_database(Arc::clone(&db), config.state.clone())?);
    let silences = SilenceStore::new(Arc::clone(&db), config.state.clone())?;
    let checkpoints = Checkpoints::new(Arc::clone(&db), config.state.clone())?;
    let committed = checkpoints.all()?;
    let (checkpoint_paths, checkpoint_heads) = checkpoints.history()?;
    let forwarder =
        match (&config.spec.forward, config.spec.mode) {
            (Some(f), crate::config::Mode::Forward) => Some(Arc::new(
                crate::forward::Forwarder::new(&f.value, Arc::clone(&db), config.state.clone())?,
            )),
            _ => None,
        };
    let mut sinks: HashMap<String, Arc<dyn Sink>> = HashMap::new();
    for (name, cfg) in &config.spec.sinks {
        sinks.insert(name.clone(), crate::sink::build(name, &cfg.value)?);
    }
    let sink_names: Vec<String> = sinks.keys().cloned().collect();

    let (stop_sources, sources_stopped) = watch::channel(false);
    let (tx, rx) = mpsc::channel::<Msg>(QUEUE);
    let timezone = config
        .spec
        .syslog
        .as_ref()
        .and_then(|s| s.timezone.as_deref())
        .and_then(|t| t.parse().ok())
        .unwrap_or(chrono_tz::Tz::UTC);
    let syslog = SyslogOptions { timezone, ..SyslogOptions::default() };

    let counters: Vec<(String, Arc<SourceCounters>)> = config
        .spec
        .sources
        .keys()
        .map(|n| (n.clone(), Arc::new(SourceCounters::default())))
        .collect();
    let metrics = Arc::new(Metrics::new(counters.clone(), Arc::clone(&outbox)));
    let pushback = Arc::new(crate::source::pushback::Pushback::default());
    let policies: Vec<Rule> =
        rules.iter().filter(|r| r.kind == crate::rule::RuleKind::Policy).cloned().collect();
    let rules: Vec<Rule> =
        rules.into_iter().filter(|r| r.kind == crate::rule::RuleKind::Rule).collect();
    let engine =
        (!rules.is_empty()).then(|| Engine::new(Arc::new(RuleSet::new(rules)), &services, false));
    let (rules_tx, rules_rx) = watch::channel(engine.as_ref().map(|e| Arc::clone(e.set())));

    // Sources: bound first, so a port in use is an error at start, not a silent gap.
    let mut source_tasks = tokio::task::JoinSet::new();
    let mut stages = Vec::new();
    for (i, (name, src)) in config.spec.sources.iter().enumerate() {
        let c = Arc::clone(&counters[i].1);
        let max_silence =
            src.value.max_silence().and_then(|s| crate::rule::duration::parse(s).ok());
        // (parser, events carry log.file.path, records counted here rather than by the source)
        let (format, files) = match &src.value {
            SourceConfig::File(f) => (f.format.unwrap_or(Format::Syslog), true),
            SourceConfig::CloudtrailDir(_) => (Format::CloudTrail, true),
            SourceConfig::Stdin(s) => (s.format.unwrap_or(Format::Syslog), false),
            SourceConfig::SyslogUdp(_) | SourceConfig::SyslogTcp(_) => (Format::Syslog, false),
            SourceConfig::Nats(_) => (Format::Json, false),
            // Raw lines or ECS events, told apart per record (below).
            SourceConfig::Http(_) => (Format::Json, false),
        };
        let (parser, format): (Box<dyn crate::parse::Parser>, &'static str) =
            match (&src.value, format) {
                (SourceConfig::Http(_), _) => (Box::new(AutoParser::new(syslog)), "auto"),
                (_, Format::Syslog) => (Box::new(SyslogParser::new(syslog)), format.as_str()),
                (_, Format::CloudTrail) => (Box::new(CloudTrailParser::default()), format.as_str()),
                (_, Format::Json) => (Box::new(JsonParser), format.as_str()),
            };
        let peers = matches!(src.value, SourceConfig::SyslogUdp(_) | SourceConfig::SyslogTcp(_));
        stages.push(Stage { max_silence, silent: false });
        // The source hands batches to its own parse stage, which hands events on.
        // UDP cannot wait, so its queue is deeper: a burst is absorbed rather than dropped.
        let depth = if matches!(src.value, SourceConfig::SyslogUdp(_)) { 64 } else { 4 };
        let (btx, brx) = mpsc::channel::<Batch>(depth);
        let parse = ParseStage {
            index: i,
            parser,
            format,
            files,
            peers,
            rules: rules_rx.clone(),
            metrics: Arc::clone(&metrics),
        };
        source_tasks.spawn_on(parse.run(brx, tx.clone()), runtime.handle());
        let sym = Sym::from(name.as_str());
        let stop = sources_stopped.clone();
        match &src.value {
            SourceConfig::SyslogUdp(u) => {
                let socket = runtime
                    .block_on(tokio::net::UdpSocket::bind(&u.listen))
                    .map_err(|source| bind_error(name, &u.listen, source))?;
                // A bigger kernel buffer rides out bursts; the kernel caps it at
                // net.core.rmem_max, which is worth raising on a busy relay.
                let want = u.receive_buffer_bytes.unwrap_or(8 << 20);
                if let Err(e) = socket2::SockRef::from(&socket).set_recv_buffer_size(want) {
                    eprintln!("logwarden: source `{name}`: receive buffer of {want} bytes: {e}");
                }
                if let Some(inode) = crate::source::udp_drops::socket_inode(&socket) {
                    c.udp_inode.store(inode, std::sync::atomic::Ordering::Relaxed);
                }
                let max = u.max_line_bytes;
                source_tasks.spawn_on(run_udp(sym, socket, max, btx, c, stop), runtime.handle());
            }
            SourceConfig::SyslogTcp(t) => {
                let listener = runtime
                    .block_on(tokio::net::TcpListener::bind(&t.listen))
                    .map_err(|source| bind_error(name, &t.listen, source))?;
                let opts =
                    TcpOptions {
                        max_connections: t.max_connections.unwrap_or(1024).max(1),
                        max_connections_per_address: t.max_connections_per_address.map_or(
                            crate::source::syslog::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
                            |n| n.get(),
                        ),
                        max_line_bytes: t
                            .max_line_bytes
                            .unwrap_or(crate::parse::frame::DEFAULT_MAX_RECORD_BYTES),
                        idle_timeout: t
                            .idle_timeout
                            .as_deref()
                            .and_then(|s| crate::rule::duration::parse(s).ok())
                            .map_or(Duration::from_secs(600), |s| {
                                Duration::from_nanos(s.nanos().max(0) as u64)
                            }),
                        framing: t.framing,
                        tls: match &t.tls {
                            Some(tls) => Some(crate::source::syslog::tls_acceptor(tls).map_err(
                                |source| DaemonError::Tls { source_name: name.clone(), source },
                            )?),
                            None => None,
                        },
                    };
                source_tasks.spawn_on(run_tcp(sym, listener, opts, btx, c, stop), runtime.handle());
            }
            SourceConfig::File(f) => {
                let tail = Tail::new(name, f, committed.clone())
                    .map_err(|source| DaemonError::File { source_name: name.clone(), source })?
                    .with_counters(Arc::clone(&c))
                    .with_history(&checkpoint_paths, &checkpoint_heads);
                source_tasks.spawn_on(
                    async move {
                        tail.run(btx, stop).await;
                    },
                    runtime.handle(),
                );
            }
            SourceConfig::CloudtrailDir(d) => {
                let run = crate::source::cloudtrail_dir::run(
                    name.clone(),
                    d.clone(),
                    committed.clone(),
                    btx,
                    c,
                    stop,
                );
                source_tasks.spawn_on(run, runtime.handle());
            }
            SourceConfig::Http(h) => {
                let listener = runtime
                    .block_on(tokio::net::TcpListener::bind(&h.listen))
                    .map_err(|source| bind_error(name, &h.listen, source))?;
                let idle = crate::config::std_duration(h.idle_timeout.as_deref());
                let limits = h.limits(idle);
                let run = crate::source::intake::run(
                    sym,
                    listener,
                    h.clone(),
                    limits,
                    crate::source::intake::Pipeline {
                        tx: btx,
                        counters: c,
                        pushback: Arc::clone(&pushback),
                    },
                    stop,
                );
                source_tasks.spawn_on(run, runtime.handle());
            }
            #[cfg(feature = "nats")]
            SourceConfig::Nats(n) => {
                let n = n.clone();
                let run = async move { crate::forward::nats::consume(&n, sym, btx, c, stop).await };
                source_tasks.spawn_on(run, runtime.handle());
            }
            #[cfg(not(feature = "nats"))]
            SourceConfig::Nats(_) => {
                // `check` says so too; a config error, caught before anything starts.
                let _ = (btx, c, stop);
                return Err(DaemonError::NoNats { source_name: name.clone() });
            }
            SourceConfig::Stdin(s) => {
                let run = crate::source::stdin::run(
                    sym,
                    tokio::io::stdin(),
                    s.max_line_bytes,
                    btx,
                    c,
                    stop,
                );
                source_tasks.spawn_on(run, runtime.handle());
            }
        }
    }

    // The clock of the router and of silent-source checks.
    {
        let tx = tx.clone();
        let mut stop = sources_stopped.clone();
        source_tasks.spawn_on(
            async move {
                let mut every = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = stop.changed() => break,
                        _ = every.tick() => if tx.send(Msg::Tick).await.is_err() { break },
                    }
                }
            },
            runtime.handle(),
        );
    }
    // SIGHUP reloads rules and routes, as `/api/reload` does.
    {
        let tx = tx.clone();
        let mut stop = sources_stopped.clone();
        source_tasks.spawn_on(
            async move {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
                loop {
                    tokio::select! {
                        _ = stop.changed() => break,
                        _ = hup.recv() => {
                            let (done, _answer) = tokio::sync::oneshot::channel();
                            if tx.send(Msg::Control(Control::Reload(done))).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            },
            runtime.handle(),
        );
    }
    let control = tx.downgrade();
    drop(tx);

    // Detection on its own thread.
    let mut outputs = Vec::new();
    for (name, cfg) in &config.spec.outputs {
        if let crate::output::OutputConfig::File(f) = &cfg.value
            && let Some(&len) = committed.get(&detect::output_key(name))
            && detect::cut_to_committed(&f.path, len).map_err(DaemonError::Runtime)?
        {
            eprintln!(
                "logwarden: output `{name}`: cut back to {len} bytes, the length committed with \
                 the file positions (what follows is read and written again)"
            );
        }
        outputs.push(
            crate::output::Output::build(name, &cfg.value)
                .map_err(|source| DaemonError::Output { source })?,
        );
    }
    let mut router = Router::new(router_config.clone());
    // The state committed with the file positions: the lines after them are read again,
    // into this state, as if the daemon had never stopped (DESIGN §6).
    let mut engine = engine;
    if let (Some(e), Some(bytes)) =
        (engine.as_mut(), checkpoints.snapshot(detect::ENGINE_SNAPSHOT)?)
    {
        let changes = checkpoints.snapshots_with_prefix(detect::ENGINE_CHANGES)?;
        let restored = e.restore(&bytes).and_then(|report| {
            for c in &changes {
                e.apply_changes(c)?;
            }
            Ok(report)
        });
        match restored {
            Ok(report) => eprintln!(
                "logwarden: detector state restored ({} change sets): {report}",
                changes.len()
            ),
            Err(err) => {
                // Half-applied state is worse than none.
                *e = Engine::new(Arc::clone(e.set()), &services, false);
                eprintln!("logwarden: detector state not restored, starting fresh: {err}");
            }
        }
    }
    if let Some(bytes) = checkpoints.snapshot(detect::ROUTER_SNAPSHOT)? {
        match router.restore(&bytes) {
            Ok(report) => eprintln!("logwarden: router state restored: {report}"),
            Err(err) => eprintln!("logwarden: router state not restored, starting fresh: {err}"),
        }
    }
    // Silences set through the API before a restart stay in force.
    for r in silences.all()? {
        match crate::config::silence_from_record(&r, crate::event::Timestamp::now()) {
            Ok(s) => router.add_silence(s),
            Err(e) => eprintln!("logwarden: stored silence `{}` skipped: {e}", r.id),
        }
    }
    let configured: Vec<serde_json::Value> = config
        .spec
        .silences
        .iter()
        .map(|s| {
            let s = &s.value;
            serde_json::json!({
                "id": s.id, "ends": s.ends.value,
                "starts": s.starts.as_ref().map(|t| t.value.clone()),
                "created_by": s.created_by, "comment": s.comment,
            })
        })
        .collect();
    let dispatcher =
        Dispatcher::new(router, Arc::clone(&outbox), Arc::new(SystemClock), None).deferred();
    let reload = ReloadFrom { config: config.file.clone(), rules: rules_dir, services };
    let detect = Detect {
        stages,
        engine,
        dispatcher,
        metrics: Arc::clone(&metrics),
        reload: Some(reload),
        positions: HashMap::new(),
        checkpoints: Some(checkpoints),
        rules: rules_tx,
        outputs,
        state_log: detect::StateLog::default(),
        waiting: Vec::new(),
        state: Arc::clone(&db),
        pushback: Arc::clone(&pushback),
        stopping: sources_stopped.clone(),
    };
    let (stop_forward, forward_stopped) = watch::channel(false);
    let mut forward_task = None;
    let detection = match forwarder {
        // The sidecar: parsed batches go to the forwarder's buffer instead of the rules.
        Some(fwd) => {
            metrics.forwarder.get_or_init(|| Arc::clone(&fwd));
            forward_task = Some(runtime.spawn(Arc::clone(&fwd).run(forward_stopped)));
            let Detect { outputs, checkpoints, .. } = detect;
            let checkpoints = checkpoints.ok_or_else(|| {
                DaemonError::Runtime(std::io::Error::other("no checkpoint store"))
            })?;
            let fl = ForwardLoop { forwarder: fwd, checkpoints, outputs, failing: false };
            std::thread::Builder::new().name("forward".into()).spawn(move || fl.run(rx))
        }
        None => std::thread::Builder::new().name("detect".into()).spawn(move || detect.run(rx)),
    }
    .map_err(DaemonError::Runtime)?;

    // Scans: their own thread and router, notifying into the same outbox.
    let scan = match (&config.spec.scan, config.spec.mode) {
        (Some(sc), crate::config::Mode::Detect) => {
            let sc = &sc.value;
            let tz =
                sc.timezone.as_deref().and_then(|t| t.parse().ok()).unwrap_or(chrono_tz::Tz::UTC);
            let new_dispatcher = {
                let (rc, ob) = (router_config.clone(), Arc::clone(&outbox));
                move || {
                    Dispatcher::new(
                        Router::new(rc.clone()),
                        Arc::clone(&ob),
                        Arc::new(SystemClock),
                        None,
                    )
                    .deferred()
                }
            };
            let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let path = config.state.clone();
            let scan_loop = self::scan::ScanLoop {
                store: crate::scan::store::ScanStore::new(Arc::clone(&db), path.clone())
                    .map_err(|e| DaemonError::Runtime(std::io::Error::other(e.to_string())))?,
                notified: crate::scan::monitor::Notified::new(Arc::clone(&db), path.clone())
                    .map_err(|e| DaemonError::Runtime(std::io::Error::other(e.to_string())))?,
                waivers: crate::scan::waiver::WaiverStore::new(Arc::clone(&db), path)
                    .map_err(|e| DaemonError::Runtime(std::io::Error::other(e.to_string())))?,
                policies,
                apps: crate::scan::app::Applications::new(
                    config.spec.applications.iter().map(|a| a.value.clone()),
                ),
                watch: sc.watch.clone(),
                poll: sc
                    .poll
                    .as_deref()
                    .and_then(|p| crate::rule::duration::parse(p).ok())
                    .map_or(Duration::from_secs(10), |s| {
                        Duration::from_nanos(s.nanos().max(0) as u64)
                    }),
                advisories: sc.advisories.clone(),
                schedule: sc
                    .schedule
                    .as_deref()
                    .and_then(|t| crate::scan::schedule::Schedule::parse(t, tz).ok()),
                dispatcher: new_dispatcher(),
                new_dispatcher: Box::new(new_dispatcher),
                stopping: Arc::clone(&stopping),
                metrics: Arc::clone(&metrics),
            };
            // Bounded: an evaluation asked for while one waits is refused, not queued.
            let (tx, rx) = std::sync::mpsc::sync_channel::<self::scan::ScanCmd>(1);
            let thread = std::thread::Builder::new()
                .name("scan".into())
                .spawn(move || scan_loop.run(rx))
                .map_err(DaemonError::Runtime)?;
            Some((tx, thread, stopping))
        }
        _ => None,
    };

    // Delivery.
    let (stop_delivery, delivery_stopped) = watch::channel(false);
    let delivery = runtime.spawn(deliver(
        Arc::clone(&outbox),
        sinks,
        config.retry.clone(),
        delivery_stopped,
        Arc::new(SystemClock),
    ));

    // API.
    let (stop_api, mut api_stopped) = watch::channel(false);
    let api = match &config.spec.api {
        Some(a) => {
            let listen = &a.listen.value;
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind(listen))
                .map_err(|source| DaemonError::Api { addr: listen.clone(), source })?;
            let auth = match &a.token {
                Some(t) => api::ApiAuth { token: t.clone(), metrics_open: false },
                None => {
                    let own = token::load_or_create(&config.state)?;
                    eprintln!(
                        "logwarden: api: no `api.token` configured: requests other than \
                         /healthz and /metrics need the token {} {}",
                        if own.created { "just written to" } else { "in" },
                        own.path.display()
                    );
                    api::ApiAuth { token: own.token, metrics_open: true }
                }
            };
            let app = api::router(
                Arc::clone(&metrics),
                auth,
                control,
                silences.clone(),
                configured,
                scan.as_ref().map(|(tx, _, _)| tx.clone()),
            );
            // The API's bodies are silences: small. The cap bounds what requests in flight
            // can buffer together (max_in_flight of them).
            let app = app.layer(axum::extract::DefaultBodyLimit::max(API_MAX_BODY_BYTES));
            let stopped = async move {
                let _ = api_stopped.changed().await;
            };
            let conns = Arc::clone(&metrics.api_conns);
            let serve = crate::source::http_serve::serve(
                "api".into(),
                listener,
                app,
                a.limits(),
                conns,
                stopped,
            );
            Some(runtime.spawn(serve))
        }
        None => None,
    };
    eprintln!(
        "logwarden: running: {} sources, {} sinks; state {}",
        config.spec.sources.len(),
        sink_names.len(),
        config.state.display()
    );

    let damaged = runtime.block_on(async {
        tokio::select! {
            () = wait_for_signal() => None,
            why = damage_found(&db) => Some(why),
        }
    });
    if let Some(why) = &damaged {
        eprintln!(
            "logwarden: stopping: the state database {} is damaged ({why}); run `logwarden \
             state check`, then `logwarden state reset` if it cannot be used",
            config.state.display()
        );
    }
    eprintln!("logwarden: stopping: draining sources");
    stop_sources.send_replace(true);
    runtime.block_on(async { while source_tasks.join_next().await.is_some() {} });
    let unsaved = match detection.join() {
        Ok(Ok(())) => None,
        Ok(Err(why)) => Some(why),
        Err(_) => {
            eprintln!("logwarden: the detection thread panicked");
            None
        }
    };
    if let Some((stop, thread, stopping)) = scan {
        // An evaluation in progress finishes and commits first; one queued behind it (the
        // channel full, so Stop cannot join it) sees the flag and returns.
        stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = stop.try_send(self::scan::ScanCmd::Stop);
        if thread.join().is_err() {
            eprintln!("logwarden: the scan thread panicked");
        }
    }
    let left = runtime.block_on(outbox.wait_drained(&sink_names, DRAIN)).unwrap_or(0);
    stop_forward.send_replace(true);
    if let Some(t) = forward_task {
        // The forwarder keeps sending for a few seconds, then leaves the rest buffered.
        let _ = runtime.block_on(t);
    }
    stop_delivery.send_replace(true);
    let _ = runtime.block_on(delivery);
    stop_api.send_replace(true);
    if let Some(api) = api {
        let _ = runtime.block_on(api);
    }
    eprintln!("logwarden: stopped; {left} notifications left in the outbox for the next start");
    if damaged.is_some() {
        std::process::exit(detect::EXIT_STATE_DAMAGED);
    }
    match unsaved {
        Some(why) => Err(DaemonError::Unsaved(why)),
        None => Ok(()),
    }
}

fn bind_error(name: &str, addr: &str, source: std::io::Error) -> DaemonError {
    DaemonError::Bind { source_name: name.to_owned(), addr: addr.to_owned(), source }
}

/// Resolves when a thread found the state database damaged while running (a store met a
/// corrupt page or record): retrying cannot help, and a daemon that goes on would fail every
/// commit in a loop.
async fn damage_found(db: &crate::state::StateDb) -> String {
    loop {
        if let Some(crate::state::db::Fault::Corrupt { reason }) = db.fault() {
            return reason;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Resolves at the first SIGTERM or SIGINT.
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        // Without signal handlers, only the default action (exit) would stop us anyway.
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
