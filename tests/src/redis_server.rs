//! A real `redis-server` (Debian's package) on a free loopback port, for the shared cache tests:
//! its own directory, no persistence, stopped when dropped. Missing, the test fails: it never
//! skips itself.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Child,
    port: u16,
    _dir: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

impl RedisServer {
    /// Starts one with `extra` configuration directives (`maxmemory 1mb`, …).
    pub fn start(extra: &[&str]) -> Self {
        let binary = std::env::var("TOKENBRIDGE_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("tokenbridge-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("redis directory");
        let mut args: Vec<String> =
            ["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        args.extend(["--dir".into(), dir.display().to_string()]);
        for directive in extra {
            let mut words = directive.split(' ');
            args.push(format!("--{}", words.next().unwrap_or_default()));
            args.extend(words.map(str::to_string));
        }
        let child =
            Command::new(&binary).args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| {
                panic!("{binary} could not be started ({e}): apt-get install redis-server (.ci/run does)")
            });
        let server = Self { child, port, _dir: dir };
        let started = Instant::now();
        while server.connection().is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(1))
    }

    /// Every key and its value.
    pub fn entries(&self) -> Vec<(String, Vec<u8>)> {
        let mut c = self.connection().expect("redis");
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).expect("KEYS");
        keys.into_iter()
            .filter_map(|k| {
                let v: Option<Vec<u8>> = redis::cmd("GET").arg(&k).query(&mut c).ok()?;
                Some((k, v?))
            })
            .collect()
    }

    pub fn set(&self, key: &str, value: &[u8]) {
        let mut c = self.connection().expect("redis");
        redis::cmd("SET").arg(key).arg(value).query::<()>(&mut c).expect("SET");
    }

    pub fn command(&self, args: &[&str]) -> redis::Value {
        let mut c = self.connection().expect("redis");
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut c).expect("redis command")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}
