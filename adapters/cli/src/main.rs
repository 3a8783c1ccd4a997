//! `tokenbridge`: one binary for every platform. The mode comes from the first argument, or
//! from the environment: `FN_LISTENER` → OCI Functions, `AWS_LAMBDA_RUNTIME_API` → Lambda,
//! otherwise stdin/stdout.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::{Result, bail};
use tokenbridge_core::{Config, Engine};

#[cfg(feature = "http")]
mod log_writer;

const USAGE: &str = "\
usage: tokenbridge [stdio | oci | lambda | http | check-config | revoke | --help | --version]

  stdio         read OCI API Gateway authorizer payloads (JSON) on stdin, answer one JSON line each
  oci           serve the OCI Functions (Fn http-stream) protocol on $FN_LISTENER
  lambda        serve the AWS Lambda Runtime API as an API Gateway authorizer
  http          serve HTTP: forward-auth for nginx/Traefik/Caddy/Envoy, and POST /authorize
  check-config  validate the configuration, resolve the secrets, print the effective settings
  revoke        revoke the tokens on stdin (one a line) on every instance sharing the cache tier

With no argument the mode follows the environment: FN_LISTENER set -> oci,
AWS_LAMBDA_RUNTIME_API set -> lambda, otherwise stdio.
Configuration is read from TOKENBRIDGE_* environment variables (see docs/configuration.md).";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Stdio,
    Oci,
    Lambda,
    Http,
    CheckConfig,
    Revoke,
}

fn mode(arg: Option<&str>, env: impl Fn(&str) -> bool) -> Result<Option<Mode>> {
    Ok(Some(match arg {
        Some("stdio") => Mode::Stdio,
        Some("oci") => Mode::Oci,
        Some("lambda") => Mode::Lambda,
        Some("http") => Mode::Http,
        Some("check-config") => Mode::CheckConfig,
        Some("revoke") => Mode::Revoke,
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            return Ok(None);
        }
        Some("-V" | "--version") => {
            println!("tokenbridge {}", env!("CARGO_PKG_VERSION"));
            return Ok(None);
        }
        Some(other) => bail!("unknown mode {other:?}\n{USAGE}"),
        None if env("FN_LISTENER") => Mode::Oci,
        None if env("AWS_LAMBDA_RUNTIME_API") => Mode::Lambda,
        None => Mode::Stdio,
    }))
}

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    let result = mode(arg.as_deref(), |k| std::env::var_os(k).is_some()).and_then(|m| match m {
        None => Ok(ExitCode::SUCCESS),
        Some(m) => run(m),
    });
    result.unwrap_or_else(|e| {
        eprintln!("tokenbridge: {e:#}");
        ExitCode::from(2)
    })
}

/// The process's engine, with a resolver for each platform's secret references in this build;
/// built on first use.
fn engine() -> &'static Engine {
    install(None)
}

/// The engine of `tokenbridge http`: its decision log goes through a writer thread, so a slow
/// reader of stderr never stalls the threads answering thousands of connections.
#[cfg(feature = "http")]
fn server_engine() -> Result<(&'static Engine, log_writer::LogWriter)> {
    use anyhow::Context;
    let log = log_writer::LogWriter::start().context("starting the decision log's writer")?;
    Ok((install(Some(log.clone())), log))
}

#[cfg(not(feature = "http"))]
type LogSink = std::convert::Infallible;
#[cfg(feature = "http")]
type LogSink = log_writer::LogWriter;

/// The process's engine, built on first use, its log through `log` when given.
fn install(log: Option<LogSink>) -> &'static Engine {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let builder = Engine::builder(Config::from_env());
        #[cfg(feature = "http")]
        let builder = match log {
            Some(log) => builder.log_sink(move |line| log.log(line)),
            None => builder,
        };
        #[cfg(not(feature = "http"))]
        let _ = log;
        #[cfg(feature = "oci")]
        let builder = builder.resolver(Box::new(tokenbridge_oci::vault::VaultResolver::from_env()));
        #[cfg(feature = "lambda")]
        let builder = builder.resolver(Box::new(tokenbridge_lambda::extension::ExtensionResolver::from_env()));
        // Nothing else installs an engine in this process, so this cannot find one already there.
        let _ = tokenbridge_core::set_global(builder.build());
    });
    tokenbridge_core::global()
}

fn run(mode: Mode) -> Result<ExitCode> {
    match mode {
        Mode::CheckConfig => Ok(check_config()),
        Mode::Revoke => revoke(std::io::stdin().lock()),
        Mode::Stdio => stdio(),
        Mode::Oci => oci(),
        Mode::Http => http(),
        Mode::Lambda => lambda(),
    }
}

/// Revokes each token read from `input` (never from the command line, where `ps` and shell
/// histories would show it), naming each by its log fingerprint.
fn revoke(input: impl std::io::BufRead) -> Result<ExitCode> {
    let mut revoked = 0;
    for line in input.lines() {
        let line = line?;
        let token = line.trim().strip_prefix("Bearer ").unwrap_or(line.trim()).trim();
        if token.is_empty() {
            continue;
        }
        let fingerprint = engine().revoke(token).map_err(|e| anyhow::anyhow!("token {}: {e}", revoked + 1))?;
        println!("{}", serde_json::json!({"revoked": fingerprint}));
        revoked += 1;
    }
    if revoked == 0 {
        bail!("no token on stdin: tokens to revoke are read one a line from stdin");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "stdio")]
fn stdio() -> Result<ExitCode> {
    use anyhow::Context;
    let summary = tokenbridge_stdio::run(engine(), std::io::stdin().lock(), std::io::stdout());
    // The counters on exit, one line: the metrics of a process that is not scraped.
    let level = engine().config().map_or(tokenbridge_core::LogLevel::Info, |c| c.log_policy().level);
    if level >= tokenbridge_core::LogLevel::Info {
        eprintln!("{}", tokenbridge_core::metrics::snapshot().to_json_line());
    }
    let _ = summary.context("reading stdin or writing stdout")?; // answers say everything else
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "stdio"))]
fn stdio() -> Result<ExitCode> {
    bail!("the stdio adapter is not part of this build")
}

#[cfg(feature = "oci")]
fn oci() -> Result<ExitCode> {
    use anyhow::Context;
    use tokenbridge_oci::fn_server;
    let listener_env = std::env::var("FN_LISTENER").context("FN_LISTENER is not set; the Fn agent sets it")?;
    // Bind first: the agent gives the container 5 s to publish its socket.
    let listener = fn_server::bind(&listener_env).with_context(|| format!("binding {listener_env}"))?;
    // One call at a time from one agent connection: a log line written in line costs less than
    // waking a writer thread, and a stalled log pipe could only delay that one call.
    warm_in_background();
    fn_server::serve(engine(), listener).context("serving the Fn socket")?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "oci"))]
fn oci() -> Result<ExitCode> {
    bail!("the oci adapter is not part of this build")
}

#[cfg(feature = "http")]
fn http() -> Result<ExitCode> {
    use anyhow::Context;
    use tokenbridge_http::server;
    let addr = http_listen_address()?;
    let workers = http_workers()?;
    let max_connections = http_max_connections()?;
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    eprintln!(
        "{}",
        serde_json::json!({"level": "info", "event": "listening", "address": listener.local_addr()?.to_string(),
                           "workers": workers, "max_connections": max_connections})
    );
    let (engine, log) = server_engine()?;
    // After the engine is installed with its log writer: this reads the configuration.
    let options =
        tokenbridge_http::server::Options { identity: http_identity_headers()?, client_cert: http_client_cert()? };
    warm_in_background();
    server::serve(engine, listener, server::limits(workers, max_connections), options).context("serving HTTP")?;
    log.drain(std::time::Duration::from_secs(1));
    eprintln!("{}", serde_json::json!({"level": "info", "event": "stopped"}));
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "http")]
fn http_listen_address() -> Result<std::net::SocketAddr> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Ok(tokenbridge_http::server::listen_address(env)?)
}

/// The identity headers of a forward-auth allow (`TOKENBRIDGE_HTTP_IDENTITY_HEADERS`).
#[cfg(feature = "http")]
fn http_identity_headers() -> Result<tokenbridge_http::identity::IdentityHeaders> {
    let setting = std::env::var("TOKENBRIDGE_HTTP_IDENTITY_HEADERS").ok();
    let claims = engine().config().map(|c| c.context_claims().to_vec()).unwrap_or_default();
    Ok(tokenbridge_http::identity::IdentityHeaders::parse(setting.as_deref(), &claims)?)
}

/// Where forward-auth reads the caller's mutual TLS certificate (`TOKENBRIDGE_HTTP_CLIENT_CERT`).
#[cfg(feature = "http")]
fn http_client_cert() -> Result<Option<tokenbridge_http::client_cert::CertificateSource>> {
    let setting = std::env::var("TOKENBRIDGE_HTTP_CLIENT_CERT").ok();
    Ok(tokenbridge_http::client_cert::CertificateSource::parse(setting.as_deref())?)
}

/// Decisions `tokenbridge http` runs at once.
#[cfg(feature = "http")]
fn http_workers() -> Result<usize> {
    http_count("TOKENBRIDGE_HTTP_WORKERS", 1024, 32)
}

/// Connections `tokenbridge http` keeps open at once; past it, new ones get a 503 at once.
#[cfg(feature = "http")]
fn http_max_connections() -> Result<usize> {
    http_count("TOKENBRIDGE_HTTP_MAX_CONNECTIONS", 1_000_000, 4096)
}

/// A whole number from 1 to `max` in `name`, else `default` when it is not set.
#[cfg(feature = "http")]
fn http_count(name: &str, max: usize, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| anyhow::anyhow!("{name} must be 1-{max}")),
        Err(_) => Ok(default),
    }
}

#[cfg(not(feature = "http"))]
fn http() -> Result<ExitCode> {
    bail!("the http adapter is not part of this build")
}

#[cfg(feature = "lambda")]
fn lambda() -> Result<ExitCode> {
    let options = lambda_options()?;
    // Init has the network and no caller waiting: load the issuers' keys now, within the budget
    // the other modes use. In the foreground, not in the background as they do: Lambda may
    // freeze the environment once the runtime asks for its first event. A failure only means
    // the first event fetches them. (Keys need no secret: the extension does not answer during
    // init, so secrets are resolved at the first event.)
    engine().warm(std::time::Duration::from_secs(3));
    tokenbridge_lambda::runtime::run(engine(), options)?;
    Ok(ExitCode::SUCCESS)
}

/// The Lambda adapter's settings, read by `lambda` and checked by `check-config`.
#[cfg(feature = "lambda")]
fn lambda_options() -> Result<tokenbridge_lambda::authorizer::Options> {
    use tokenbridge_lambda::authorizer::Options;
    // With route policies, an allow is for some routes: a stage-wide policy cached by API
    // Gateway would let the same token through every other route unasked. `routes` answers
    // with a policy for each route of the token, `method` for the ARN called alone.
    let config = engine().config().ok();
    let per_route = config.is_some_and(|c| c.has_route_policies());
    // Route-wide answers are the default where IAM can hold them to the engine's reading; where a
    // denied route's look-alike could pass a cached `*` of another route, the strict `method`.
    let at_risk = config.is_some_and(|c| !tokenbridge_lambda::iam::reachable_by_look_alikes_of(c.policy()).is_empty());
    let resource_default = match (per_route, at_risk) {
        (false, _) => "stage",
        (true, false) => "routes",
        (true, true) => "method",
    };
    let resource = std::env::var("TOKENBRIDGE_LAMBDA_POLICY_RESOURCE").unwrap_or_else(|_| resource_default.into());
    if !["stage", "method", "routes"].contains(&resource.as_str()) {
        bail!("TOKENBRIDGE_LAMBDA_POLICY_RESOURCE must be stage, method or routes, got {resource:?}");
    }
    let setting = |name: &str, default: &str, allowed: [&str; 2]| -> Result<bool> {
        let value = std::env::var(name).unwrap_or_else(|_| default.to_string());
        match allowed.iter().position(|a| *a == value) {
            Some(i) => Ok(i == 0),
            None => bail!("{name} must be {} or {}, got {value:?}", allowed[0], allowed[1]),
        }
    };
    Ok(Options {
        // Without routes one rule holds everywhere: `routes` is the whole stage then.
        stage_wide: resource == "stage" || (resource == "routes" && !per_route),
        http_iam: setting("TOKENBRIDGE_LAMBDA_HTTP_RESPONSE", "simple", ["iam", "simple"])?,
        http_unauthorized_error: setting("TOKENBRIDGE_LAMBDA_HTTP_INVALID_TOKEN", "403", ["401", "403"])?,
        route_table: resource == "routes" && per_route,
        realm: config.map_or_else(|| "tokenbridge".into(), |c| c.realm().to_string()),
    })
}

#[cfg(not(feature = "lambda"))]
fn lambda() -> Result<ExitCode> {
    bail!("the lambda adapter is not part of this build")
}

/// Loads the issuers' keys while the server already listens, so the first JWT does not pay for
/// them; a failure here only means the first request fetches them.
#[cfg(any(feature = "oci", feature = "http"))]
fn warm_in_background() {
    std::thread::spawn(|| engine().warm(std::time::Duration::from_secs(3)));
}

/// Prints the effective configuration (secrets redacted) and every problem; exit 1 if any.
fn check_config() -> ExitCode {
    let engine = engine();
    let mut problems: Vec<String> = match engine.config() {
        Ok(config) => {
            print!("{config}");
            for (setting, certificate) in engine.describe_certificates() {
                println!("{setting}: {certificate}");
            }
            let secrets = engine.check_secrets();
            let keys = engine.check_keys(std::time::Duration::from_secs(5));
            let (refused, notes): (Vec<_>, Vec<_>) = engine
                .check_auth_methods(std::time::Duration::from_secs(5))
                .into_iter()
                .partition(|check| check.is_problem());
            for note in notes {
                println!("client authentication: {note}");
            }
            let refused = refused.into_iter().map(|check| format!("client authentication: {check}"));
            secrets.iter().map(ToString::to_string).chain(keys.iter().map(ToString::to_string)).chain(refused).collect()
        }
        // The secrets are checked even so: fixing one problem should not reveal the next.
        Err(errors) => {
            let secrets = engine.check_secret_refs(&Config::secrets_from_env());
            errors.0.iter().cloned().chain(secrets.iter().map(ToString::to_string)).collect()
        }
    };
    #[cfg(feature = "lambda")]
    for note in lambda_notes() {
        println!("lambda: {note}");
    }
    problems.extend(adapter_problems());
    if problems.is_empty() {
        println!("configuration OK");
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            println!("problem: {p}");
        }
        println!("{} problem(s) found", problems.len());
        ExitCode::from(1)
    }
}

/// How the REST answers of `TOKENBRIDGE_LAMBDA_POLICY_RESOURCE=routes` cover the policy, or why
/// they are not the default for it.
#[cfg(feature = "lambda")]
fn lambda_notes() -> Vec<String> {
    let (Ok(options), Ok(config)) = (lambda_options(), engine().config()) else { return Vec::new() };
    if !options.route_table {
        let at_risk = tokenbridge_lambda::iam::reachable_by_look_alikes_of(config.policy());
        if config.has_route_policies()
            && !at_risk.is_empty()
            && std::env::var_os("TOKENBRIDGE_LAMBDA_POLICY_RESOURCE").is_none()
        {
            return vec![format!(
                "REST answers are for the ARN called (TOKENBRIDGE_LAMBDA_POLICY_RESOURCE=method), not every route: \
                 denied, {} could be reached from API Gateway's cache by a look-alike of their names through a `*` \
                 of another route or the default; set it to routes if no backend folds names (NFKC, best-fit)",
                at_risk.join(", ")
            )];
        }
        return Vec::new();
    }
    tokenbridge_lambda::iam::describe(config.policy())
}

/// What would stop a compiled-in adapter at start, read with the functions the modes use.
fn adapter_problems() -> Vec<String> {
    let checks: Vec<Result<()>> = vec![
        #[cfg(feature = "http")]
        http_listen_address().map(drop),
        #[cfg(feature = "http")]
        http_workers().map(drop),
        #[cfg(feature = "http")]
        http_max_connections().map(drop),
        #[cfg(feature = "http")]
        http_identity_headers().map(drop),
        #[cfg(feature = "http")]
        http_client_cert().map(drop),
        #[cfg(feature = "lambda")]
        lambda_options().map(drop),
        #[cfg(feature = "lambda")]
        tokenbridge_lambda::emf::Settings::from_env().map(drop).map_err(|e| anyhow::anyhow!(e)),
    ];
    checks.into_iter().filter_map(|check| check.err().map(|e| format!("{e:#}"))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_picks_the_mode_when_no_argument_is_given() {
        assert_eq!(mode(None, |k| k == "FN_LISTENER").unwrap(), Some(Mode::Oci));
        assert_eq!(mode(None, |k| k == "AWS_LAMBDA_RUNTIME_API").unwrap(), Some(Mode::Lambda));
        assert_eq!(mode(None, |_| false).unwrap(), Some(Mode::Stdio));
    }

    #[test]
    fn an_argument_overrides_the_environment() {
        assert_eq!(mode(Some("stdio"), |_| true).unwrap(), Some(Mode::Stdio));
        assert_eq!(mode(Some("check-config"), |_| true).unwrap(), Some(Mode::CheckConfig));
        assert!(mode(Some("serve"), |_| false).is_err());
    }
}
