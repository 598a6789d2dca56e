//! A `messaging` command running in the background with `--metrics-addr
//! 127.0.0.1:0`: its endpoint's address (read from its stderr), HTTP GETs on it, and
//! the Prometheus text of `/metrics` parsed (the `prometheus-parse` crate here; the
//! Kafka test also parses it with Python's `prometheus_client`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_parse::{Scrape, Value};

/// The running command; killed when dropped.
pub(crate) struct Served {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    agent: ureq::Agent,
}

/// Copy everything `from` prints into `into`, line by line, on a thread of its own.
fn collect(from: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            let mut s = into.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
}

impl Served {
    /// Start `messaging args` (which must include `--metrics-addr 127.0.0.1:0`) and
    /// wait for its `metrics listening on http://ADDR` line.
    pub(crate) fn spawn(args: &[&str]) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_messaging"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        let (stdout, stderr) = (Arc::default(), Arc::<Mutex<String>>::default());
        collect(child.stdout.take().unwrap(), Arc::clone(&stdout));
        collect(child.stderr.take().unwrap(), Arc::clone(&stderr));
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut served = Served {
            child,
            base: String::new(),
            stdout,
            stderr,
            agent,
        };
        served.wait_until("the metrics address line", Duration::from_secs(60), |s| {
            s.stderr().contains("metrics listening on http://")
        });
        let err = served.stderr();
        let at = err.find("metrics listening on ").unwrap() + "metrics listening on ".len();
        served.base = err[at..].lines().next().unwrap().trim().to_owned();
        served
    }

    /// What the command printed on stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// What the command printed on stdout so far.
    pub(crate) fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// GET `path`: status and body.
    pub(crate) fn get(&self, path: &str) -> (u16, String) {
        let url = format!("{}{path}", self.base);
        let mut response = self
            .agent
            .get(&url)
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}\nstderr: {}", self.stderr()));
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap();
        (status, body)
    }

    /// `/metrics`, which must answer 200 in Prometheus text format, as text.
    pub(crate) fn metrics_text(&self) -> String {
        let url = format!("{}/metrics", self.base);
        let mut response = self.agent.get(&url).call().unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        response.body_mut().read_to_string().unwrap()
    }

    /// `/metrics`, parsed.
    pub(crate) fn scrape(&self) -> Scrape {
        parse(&self.metrics_text())
    }

    /// Poll `done` every 100 ms until it holds; fail the test after `timeout`.
    pub(crate) fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&Served) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            if done(self) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "waiting for {what}: messaging exited ({status})\nstderr: {}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {timeout:?}\nstderr: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parse Prometheus text format; every line must be understood.
pub(crate) fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text format")
}

/// The sum of counter or gauge `name` over all its label sets (0 when absent).
pub(crate) fn total(scrape: &Scrape, name: &str) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            _ => 0.0,
        })
        .sum()
}

/// The observation count of histogram `name` over all its label sets (its `+Inf`
/// bucket), and whether it has the finite buckets a `histogram_quantile` needs.
pub(crate) fn histogram_count(scrape: &Scrape, name: &str) -> (f64, bool) {
    let mut count = 0.0;
    let mut finite = false;
    for s in scrape.samples.iter().filter(|s| s.metric == name) {
        if let Value::Histogram(buckets) = &s.value {
            finite |= buckets.iter().any(|b| b.less_than.is_finite());
            count += buckets
                .iter()
                .filter(|b| b.less_than.is_infinite())
                .map(|b| b.count)
                .sum::<f64>();
        }
    }
    (count, finite)
}

/// The distinct metric names of a scrape.
pub(crate) fn names(scrape: &Scrape) -> Vec<String> {
    let mut names: Vec<String> = scrape.samples.iter().map(|s| s.metric.clone()).collect();
    names.sort();
    names.dedup();
    names
}
