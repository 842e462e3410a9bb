//! `kind = "command"`: an argv fixed in the catalog (`pg_isready`, `redis-cli
//! ping`, scripts the team already trusts), run without a shell.
//!
//! Settings: `argv` (placeholders may fill arguments, never the program; no
//! shells, no `env`/`sudo` wrappers, no `-c` interpreters), `timeout` (default
//! 30s; the process is killed then), `output_limit` (bytes kept, default 64 KiB),
//! `env` (the only variables besides a fixed PATH: the environment is cleared),
//! `read_only` (default false: commands need approval unless declared read-only).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{Backend, Configured, Outcome, Step, Values, fill};

#[derive(Debug)]
pub struct CommandBackend;

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "csh", "tcsh", "busybox", "env", "sudo",
    "su", "doas", "xargs", "nohup", "eval", "exec",
];
const INTERPRETERS: &[&str] = &["python", "python3", "perl", "ruby", "node", "php", "lua"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    argv: Vec<String>,
    #[serde(default, with = "crate::time::duration_text")]
    timeout: Option<Duration>,
    #[serde(default)]
    output_limit: Option<usize>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    read_only: Option<bool>,
}

fn program_name(argv0: &str) -> &str {
    argv0.rsplit('/').next().unwrap_or(argv0)
}

/// A `command` action's settings, checked.
#[derive(Debug)]
struct Command {
    argv: Vec<String>,
    timeout: Duration,
    limit: usize,
    env: BTreeMap<String, String>,
    read_only: bool,
}

impl Backend for CommandBackend {
    fn kind(&self) -> &'static str {
        "command"
    }

    fn configure(
        &self,
        table: &toml::Table,
        params: &[String],
    ) -> Result<Arc<dyn Configured>, Vec<(String, String)>> {
        let s: Settings = super::settings_of(table)?;
        let mut problems = Vec::new();
        let Some(program) = s.argv.first() else {
            return Err(vec![(
                "argv".into(),
                "needs at least the program to run".into(),
            )]);
        };
        let name = program_name(program);
        if program.contains('{') {
            problems.push((
                "argv".into(),
                "the program itself cannot be a parameter".into(),
            ));
        }
        if SHELLS.contains(&name) {
            problems.push((
                "argv".into(),
                format!("`{name}` would interpret text as commands; name the program to run directly (no shell)"),
            ));
        }
        if INTERPRETERS.iter().any(|i| name.starts_with(i))
            && s.argv
                .iter()
                .skip(1)
                .any(|a| a == "-c" || a == "-e" || a == "-E")
        {
            problems.push((
                "argv".into(),
                format!("`{name} -c/-e` runs code from text; run a script file instead"),
            ));
        }
        for arg in &s.argv {
            problems.extend(super::unknown_placeholders("argv", arg, params));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Arc::new(Command {
            timeout: s.timeout.unwrap_or(Duration::from_secs(30)),
            limit: s.output_limit.unwrap_or(64 * 1024).clamp(1024, 1024 * 1024),
            env: s.env,
            read_only: s.read_only == Some(true),
            argv: s.argv,
        }))
    }
}

impl Configured for Command {
    fn read_only(&self) -> bool {
        self.read_only
    }

    fn prepare(&self, values: &Values) -> Result<Box<dyn Step>, String> {
        let argv = self
            .argv
            .iter()
            .map(|a| fill(a, values))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Box::new(CommandStep {
            timeout: self.timeout,
            limit: self.limit,
            env: self.env.clone(),
            argv,
        }))
    }
}

struct CommandStep {
    argv: Vec<String>,
    timeout: Duration,
    limit: usize,
    env: BTreeMap<String, String>,
}

/// Reads a stream to the end, keeping only its last `limit` bytes.
async fn read_capped(mut r: impl AsyncRead + Unpin, limit: usize) -> (Vec<u8>, usize) {
    let mut kept: Vec<u8> = Vec::new();
    let mut total = 0usize;
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                total += n;
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * limit {
                    kept.drain(..kept.len() - limit);
                }
            }
        }
    }
    if kept.len() > limit {
        kept.drain(..kept.len() - limit);
    }
    (kept, total)
}

impl Step for CommandStep {
    fn describe(&self) -> String {
        format!(
            "run {} (no shell, timeout {})",
            self.argv
                .iter()
                .map(|a| if a.is_empty() || a.contains(char::is_whitespace) {
                    format!("{a:?}")
                } else {
                    a.clone()
                })
                .collect::<Vec<_>>()
                .join(" "),
            humantime::format_duration(self.timeout)
        )
    }

    fn target(&self) -> String {
        self.argv.join(" ")
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn run(&self) -> Pin<Box<dyn Future<Output = Outcome> + Send + '_>> {
        Box::pin(async move {
            let started = Instant::now();
            let failed = |summary: String| Outcome {
                success: false,
                summary,
                output: String::new(),
                duration: started.elapsed(),
            };
            let Some((program, args)) = self.argv.split_first() else {
                return failed("nothing to run".into());
            };
            let mut child = match tokio::process::Command::new(program)
                .args(args)
                .env_clear()
                .env("PATH", PATH)
                .envs(&self.env)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
            {
                Ok(c) => c,
                Err(e) => return failed(format!("cannot start `{program}`: {e}")),
            };
            let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
                return failed("cannot read the command's output".into());
            };
            let limit = self.limit;
            let reading =
                async { tokio::join!(read_capped(out, limit), read_capped(err, limit / 4)) };
            let waited = tokio::time::timeout(self.timeout, async {
                let ((stdout, total_out), (stderr, _)) = reading.await;
                (child.wait().await, stdout, stderr, total_out)
            })
            .await;
            match waited {
                Err(_) => {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                    failed(format!(
                        "timed out after {}; killed",
                        humantime::format_duration(self.timeout)
                    ))
                }
                Ok((status, stdout, stderr, total_out)) => {
                    let mut output = String::from_utf8_lossy(&stdout).into_owned();
                    if total_out > stdout.len() {
                        output = format!(
                            "… {} earlier byte(s) not kept\n{output}",
                            total_out - stdout.len()
                        );
                    }
                    if !stderr.is_empty() {
                        output.push_str(&String::from_utf8_lossy(&stderr));
                    }
                    let (success, summary) = match status {
                        Ok(s) => match s.code() {
                            Some(code) => (s.success(), format!("exit {code}")),
                            None => (false, "killed by a signal".to_string()),
                        },
                        Err(e) => (false, format!("cannot wait for the command: {e}")),
                    };
                    Outcome {
                        success,
                        summary,
                        output,
                        duration: started.elapsed(),
                    }
                }
            }
        })
    }
}
